"""Pure voucher rules: states, the one transition table, and what makes a voucher spendable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from civicvoucher.core.money import format_yuan
from civicvoucher.errors import InvalidTransition, VoucherNotRedeemable


class VoucherForm(StrEnum):
    DIGITAL = "digital"  # e.g. in the UnionPay app
    PAPER = "paper"


class VoucherStatus(StrEnum):
    ISSUED = "issued"
    HELD = "held"  # an online order holds it until capture or void
    REDEEMED = "redeemed"
    EXPIRED = "expired"  # unredeemed value went back to the union's fund


class RedemptionStatus(StrEnum):
    HELD = "held"
    POSTED = "posted"
    VOIDED = "voided"
    REFUNDED = "refunded"


class IssuanceStatus(StrEnum):
    COMPLETED = "completed"
    PARTIAL = "partial"  # issued as far as funds went; the rest is shortfall
    REFUSED = "refused"  # could not fund everyone, issued nothing
    NOTHING_TO_ISSUE = "nothing_to_issue"


class IssueMode(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    PARTIAL = "partial"


VOUCHER_TRANSITIONS: dict[tuple[VoucherStatus, str], VoucherStatus] = {
    (VoucherStatus.ISSUED, "redeem"): VoucherStatus.REDEEMED,
    (VoucherStatus.ISSUED, "hold"): VoucherStatus.HELD,
    (VoucherStatus.HELD, "capture"): VoucherStatus.REDEEMED,
    (VoucherStatus.HELD, "void"): VoucherStatus.ISSUED,
    (VoucherStatus.REDEEMED, "refund"): VoucherStatus.ISSUED,
    (VoucherStatus.REDEEMED, "refund_after_expiry"): VoucherStatus.EXPIRED,
    (VoucherStatus.ISSUED, "expire"): VoucherStatus.EXPIRED,
}


def transition(status: str, event: str) -> tuple[VoucherStatus, VoucherStatus]:
    """(from, to) for an event, or InvalidTransition. Services use both in a conditional UPDATE."""
    frm = VoucherStatus(status)
    to = VOUCHER_TRANSITIONS.get((frm, event))
    if to is None:
        raise InvalidTransition(f"a voucher that is {frm} cannot {event}")
    return frm, to


_STATUS_ERROR = {
    VoucherStatus.REDEEMED: "voucher_already_redeemed",
    VoucherStatus.HELD: "voucher_already_redeemed",  # held by another order counts as spent
    VoucherStatus.EXPIRED: "voucher_expired",
}


def status_error(status: str) -> VoucherNotRedeemable:
    code = _STATUS_ERROR.get(VoucherStatus(status), "voucher_not_redeemable")
    return VoucherNotRedeemable(f"voucher is {status}", code=code)


@dataclass(frozen=True)
class SpendCheck:
    """What a cashier needs to know, and what redeem() checks."""

    status: str
    amount_fen: int
    threshold_fen: int
    valid_from: datetime
    expires_at: datetime
    categories: frozenset[str]
    channels: frozenset[str]
    region_prefix: str

    @property
    def min_order_fen(self) -> int:
        """The order must cover the voucher's value and reach its threshold (满X减Y)."""
        return max(self.amount_fen, self.threshold_fen)


def check_redeemable(
    v: SpendCheck,
    *,
    merchant_status: str,
    merchant_category: str,
    merchant_county: str,
    merchant_channels: frozenset[str],
    channel: str,
    order_amount_fen: int,
    now: datetime,
) -> None:
    """Raise VoucherNotRedeemable with a stable code, or return if this spend is allowed."""
    if v.status != VoucherStatus.ISSUED:
        raise status_error(v.status)
    if now < v.valid_from:
        from civicvoucher.core.clock import format_local  # people read the deployment's zone
        raise VoucherNotRedeemable(f"valid from {format_local(v.valid_from)}", code="voucher_not_yet_valid")
    if now >= v.expires_at:
        from civicvoucher.core.clock import format_local
        raise VoucherNotRedeemable(f"expired at {format_local(v.expires_at)}", code="voucher_expired")
    if merchant_status != "active":
        raise VoucherNotRedeemable(f"merchant is {merchant_status}", code="merchant_not_active")
    if merchant_category not in v.categories:
        raise VoucherNotRedeemable(
            f"category {merchant_category} is not allowed", code="category_not_allowed"
        )
    if channel not in v.channels or channel not in merchant_channels:
        raise VoucherNotRedeemable(f"channel {channel} is not allowed", code="channel_not_allowed")
    if not merchant_county.startswith(v.region_prefix):
        raise VoucherNotRedeemable(
            f"merchant in {merchant_county} is outside the voucher's region {v.region_prefix}",
            code="region_not_allowed",
        )
    if order_amount_fen < v.min_order_fen:
        raise VoucherNotRedeemable(
            f"订单金额 {format_yuan(order_amount_fen)} 未达到此券所需的 "
            f"{format_yuan(v.min_order_fen)} / the order of {format_yuan(order_amount_fen)} is "
            f"below the {format_yuan(v.min_order_fen)} this voucher needs",
            code="order_below_threshold", min_order_fen=v.min_order_fen,
        )


def request_hash(**params: object) -> str:
    """Fingerprint of a request body: same key + same body = replay; other body = conflict."""
    blob = json.dumps(params, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
