"""Payment-channel callbacks: a UnionPay-style app reports redemptions and refunds.

Each callback is signed by the channel's own secret:

    X-CV-Channel:   the channel's name
    X-CV-Timestamp: Unix seconds when it was sent
    X-CV-Signature: hex HMAC-SHA256(secret, "<timestamp>.<raw body>")

The secret is stored sealed (``PaymentChannel.secret_sealed``, AES-GCM under a key kept outside
the database; docs/secrets.md) and opened for each callback: AES-GCM on 32 bytes costs a few
microseconds beside the database read, so nothing is cached. A callback naming no known
channel opens a decoy sealed under the current key instead, so both cost the same.

Before any other work a callback counts against its IP's rate limit (429 past it). The
signature is checked first, with the same answer (401 ``bad_signature``) for an unknown
channel, a disabled one and a wrong signature, so a prober learns nothing else; only a signed
callback is told that its timestamp is more than ``callback_window_s`` (300 s) from the
server's clock (401 ``stale_timestamp``), so an old capture cannot be replayed later; a
timestamp that is not 1-12 ASCII digits (``²³`` passes ``str.isdigit``) is a 401
``stale_timestamp`` too. A channel name with control characters names no channel. Refused
callbacks count as failures of the IP, and enough of them lock it for a while; the audit log
records the lock and the first refusal of each rate-limit window, not every refused attempt.

A channel reports only the redemption channel kinds it is configured for (``online`` unless
set at creation; 403 ``channel_kind_not_allowed`` otherwise), and the merchant must be active
and accept that kind (the engine's rules: 409 ``merchant_not_active``,
``channel_not_allowed``). The channel's ``txn_id`` is the idempotency key: payment networks
resend callbacks many times, and a resend with the same body answers the first result
(``duplicate: true``) and changes nothing; the same txn_id with another body is a 409.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import logging
import re

from fastapi import Depends, Request
from pydantic import ValidationError as PydanticError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from civicvoucher.api import validation
from civicvoucher.api.clientip import client_ip
from civicvoucher.api.problems import MEDIA_TYPE
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import state
from civicvoucher.api.schemas import CallbackIn, CallbackOut
from civicvoucher.api.state import AppState
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth import ratelimit
from civicvoucher.auth.errors import ChannelKindNotAllowed, RateLimited, Unauthenticated
from civicvoucher.auth.models import ApiUser, PaymentChannel
from civicvoucher.core import clock
from civicvoucher.core.sealed import SealedSecretError
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.vouchers.redemption import redeem, redemption_by_key, refund

router = make_router("/channels", "payment channels")
log = logging.getLogger(__name__)
TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits: str.isdigit() takes '²³', int() not
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")  # what a channel name can be (no control chars)

_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CallbackIn"}}},
}
_HEADERS = [
    {"name": "X-CV-Channel", "in": "header", "required": True,
     "schema": {"type": "string", "maxLength": 100}},
    {"name": "X-CV-Timestamp", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
    {"name": "X-CV-Signature", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
]


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """What a channel sends as X-CV-Signature (also used by tests and the bench)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _secret(st: AppState, channel: PaymentChannel | None) -> str:
    """The channel's secret, opened; for no channel the decoy's (nobody knows it), at the same
    cost. A secret this process cannot open is the deployment's fault: logged with what is
    wrong, answered 500 without it."""
    keyring = st.db.keyring
    try:
        return channel.open_secret(keyring) if channel is not None else keyring.open_decoy()
    except SealedSecretError as exc:
        log.error("channel %s: cannot open its secret: %s", channel.name if channel else "-",
                  exc.message)
        raise SealedSecretError(N_("the server cannot check this callback's signature just now"),
                                code=exc.code) from None


def _check_signature(s: Session, st: AppState, request: Request, body: bytes):
    """The signature first: unknown channel, disabled channel and wrong signature look alike.
    Only then, to a caller who holds the secret, whether the timestamp is fresh."""
    name = request.headers.get("x-cv-channel", "")
    ts = request.headers.get("x-cv-timestamp", "")
    sig = request.headers.get("x-cv-signature", "")
    row = s.execute(select(PaymentChannel, ApiUser).join(ApiUser, ApiUser.id == PaymentChannel.user_id)
                    .where(PaymentChannel.name == name)).first() if NAME.fullmatch(name) else None
    expected = sign(_secret(st, row[0] if row is not None else None), ts, body)
    good = hmac.compare_digest(expected.encode(), sig.lower().encode("utf-8", "replace"))
    if row is None or not row[1].active or not good:
        raise Unauthenticated(N_("unknown channel or bad signature"), code="bad_signature")
    channel, user = row
    if not TIMESTAMP.fullmatch(ts):
        raise Unauthenticated(N_("X-CV-Timestamp must be Unix seconds (1-12 ASCII digits)"),
                              code="stale_timestamp", channel=channel.name)
    now = calendar.timegm(clock.now().timetuple())
    if abs(now - int(ts)) > st.callback_window_s:
        raise Unauthenticated(msg("the timestamp is more than {seconds} seconds off",
                                  seconds=st.callback_window_s),
                              code="stale_timestamp", channel=channel.name)
    return channel, user


@router.post("/callbacks", response_model=CallbackOut, name="channel_callback",
             openapi_extra={"requestBody": _BODY, "parameters": _HEADERS,
                            "security": []})
async def channel_callback(request: Request, st: AppState = Depends(state)) -> CallbackOut:
    """A redemption or refund reported by a payment channel (signed, idempotent on txn_id)."""
    count = await run_in_threadpool(_count, st, request)  # before any other work
    body = await request.body()
    return await run_in_threadpool(_handle, st, request, body, count)


def _refused(st: AppState, request: Request, action: str, detail: dict) -> None:
    """One audit entry for an event that happens at most once per window or lock."""
    name = request.headers.get("x-cv-channel", "")[:80]
    name = name if NAME.fullmatch(name) else name.encode("unicode_escape").decode()[:80]
    st.db.run(lambda s: append(
        s, key=st.audit_key, action=action, outcome="refused",
        actor=Actor(f"channel:{name}" if name else "anonymous",
                    request_id=request.state.request_id),
        detail=detail))


def _bucket(request: Request) -> tuple[str, str]:
    ip = client_ip(request)
    return ip, ratelimit.bucket_key("callback:ip", ratelimit.address_key(ip))


def _count(st: AppState, request: Request) -> ratelimit.Count:
    """Count the callback against its IP; past the limit (or while the IP is locked) refuse
    it. Only the first refusal of a window is audited."""
    ip, bucket = _bucket(request)
    try:
        return ratelimit.hit(st.db, bucket, limit=st.limits.callback_per_ip,
                             window=st.limits.window)
    except RateLimited as exc:
        if exc.details.get("first"):
            _refused(st, request, "channel.callback.rate_limited", {"code": exc.code, "ip": ip})
        raise


def _authenticate(st: AppState, request: Request, body: bytes, count: ratelimit.Count):
    lim = st.limits
    ip, bucket = _bucket(request)
    try:
        found = st.db.run(lambda s: _check_signature(s, st, request, body))
    except Unauthenticated as exc:
        if ratelimit.fail(st.db, bucket, threshold=lim.callback_failures_to_lock,
                          lock_for=lim.lock_for, window=lim.window):
            _refused(st, request, "channel.callback.locked_out",
                     {"code": exc.code, "ip": ip,
                      "failures": lim.callback_failures_to_lock})
        raise
    if count.failures:  # a good callback clears the IP's earlier failures
        ratelimit.succeed(st.db, bucket)
    return found


def _handle(st: AppState, request: Request, body: bytes,
            count: ratelimit.Count) -> CallbackOut:
    rid = request.state.request_id
    channel, user = _authenticate(st, request, body, count)
    try:
        cb = CallbackIn.model_validate_json(body)
    except PydanticError as bad:
        err = bad.errors()[0]
        loc = validation.field_of(err)
        raise ValidationError(validation.detail(err), field=loc or "body") from None
    actor = Actor(user.username, user.id, user.role, f"channel:{channel.id}", rid)
    key = f"chan:{channel.id}:{cb.txn_id}"
    if cb.kind == "redeem" and cb.channel not in channel.channel_set:
        st.db.run(lambda s: append(s, key=st.audit_key, actor=actor, action="channel.redeem",
                                   outcome="refused", target=f"merchant:{cb.merchant_id}",
                                   detail={"txn_id": cb.txn_id, "channel": cb.channel,
                                           "code": ChannelKindNotAllowed.code}))
        raise ChannelKindNotAllowed(msg(
            "channel {name} may report {allowed} redemptions, not {channel}", name=channel.name,
            allowed=[Term(ch, "channel") for ch in sorted(channel.channel_set)],
            channel=Term(cb.channel, "channel")))

    def run(s: Session) -> CallbackOut:
        if cb.kind == "redeem":
            missing = [f for f in ("code", "merchant_id", "order_amount_fen")
                       if getattr(cb, f) is None]
            if missing:
                raise ValidationError(msg("a redeem callback needs {field}", field=missing[0]),
                                      field=missing[0])
            r = redeem(s, code=cb.code, merchant_id=cb.merchant_id,  # type: ignore[arg-type]
                       order_amount_fen=cb.order_amount_fen,  # type: ignore[arg-type]
                       channel=cb.channel, idem_key=key)
            red = r.redemption
            if not r.replayed:
                append(s, key=st.audit_key, actor=actor, action="channel.redeem",
                       target=f"redemption:{red.id}",
                       detail={"txn_id": cb.txn_id, "amount_fen": red.amount_fen,
                               "merchant_id": red.merchant_id})
            return CallbackOut(txn_id=cb.txn_id, accepted=True, duplicate=r.replayed,
                               redemption_id=red.id, amount_fen=red.amount_fen)
        if cb.original_txn_id is None:
            raise ValidationError(N_("a refund callback names original_txn_id"),
                                  field="original_txn_id")
        red = redemption_by_key(s, f"chan:{channel.id}:{cb.original_txn_id}")
        f = refund(s, redemption_id=red.id, idem_key=f"chanrefund:{channel.id}:{cb.txn_id}",
                   reason=cb.reason)
        if not f.replayed:
            append(s, key=st.audit_key, actor=actor, action="channel.refund",
                   target=f"redemption:{red.id}",
                   detail={"txn_id": cb.txn_id, "amount_fen": f.refund.amount_fen})
        return CallbackOut(txn_id=cb.txn_id, accepted=True, duplicate=f.replayed,
                           redemption_id=red.id, refund_id=f.refund.id,
                           amount_fen=f.refund.amount_fen)

    return st.db.run(run)


__all__ = ["MEDIA_TYPE", "router", "sign"]
