"""Moving a merchant's money needs the merchant in scope, not only the voucher.

    小店 (140105) county admin: union A's vouchers are its own; 超市 is in its county,
    饭店 is in 迎泽 (140106), outside it. A union A voucher spent at 饭店 may be seen by the
    county (the voucher is its union's) but refunding it would debit 饭店's payable: refused.
    The city (140100) holds both and may refund it; the county still refunds at 超市.
"""

from __future__ import annotations

from sqlalchemy import select

from civicvoucher.auth.roles import Role
from civicvoucher.ledger.models import Account
from civicvoucher.vouchers.models import Redemption
from civicvoucher.vouchers.redemption import redeem
from tests.api.conftest import books_ok
from tests.world import T0


def _spend(api, code: str, merchant: str, key: str) -> int:
    with api.db.session() as s:
        return redeem(s, code=code, merchant_id=api.w.merchants[merchant],
                      order_amount_fen=30000, idem_key=key, now=T0).redemption.id


def _ledger(db) -> list[tuple]:
    with db.session() as s:
        return s.execute(select(Account.key, Account.debits_posted, Account.credits_posted)
                         .order_by(Account.key)).all()


def test_a_refund_needs_the_merchant_in_the_callers_scope_too(api):
    away = _spend(api, api.codes_in[0], "饭店", "t-away")
    home = _spend(api, api.codes_in[1], "超市", "t-home")
    before = _ledger(api.db)

    r = api.call("POST", f"/redemptions/{away}/refund", Role.COUNTY_ADMIN, json={})
    assert (r.status_code, r.json().get("code")) == (403, "out_of_scope"), r.text
    assert _ledger(api.db) == before  # 饭店's payable untouched
    # seeing it is still fine: the voucher was issued by the county's own union
    assert api.call("GET", f"/redemptions/{away}", Role.COUNTY_ADMIN).status_code == 200
    # merchant staff only ever act for their own merchant
    r = api.call("POST", f"/redemptions/{away}/refund", Role.MERCHANT_ADMIN, json={})
    assert (r.status_code, r.json().get("code")) == (403, "out_of_scope")

    assert api.call("POST", f"/redemptions/{away}/refund", Role.CITY_ADMIN,
                    json={}).status_code == 201
    assert api.call("POST", f"/redemptions/{home}/refund", Role.COUNTY_ADMIN,
                    json={}).status_code == 201
    with api.db.session() as s:
        assert {s.get(Redemption, i).status for i in (away, home)} == {"refunded"}
    books_ok(api.db)


def test_a_refund_after_payout_is_kept_from_the_next_payout(api):
    """超市 was paid for a voucher and then refunds it: the next settlement run keeps what it
    owes back from its payout, and says so."""
    paid = _spend(api, api.codes_in[0], "超市", "t-paid")
    first = api.call("POST", "/settlement-runs", Role.PROVINCE_ADMIN,
                     json={"cutoff": "2020-05-02T00:00:00"})
    assert first.status_code == 201, first.text
    assert (first.json()["amount_fen"], first.json()["recovered_fen"]) == (30000, 0)
    r = api.call("POST", f"/redemptions/{paid}/refund", Role.COUNTY_ADMIN, json={})
    assert (r.status_code, r.json()["outcome"]) == (201, "restored"), r.text
    _spend(api, api.codes_in[1], "超市", "t-next")
    second = api.call("POST", "/settlement-runs", Role.PROVINCE_ADMIN,
                      json={"cutoff": "2020-05-03T00:00:00"}).json()
    assert (second["amount_fen"], second["recovered_fen"], second["payout_fen"]) == (
        30000, 30000, 0)
    runs = api.call("GET", "/settlement-runs", Role.AUDITOR).json()["items"]
    assert [r["id"] for r in runs][-2:] == [first.json()["id"], second["id"]]
    batches = api.call("GET", f"/settlement-batches?run_id={second['id']}",
                       Role.MERCHANT_ADMIN).json()["items"]
    assert [(b["merchant_id"], b["amount_fen"], b["recovered_fen"], b["payout_fen"])
            for b in batches] == [(api.merchant_in, 30000, 30000, 0)]
    # 小店's county admin sees 超市's batches (in its county), not the other province's
    assert api.call("GET", "/settlement-batches", Role.COUNTY_ADMIN).json()["items"]
    assert api.call("GET", f"/settlement-batches?merchant_id={api.merchant_out}",
                    Role.COUNTY_ADMIN).json()["items"] == []
    books_ok(api.db)
