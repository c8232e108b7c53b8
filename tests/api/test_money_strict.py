"""Issue 8 item 8: money at the edge is integer fen, strictly. ``{"amount_fen": true}`` used
to deposit 1 fen, and "100" and 1.0 were taken as 100 and 1."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import pytest
from pydantic import BaseModel

import civicvoucher.api
from civicvoucher.auth.roles import Role
from civicvoucher.funds.service import fund_balance

LOOSE = [True, False, "100", 1.0, 100.0, "1e2", None]
MONEY_SUFFIXES = ("_fen", "_yuan")


def _api_models() -> list[type[BaseModel]]:
    """Every pydantic model defined under civicvoucher.api, and the program spec it takes."""
    mods = [importlib.import_module(m.name) for m in pkgutil.walk_packages(
        civicvoucher.api.__path__, "civicvoucher.api.")]
    mods.append(importlib.import_module("civicvoucher.programs.spec"))
    found = {}
    for mod in mods:
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseModel) and obj is not BaseModel
                    and obj.__module__ == mod.__name__ and not obj.__pydantic_generic_metadata__["parameters"]):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


def _money_fields() -> list[tuple[type[BaseModel], str, bool, bool]]:
    out = []
    for model in _api_models():
        for name, f in model.model_fields.items():
            if name.endswith(MONEY_SUFFIXES):
                ann = f.annotation
                args = typing.get_args(ann)
                optional = type(None) in args
                inner = next((a for a in args if a is not type(None)), ann) if optional else ann
                out.append((model, name, typing.get_origin(inner) is list, optional))
    return out


MONEY = _money_fields()


def test_the_walk_finds_the_money_fields():
    names = {f"{m.__name__}.{n}" for m, n, _, _ in MONEY}
    assert {"DepositIn.amount_fen", "RedeemIn.order_amount_fen", "CallbackIn.order_amount_fen",
            "Receipt.amount_fen", "ProductOut.denominations_fen",
            "ProductSpec.denominations_yuan", "ProductSpec.threshold_yuan"} <= names
    assert len(MONEY) >= 30


def _errors_at(model, name: str, value) -> list[dict]:
    from pydantic import ValidationError

    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        return [e for e in exc.errors() if e["loc"][:1] == (name,)]
    return []


@pytest.mark.parametrize("model, name, is_list, optional", MONEY,
                         ids=[f"{m.__name__}.{n}" for m, n, _, _ in MONEY])
def test_every_money_field_takes_integers_only(model, name, is_list, optional):
    wrap = (lambda v: [v]) if is_list else (lambda v: v)
    assert _errors_at(model, name, wrap(100)) == [], "an integer must be accepted"
    for bad in LOOSE:
        if bad is None and optional:
            continue
        assert _errors_at(model, name, wrap(bad)), f"{model.__name__}.{name} took {bad!r}"


@pytest.mark.parametrize("bad", [True, "100", 1.0])
def test_a_loose_deposit_is_a_422_naming_the_field_and_moves_nothing(api, bad):
    with api.db.session() as s:
        before = fund_balance(s, api.w.union_a)
    r = api.call("POST", "/funds/deposits", Role.UNION_ADMIN,
                 json={"org_id": api.w.union_a, "amount_fen": bad, "source": "dues"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body.amount_fen"
    with api.db.session() as s:
        assert fund_balance(s, api.w.union_a) == before
    ok = api.call("POST", "/funds/deposits", Role.UNION_ADMIN,
                  json={"org_id": api.w.union_a, "amount_fen": 100, "source": "dues"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["balance_fen"] == before + 100
