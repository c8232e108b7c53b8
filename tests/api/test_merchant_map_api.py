"""Merchants over HTTP: a county that does not exist is 422 county_outside_map, a merchant off
the map cannot be activated (409), and the category may be named (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from civicvoucher.auth.roles import Role
from civicvoucher.merchants.models import Merchant
from tests.world import make_uscc


def _new(api, county: str, n: int, **extra):
    body = {"uscc": make_uscc(n), "name": "新店", "mcc": "5411", "county_code": county,
            "channels": ["offline"], **extra}
    return api.call("POST", "/merchants", Role.PROVINCE_ADMIN, json=body)


def test_the_api_refuses_a_county_that_does_not_exist(api):
    r = _new(api, "140999", 851)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422, "county_outside_map", "county_code"), r.text
    assert _new(api, "440305", 852).status_code == 403  # outside the admin's province


def test_the_api_takes_a_category(api):
    r = _new(api, "140105", 853, category="粮油果蔬")
    assert (r.status_code, r.json()["category"]) == (201, "grain_produce"), r.text
    assert _new(api, "140105", 854).json()["category"] == "supermarket_fuel"
    r = _new(api, "140105", 855, category="珠宝")
    assert (r.status_code, r.json()["field"]) == (422, "category"), r.text


def test_the_api_will_not_activate_a_merchant_off_the_map(api):
    with api.db.session() as s:
        s.execute(insert(Merchant).values(uscc=make_uscc(856), name="旧店", mcc="5411",
                                          category="supermarket_fuel", county_code="140999",
                                          channels="offline", status="pending",
                                          created_at=s.execute(select(func.now())).scalar()))
        mid = s.execute(select(Merchant.id).where(Merchant.uscc == make_uscc(856))).scalar()
    r = api.call("POST", f"/merchants/{mid}/status", Role.PROVINCE_ADMIN,
                 json={"status": "active"})
    assert (r.status_code, r.json()["code"]) == (409, "county_outside_map"), r.text
