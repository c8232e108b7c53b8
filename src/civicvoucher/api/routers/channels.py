"""Payment-channel callbacks: a UnionPay-style app reports redemptions and refunds.

Each callback is signed by the channel's own secret:

    X-CV-Channel:   the channel's name
    X-CV-Timestamp: Unix seconds when it was sent
    X-CV-Signature: hex HMAC-SHA256(secret, "<timestamp>.<raw body>")

A timestamp more than ``callback_window_s`` (300 s) from the server's clock is refused, so an
old capture cannot be replayed later. The channel's ``txn_id`` is the idempotency key: payment
networks resend callbacks many times, and a resend with the same body answers the first result
(``duplicate: true``) and changes nothing; the same txn_id with another body is a 409.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac

from fastapi import Depends, Request
from pydantic import ValidationError as PydanticError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from civicvoucher.api.problems import MEDIA_TYPE
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import state
from civicvoucher.api.schemas import CallbackIn, CallbackOut
from civicvoucher.api.state import AppState
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth.errors import Unauthenticated
from civicvoucher.auth.models import ApiUser, PaymentChannel
from civicvoucher.core import clock
from civicvoucher.errors import ValidationError
from civicvoucher.vouchers.redemption import redeem, redemption_by_key, refund

router = make_router("/channels", "payment channels")

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


def _check_signature(s: Session, st: AppState, request: Request, body: bytes):
    name = request.headers.get("x-cv-channel", "")
    ts = request.headers.get("x-cv-timestamp", "")
    sig = request.headers.get("x-cv-signature", "")
    row = s.execute(select(PaymentChannel, ApiUser).join(ApiUser, ApiUser.id == PaymentChannel.user_id)
                    .where(PaymentChannel.name == name[:100])).first() if name else None
    if row is None or not row[1].active:
        raise Unauthenticated("unknown channel or bad signature", code="bad_signature")
    channel, user = row
    if not ts.isdigit() or len(ts) > 12:
        raise Unauthenticated("X-CV-Timestamp must be Unix seconds", code="stale_timestamp")
    now = calendar.timegm(clock.now().timetuple())
    if abs(now - int(ts)) > st.callback_window_s:
        raise Unauthenticated(f"timestamp is more than {st.callback_window_s} s off",
                              code="stale_timestamp", channel=channel.name)
    if not hmac.compare_digest(sign(channel.secret, ts, body), sig.lower()):
        raise Unauthenticated("unknown channel or bad signature", code="bad_signature",
                              channel=channel.name)
    return channel, user


@router.post("/callbacks", response_model=CallbackOut, name="channel_callback",
             openapi_extra={"requestBody": _BODY, "parameters": _HEADERS,
                            "security": []})
async def channel_callback(request: Request, st: AppState = Depends(state)) -> CallbackOut:
    """A redemption or refund reported by a payment channel (signed, idempotent on txn_id)."""
    body = await request.body()
    return await run_in_threadpool(_handle, st, request, body)


def _handle(st: AppState, request: Request, body: bytes) -> CallbackOut:
    rid = request.state.request_id
    try:
        channel, user = st.db.run(lambda s: _check_signature(s, st, request, body))
    except Unauthenticated as exc:
        refused = exc.code
        st.db.run(lambda s: append(
            s, key=st.audit_key, action="channel.callback", outcome="refused",
            actor=Actor(f"channel:{request.headers.get('x-cv-channel', '')[:80]}",
                        request_id=rid),
            detail={"code": refused}))
        raise
    try:
        cb = CallbackIn.model_validate_json(body)
    except PydanticError as bad:
        err = bad.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ValidationError(f"{loc}: {err['msg']}", field=loc or "body") from None
    actor = Actor(user.username, user.id, user.role, f"channel:{channel.id}", rid)
    key = f"chan:{channel.id}:{cb.txn_id}"

    def run(s: Session) -> CallbackOut:
        if cb.kind == "redeem":
            missing = [f for f in ("code", "merchant_id", "order_amount_fen")
                       if getattr(cb, f) is None]
            if missing:
                raise ValidationError(f"a redeem callback needs {missing[0]}", field=missing[0])
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
            raise ValidationError("a refund callback names original_txn_id",
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
