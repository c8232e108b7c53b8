"""The API takes bank details when a merchant is registered (optional; sealed, never
answered), and a pending merchant is activated by someone other than its registrant (403
self_approval_refused), as in the console's approval queue."""

from __future__ import annotations

from sqlalchemy import select, text

from civicvoucher.auth.roles import Role
from civicvoucher.merchants.models import Merchant
from tests.world import make_uscc

ACCOUNT = "6228480012345678901"


def _new(api, n, **bank):
    return api.call("POST", "/merchants", Role.COUNTY_ADMIN, json={
        "uscc": make_uscc(n), "name": f"接口店{n}", "mcc": "5812", "county_code": "140105",
        "channels": ["offline"], **bank})


def test_register_with_bank_details_then_a_second_person_activates(api):
    r = _new(api, 861, payee_name="接口店有限公司", bank_name="农业银行", account_no=ACCOUNT)
    assert r.status_code == 201, r.text
    assert ACCOUNT not in r.text and r.json()["status"] == "pending"
    mid = r.json()["id"]
    with api.db.session() as s:
        m = s.get(Merchant, mid)
        assert m.account_masked == "6228****8901" and ACCOUNT not in m.account_sealed
    with api.db.engine.connect() as c:
        assert ACCOUNT not in str(c.execute(text("SELECT detail FROM audit_entry")).all())
    r = api.call("POST", f"/merchants/{mid}/status", Role.COUNTY_ADMIN, json={"status": "active"})
    assert (r.status_code, r.json()["code"]) == (403, "self_approval_refused"), r.text
    r = api.call("POST", f"/merchants/{mid}/status", Role.CITY_ADMIN, json={"status": "active"})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    # the registrant may still suspend it (only activation takes a second person)
    r = api.call("POST", f"/merchants/{mid}/status", Role.COUNTY_ADMIN,
                 json={"status": "suspended"})
    assert r.status_code == 200, r.text


def test_half_bank_details_are_refused_naming_the_field(api):
    r = _new(api, 862, payee_name="某店", account_no=ACCOUNT)
    assert (r.status_code, r.json()["field"]) == (422, "bank_name"), r.text
    r = _new(api, 863, payee_name="某店", bank_name="农行", account_no="12-34")
    assert (r.status_code, r.json()["field"]) == (422, "account_no"), r.text
    with api.db.session() as s:
        assert s.execute(select(Merchant).where(Merchant.uscc.in_(
            [make_uscc(862), make_uscc(863)]))).first() is None
    assert _new(api, 864).status_code == 201  # no bank details: as before
