"""Issue 8 item 10 over HTTP: request times without an offset are local (Beijing by default),
offsets are honoured, responses carry the offset, receipts carry the local date."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from civicvoucher.auth.roles import Role
from civicvoucher.settlement.models import SettlementRun

ZONE_ENV = "CIVICVOUCHER_TIMEZONE"


def test_a_naive_cutoff_is_beijing_time_and_comes_back_with_its_offset(api, monkeypatch):
    monkeypatch.delenv(ZONE_ENV, raising=False)
    r = api.call("POST", "/settlement-runs", Role.PROVINCE_ADMIN,
                 json={"cutoff": "2020-05-01T12:00:00"})
    assert r.status_code == 201, r.text
    assert r.json()["cutoff"] == "2020-05-01T12:00:00+08:00"
    z = api.call("POST", "/settlement-runs", Role.PROVINCE_ADMIN,
                 json={"cutoff": "2020-05-01T04:00:00Z"})
    assert z.status_code == 201, z.text
    assert z.json()["cutoff"] == "2020-05-01T12:00:00+08:00"
    with api.db.session() as s:  # stored naive UTC, both
        assert set(s.execute(select(SettlementRun.cutoff)).scalars()) == {datetime(2020, 5, 1, 4)}


def test_a_dst_ambiguous_time_is_a_422_naming_the_field(api, monkeypatch):
    monkeypatch.setenv(ZONE_ENV, "Europe/Berlin")
    r = api.call("POST", "/expiry-runs", Role.PROVINCE_ADMIN,
                 json={"as_of": "2019-10-27T02:30:00"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body.as_of"
    assert "happens twice in Europe/Berlin" in r.text
    r = api.call("POST", "/expiry-runs", Role.PROVINCE_ADMIN,
                 json={"as_of": "2019-03-31T02:30:00"})
    assert r.status_code == 422 and "does not exist" in r.text, r.text
    ok = api.call("POST", "/expiry-runs", Role.PROVINCE_ADMIN,
                  json={"as_of": "2019-10-27T02:30:00+01:00"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["as_of"] == "2019-10-27T02:30:00+01:00"


def test_a_receipt_carries_the_local_date(api, monkeypatch):
    """T0 is 2020-05-01T10:00Z: 18:00 in Beijing, the same day; 06:00 in New York."""
    monkeypatch.delenv(ZONE_ENV, raising=False)
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 json={"code": api.codes_in[0], "order_amount_fen": 30000})
    assert r.status_code == 201, r.text
    assert r.json()["receipt_id"].startswith("R20200501-")
    assert r.json()["created_at"] == "2020-05-01T18:00:00+08:00"
    from civicvoucher.core import clock

    clock.set_clock(lambda: datetime(2020, 5, 1, 17))  # 01:00 on 5月2日 in Beijing
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 json={"code": api.codes_in[1], "order_amount_fen": 30000})
    assert r.status_code == 201, r.text
    assert r.json()["receipt_id"].startswith("R20200502-")
