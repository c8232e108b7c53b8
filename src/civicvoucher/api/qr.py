"""Rotating QR payloads for digital vouchers: ``cv1.<voucher id>.<expiry>.<signature>``.

The signature is an HMAC over the id, the expiry and the voucher's secret code, so the payload
carries no code, cannot be forged, and stops working ``period`` seconds after it was made: a
screenshot passed around expires with the next rotation. A payload is also single-use: the
redemption it pays for spends it (``redeem(qr_exp=...)``), so a refund that restores the
voucher does not bring a payload already used back to life, even inside its window.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.errors import ValidationError
from civicvoucher.vouchers.models import Voucher

PREFIX = "cv1"


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
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValidationError("not a voucher QR code", field="payload", code="qr_invalid")
    voucher_id, exp = int(parts[1]), int(parts[2])
    v = session.get(Voucher, voucher_id) if voucher_id < 2**62 else None
    if v is None or not hmac.compare_digest(_sig(key, voucher_id, exp, v.code), parts[3]):
        raise ValidationError("not a voucher QR code", field="payload", code="qr_invalid")
    if exp < _epoch(clock.now()) and not (replaying is not None and replaying(v)):
        raise ValidationError("this QR code has expired; ask the member to refresh it",
                              field="payload", code="qr_expired")
    return v


def payload_expiry(payload: str) -> int:
    """The expiry second of a payload ``read_payload`` accepted (it names the payload)."""
    return int(payload.split(".")[2])
