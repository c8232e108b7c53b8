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


def _refused_entries(db) -> list[tuple[str, dict]]:
    from civicvoucher.audit.models import AuditEntry

    with db.session() as s:
        return [(e.action, e.detail) for e in s.execute(
            select(AuditEntry).where(AuditEntry.outcome == "refused")
            .order_by(AuditEntry.seq)).scalars()]


def _with_limits(api, **limits) -> None:
    from fastapi.testclient import TestClient

    from civicvoucher.api.app import create_app
    from civicvoucher.auth.models import RateBucket
    from civicvoucher.auth.ratelimit import Limits
    from tests.world import SECRET

    with api.db.session() as s:  # a fresh count for the test client's IP
        s.query(RateBucket).delete()
    api.client.close()
    api.client = TestClient(create_app(api.db, secret_key=SECRET, limits=Limits(**limits)),
                            raise_server_exceptions=False)


def test_probes_learn_nothing_are_limited_per_ip_and_audited_once(api):
    """A prober cannot tell a real channel from a made-up one: the signature is checked first,
    so a stale timestamp is only reported to a caller who holds the secret. Bad signatures
    from one IP lock it after a few (one audit entry for the lock, none per attempt); past
    the per-IP rate limit callbacks are refused before any work (one entry per window)."""
    body = {"txn_id": "UP-0100", "kind": "redeem", "code": api.codes_in[1],
            "merchant_id": api.merchant_in, "order_amount_fen": 35000}
    stale = NOW - 3600
    real = _post(api, body, ts=stale, secret="0" * 64)  # a real channel, a wrong secret
    made_up = _post(api, body, ts=stale, secret="0" * 64, name="nobody")
    assert [(r.status_code, r.json()["code"]) for r in (real, made_up)] == \
        [(401, "bad_signature")] * 2
    assert _refused_entries(api.db) == []  # not one entry per refused attempt

    _with_limits(api, callback_per_ip=1000, callback_failures_to_lock=5)
    # failures are forgotten after a good callback from the IP ...
    for _ in range(2):
        assert _post(api, body, secret="0" * 64).status_code == 401
    assert _post(api, {**body, "txn_id": "UP-0101"}).status_code == 200
    # ... else the fifth in a row locks the IP, good signature or not
    codes = [_post(api, body, secret="1" * 64).json()["code"] for _ in range(6)]
    assert codes == ["bad_signature"] * 5 + ["locked_out"]  # the fifth sets the lock
    assert _post(api, {**body, "txn_id": "UP-0102"}).json()["code"] == "locked_out"
    assert [a for a, _ in _refused_entries(api.db)] == ["channel.callback.locked_out"]

    _with_limits(api, callback_per_ip=3, callback_failures_to_lock=1000)
    before = _balances(api.db)
    got = [_post(api, body, secret="2" * 64).status_code for _ in range(8)]
    assert got == [401] * 3 + [429] * 5
    assert [a for a, _ in _refused_entries(api.db)] == ["channel.callback.locked_out",
                                                        "channel.callback.rate_limited"]
    assert _balances(api.db) == before


def test_a_channel_reports_only_its_kinds_at_active_merchants_that_take_them(api):
    """The channel ``u-channel`` is configured for online redemptions (the default): it
    cannot file an offline one as if it were the till; a merchant must be active and take
    the channel kind (the engine's rules). A channel made for offline reports offline."""
    from sqlalchemy import update

    from civicvoucher.auth.roles import Role
    from civicvoucher.merchants.models import Merchant

    def redeem_at(merchant: int, channel: str, txn: str, **kw):
        return _post(api, {"txn_id": txn, "kind": "redeem", "code": api.codes_in[0],
                           "merchant_id": merchant, "order_amount_fen": 30000,
                           "channel": channel}, **kw)

    before = _balances(api.db)
    for n, kind in enumerate(("offline", "takeaway")):
        r = redeem_at(api.merchant_in, kind, f"K-{n}")
        assert (r.status_code, r.json().get("code")) == (403, "channel_kind_not_allowed"), r.text
    r = redeem_at(api.w.merchants["饭店"], "online", "K-2")  # 饭店 is offline only
    assert (r.status_code, r.json().get("code")) == (409, "channel_not_allowed")
    with api.db.session() as s:
        s.execute(update(Merchant).where(Merchant.id == api.merchant_in)
                  .values(status="suspended"))
    r = redeem_at(api.merchant_in, "online", "K-3")
    assert (r.status_code, r.json().get("code")) == (409, "merchant_not_active")
    with api.db.session() as s:
        s.execute(update(Merchant).where(Merchant.id == api.merchant_in)
                  .values(status="active"))
    assert _balances(api.db) == before

    made = api.call("POST", "/auth/users", Role.PROVINCE_ADMIN,
                    json={"username": "pos-net", "role": "channel", "channels": ["offline"]})
    assert made.status_code == 201, made.text
    pos = {"secret": made.json()["channel_secret"], "name": "pos-net"}
    r = redeem_at(api.merchant_in, "online", "P-1", **pos)
    assert (r.status_code, r.json().get("code")) == (403, "channel_kind_not_allowed")
    assert redeem_at(api.merchant_in, "offline", "P-2", **pos).status_code == 200
    assert redeem_at(api.merchant_in, "online", "K-4").json().get("code") == \
        "voucher_already_redeemed"
    books_ok(api.db)


def _post_raw(api, body: dict, *, ts: str, name: str = "u-channel", secret: str | None = None):
    """Headers as raw latin-1 bytes, as a server's HTTP parser hands them on (the TestClient
    would re-encode them as UTF-8)."""
    import asyncio

    import httpx

    raw = json.dumps(body).encode()
    sig = sign(secret or api.channel_secret, ts, raw)
    headers = [(b"content-type", b"application/json"), (b"accept-language", b"en"),
               (b"x-cv-channel", name.encode("latin-1")), (b"x-cv-timestamp", ts.encode("latin-1")),
               (b"x-cv-signature", sig.encode())]

    async def go():
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/api/v1/channels/callbacks", content=raw, headers=headers)

    return asyncio.run(go())


def test_a_signed_callback_with_non_ascii_digits_in_its_timestamp_is_a_401_not_a_500(api):
    """``'²³'.isdigit()`` is True and ``int('²³')`` fails: a channel holding its secret sent
    such a timestamp and got a 500. Only 1-12 ASCII digits are Unix seconds; anything else
    is 401 ``stale_timestamp`` (problem+json), and nothing is redeemed."""
    body = {"txn_id": "UP-0200", "kind": "redeem", "code": api.codes_in[1],
            "merchant_id": api.merchant_in, "order_amount_fen": 35000}
    before = _balances(api.db)
    for ts in ("²³", "¹²³", f"{NOW}²", "½", "0x10", f"{NOW}.5", "-1", "1" * 13):
        r = _post_raw(api, body, ts=ts)
        assert (r.status_code, r.headers["content-type"]) == (401, "application/problem+json"), \
            (ts, r.status_code, r.text)
        assert r.json()["code"] == "stale_timestamp", (ts, r.text)
    assert _post_raw(api, body, ts=str(NOW)).status_code == 200  # ASCII digits still work
    assert _balances(api.db) != before


def test_a_channel_name_with_control_characters_names_no_channel(api):
    """A NUL or other control character in X-CV-Channel (which PostgreSQL text cannot hold)
    is an unknown channel: 401 ``bad_signature``, not a database error."""
    body = {"txn_id": "UP-0201", "kind": "redeem", "code": api.codes_in[1],
            "merchant_id": api.merchant_in, "order_amount_fen": 35000}
    for name in ("u-channel\x00", "\x00", "u-\x01channel", "u-channel\x7f", "x" * 101):
        r = _post_raw(api, body, ts=str(NOW), name=name)
        assert (r.status_code, r.json()["code"]) == (401, "bad_signature"), (name, r.text)
    assert _post_raw(api, body, ts=str(NOW), name="é-channel").json()["code"] == "bad_signature"
