"""Edges of the money path over HTTP, found by an outside test of the merged fixes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.models import IdempotencyRecord
from civicvoucher.auth.roles import Role
from civicvoucher.core import clock
from tests.api.conftest import books_ok
from tests.world import T0


def test_a_qr_redemption_retried_after_its_window_gets_its_receipt(api):
    """The first attempt committed, then the server died before storing the answer; the till
    retries a minute later, after the payload's 30 s: the receipt, not qr_expired."""
    vid = api.voucher_ids_in[0]
    qr = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER,
                  headers={"Accept": "application/json"}).json()
    body = {"payload": qr["payload"], "order_amount_fen": 30000}
    first = api.call("POST", "/redemptions", Role.CASHIER, key="till-1", json=body)
    assert first.status_code == 201, first.text
    with api.db.session() as s:  # what a crash between commit and storing the answer leaves
        s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.key == "till-1"))
    clock.set_clock(lambda: T0 + timedelta(minutes=1))
    again = api.call("POST", "/redemptions", Role.CASHIER, key="till-1", json=body)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    other = api.call("POST", "/redemptions", Role.CASHIER, key="till-2", json=body)
    assert (other.status_code, other.json()["code"]) == (422, "qr_expired")  # not a retry
    books_ok(api.db)


def test_a_refused_probe_with_a_nul_in_its_path_is_refused_and_audited(api):
    for path in ("/merchants/1", "/merchants/%00", "/merchants/1%00x"):
        r = api.call("GET", path, Role.MEMBER)
        assert r.status_code in (403, 404, 422), (path, r.status_code, r.text)
    with api.db.session() as s:
        targets = list(s.execute(select(AuditEntry.target)
                                 .where(AuditEntry.action == "access.refused")).scalars())
    assert "GET /api/v1/merchants/\\x00" in targets, targets
