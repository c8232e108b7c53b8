"""Program files: validated at the edge, times stored naive UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from civicvoucher.errors import ValidationError
from civicvoucher.programs.spec import parse_program_spec
from tests.world import program_spec


def test_a_deadline_with_an_offset_is_stored_in_utc():
    """"By 2020-07-10 24:00 Beijing time" is 2020-07-10 16:00 UTC."""
    data = program_spec()
    data["products"][0]["expires_at"] = datetime(2020, 7, 11, tzinfo=timezone(timedelta(hours=8)))
    assert parse_program_spec(data).products[0].expires_at == datetime(2020, 7, 10, 16)


def test_bad_fields_are_named():
    data = program_spec()
    data["products"][0]["denominations_yuan"] = [300.5]
    with pytest.raises(ValidationError) as exc:
        parse_program_spec(data)
    assert exc.value.field == "products.0.denominations_yuan.0"
    data = program_spec()
    data["products"][0]["expires_at"] = data["products"][0]["valid_from"]
    with pytest.raises(ValidationError):
        parse_program_spec(data)
