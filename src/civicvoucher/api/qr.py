"""Rotating QR payloads for digital vouchers: ``cv1.<voucher id>.<expiry>.<signature>``.

The signature is an HMAC over the id, the expiry and the voucher's secret code, so the payload
carries no code, cannot be forged, and stops working ``period`` seconds after it was made: a
screenshot passed around expires with the next rotation. A payload is also single-use: the
redemption it pays for spends it (``redeem(qr_exp=...)``), so a refund that restores the
voucher does not bring a payload already used back to life, even inside its window.

A voucher exported for hand-out (``voucher export``) carries a different payload,
``cvh1.<voucher id>.<member id>.<signature>``: a member-bound claim, not a means of payment.
It holds no code and cannot be spent (the cashier's lookup refuses it, ``qr_not_for_payment``);
the member opens it in the app, which shows the voucher only to that member's login and pays
with the rotating payload above. So a hand-out sheet that leaks leaks no money: a static QR of
the code would be a bearer instrument, spendable by whoever photographs it.

``image`` draws either payload as a QR code (PNG or SVG, with segno).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from civicvoucher.core import clock, ids
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_
from civicvoucher.vouchers.models import Voucher

PREFIX = "cv1"
HANDOUT_PREFIX = "cvh1"
_HANDOUT_DOMAIN = b"civicvoucher hand-out claim v1"


def _epoch(t: datetime) -> int:
    return calendar.timegm(t.timetuple())


def _sig(key: bytes, voucher_id: int, exp: int, code: str) -> str:
    mac = hmac.new(key, f"{voucher_id}.{exp}.{code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def make_payload(key: bytes, voucher: Voucher, *, period_s: int) -> tuple[str, datetime]:
    exp = _epoch(clock.now()) + period_s
    payload = f"{PREFIX}.{voucher.id}.{exp}.{_sig(key, voucher.id, exp, voucher.code)}"
    return payload, datetime.fromtimestamp(exp, UTC).replace(tzinfo=None)


def read_payload(session: Session, key: bytes, payload: str, *,
                 replaying: Callable[[Voucher], bool] | None = None) -> Voucher:
    """The voucher a scanned payload stands for, or ``qr_invalid`` / ``qr_expired``.

    ``replaying(voucher)``: True when this request is a retry of one that already spent the
    payload (its key found a redemption of this voucher); an expired payload is then still
    read, so the retry gets its first answer (the receipt) instead of ``qr_expired``."""
    parts = payload.split(".")
    if parts[0] == HANDOUT_PREFIX:
        raise ValidationError(N_("a hand-out QR code, not a payment: the member opens the "
                                 "voucher in the app and shows its payment QR"), field="payload",
                              code="qr_not_for_payment")
    voucher_id = ids.as_id(parts[1], max_value=2**62) if len(parts) == 4 else None
    exp = ids.as_id(parts[2], max_value=2**62) if len(parts) == 4 else None
    if parts[0] != PREFIX or voucher_id is None or exp is None:
        raise ValidationError(N_("not a voucher QR code"), field="payload", code="qr_invalid")
    v = session.get(Voucher, voucher_id)
    if v is None or not hmac.compare_digest(_sig(key, voucher_id, exp, v.code), parts[3]):
        raise ValidationError(N_("not a voucher QR code"), field="payload", code="qr_invalid")
    if exp < _epoch(clock.now()) and not (replaying is not None and replaying(v)):
        raise ValidationError(N_("this QR code has expired; ask the member to refresh it"),
                              field="payload", code="qr_expired")
    return v


def payload_expiry(payload: str) -> int:
    """The expiry second of a payload ``read_payload`` accepted (it names the payload)."""
    return int(payload.split(".")[2])


def handout_key(secret_key: bytes) -> bytes:
    """The hand-out claims' key, derived from the server secret apart from the payment QR's
    (a claim's signature can never pass as a payment payload's, nor the reverse)."""
    return hmac.new(secret_key, _HANDOUT_DOMAIN, hashlib.sha256).digest()


def _handout_sig(key: bytes, voucher_id: int, member_id: int, code: str) -> str:
    mac = hmac.new(key, f"h.{voucher_id}.{member_id}.{code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def make_handout(key: bytes, voucher: Voucher) -> str:
    """The hand-out claim of a voucher: which voucher, whose, signed over its secret code (so
    it names the voucher without revealing the code). It does not expire: it spends nothing."""
    sig = _handout_sig(key, voucher.id, voucher.member_id, voucher.code)
    return f"{HANDOUT_PREFIX}.{voucher.id}.{voucher.member_id}.{sig}"


def read_handout(session: Session, key: bytes, payload: str) -> Voucher:
    """The voucher a hand-out claim names, if it is genuine and still the member's it names;
    else ``qr_invalid``."""
    parts = payload.split(".")
    voucher_id = ids.as_id(parts[1], max_value=2**62) if len(parts) == 4 else None
    member_id = ids.as_id(parts[2], max_value=2**62) if len(parts) == 4 else None
    if parts[0] == HANDOUT_PREFIX and voucher_id is not None and member_id is not None:
        v = session.get(Voucher, voucher_id)
        if (v is not None and v.member_id == member_id and hmac.compare_digest(
                _handout_sig(key, v.id, member_id, v.code), parts[3])):
            return v
    raise ValidationError(N_("not a voucher hand-out QR code"), field="payload",
                          code="qr_invalid")


IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def image(payload: str, kind: str = "png", *, scale: int = 8) -> bytes:
    """``payload`` as a QR code image: ``png`` or ``svg``, black on white (readable on a dark
    screen too), error correction M, the standard four-module quiet zone."""
    import io

    import segno

    if kind not in IMAGE_TYPES:
        raise ValueError(f"QR image kind must be png or svg, not {kind!r}")
    code = segno.make_qr(payload, error="m")  # a full QR code, never a Micro QR
    out = io.BytesIO()
    extra = {"xmldecl": False, "title": "voucher QR"} if kind == "svg" else {}
    code.save(out, kind=kind, scale=scale, border=4, dark="#000", light="#fff", **extra)
    return out.getvalue()
