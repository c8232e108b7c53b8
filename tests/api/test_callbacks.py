"""Payment-channel callbacks: a signed, fresh callback redeems once; a bad signature, a stale
timestamp or a resend changes nothing in the ledger."""

from __future__ import annotations

import calendar
import json

from sqlalchemy import select

from civicvoucher.api.routers.channels import sign
from civicvoucher.ledger.models import Account
from tests.api.conftest import books_ok
from tests.world import T0

NOW = calendar.timegm(T0.timetuple())


def _post(api, body: dict, *, ts: int = NOW, secret: str | None = None, name="u-channel"):
    raw = json.dumps(body).encode()
    sig = sign(secret or api.channel_secret, ts, raw)
    return api.client.post("/api/v1/channels/callbacks", content=raw, headers={
        "Content-Type": "application/json", "X-CV-Channel": name,
        "X-CV-Timestamp": str(ts), "X-CV-Signature": sig, "Accept-Language": "en"})


def _balances(db) -> list[tuple]:
    with db.session() as s:
        return s.execute(select(Account.key, Account.debits_posted, Account.credits_posted,
                                Account.debits_pending).order_by(Account.key)).all()


def test_signed_callback_redeems_once_and_resends_change_nothing(api):
    body = {"txn_id": "UP-0001", "kind": "redeem", "code": api.codes_in[1],
            "merchant_id": api.merchant_in, "order_amount_fen": 35000, "channel": "online"}
    first = _post(api, body)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False and first.json()["amount_fen"] == 30000
    after_first = _balances(api.db)
    for delay in (0, 5, 60):  # the network resends
        again = _post(api, body, ts=NOW + delay)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["redemption_id"] == first.json()["redemption_id"]
    assert _balances(api.db) == after_first
    other = _post(api, {**body, "order_amount_fen": 99999})
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    refund = {"txn_id": "UP-0002", "kind": "refund", "original_txn_id": "UP-0001"}
    r = _post(api, refund)
    assert r.status_code == 200 and r.json()["refund_id"] is not None
    assert _post(api, refund).json()["duplicate"] is True
    books_ok(api.db)


def test_bad_signature_and_stale_timestamp_are_refused_and_harmless(api):
    body = {"txn_id": "UP-0003", "kind": "redeem", "code": api.codes_in[1],
            "merchant_id": api.merchant_in, "order_amount_fen": 35000}
    before = _balances(api.db)
    cases = [
        (dict(secret="0" * 64), "bad_signature"),
        (dict(name="nobody"), "bad_signature"),
        (dict(ts=NOW - 301), "stale_timestamp"),
        (dict(ts=NOW + 3600), "stale_timestamp"),
    ]
    for kw, code in cases:
        r = _post(api, body, **kw)
        assert (r.status_code, r.json()["code"]) == (401, code), r.text
    raw = json.dumps(body).encode()
    tampered = api.client.post("/api/v1/channels/callbacks", content=raw.replace(b"35000", b"9"),
                               headers={"X-CV-Channel": "u-channel",
                                        "X-CV-Timestamp": str(NOW),
                                        "X-CV-Signature": sign(api.channel_secret, NOW, raw)})
    assert tampered.status_code == 401
    assert _balances(api.db) == before
    books_ok(api.db)
