"""Every time in an API schema is read (When) or shown (Instant) in the deployment's zone: a
plain datetime would be answered as naive UTC, eight hours off for a reader in Beijing."""

from __future__ import annotations

import inspect
import typing
from datetime import datetime

from pydantic import BaseModel
from pydantic.functional_serializers import PlainSerializer
from pydantic.functional_validators import AfterValidator

from civicvoucher.api import schemas


def _is_datetime(annotation) -> bool:
    if annotation is datetime:
        return True
    return any(_is_datetime(a) for a in typing.get_args(annotation))


def _zoned(metadata) -> bool:
    return any(isinstance(m, PlainSerializer | AfterValidator) for m in metadata)


def test_no_schema_has_a_bare_datetime():
    bare = []
    for name, model in inspect.getmembers(schemas, inspect.isclass):
        if not issubclass(model, BaseModel) or model.__module__ != schemas.__name__:
            continue
        for field, info in model.model_fields.items():
            if not _is_datetime(info.annotation):
                continue
            zoned = _zoned(info.metadata) or all(
                _zoned(getattr(a, "__metadata__", ())) for a in typing.get_args(info.annotation)
                if a is not type(None))
            if not zoned:
                bare.append(f"{name}.{field}")
    assert bare == []
