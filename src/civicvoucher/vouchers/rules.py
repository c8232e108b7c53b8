"""Pure voucher rules: states, the one transition table, and what makes a voucher spendable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from civicvoucher.errors import InvalidTransition, VoucherNotRedeemable
from civicvoucher.i18n import Term, Yuan, msg, terms


class VoucherForm(StrEnum):
    DIGITAL = "digital"  # e.g. in the UnionPay app
    PAPER = "paper"


class VoucherStatus(StrEnum):
    ISSUED = "issued"
    HELD = "held"  # an online order holds it until capture or void
    REDEEMED = "redeemed"
    EXPIRED = "expired"  # unredeemed value went back to the union's fund


VOUCHER_STATUS_LABEL_ZH: dict[VoucherStatus, str] = {
    VoucherStatus.ISSUED: "未使用",
    VoucherStatus.HELD: "预授权中",
    VoucherStatus.REDEEMED: "已使用",
    VoucherStatus.EXPIRED: "已过期",
}
VOUCHER_FORM_LABEL_ZH: dict[VoucherForm, str] = {
    VoucherForm.DIGITAL: "电子券",
    VoucherForm.PAPER: "纸质券",
}
terms.register("voucher_status", VOUCHER_STATUS_LABEL_ZH)
terms.register("voucher_form", VOUCHER_FORM_LABEL_ZH)


class RedemptionStatus(StrEnum):
    HELD = "held"
    POSTED = "posted"
    VOIDED = "voided"
    REFUNDED = "refunded"


REDEMPTION_STATUS_LABEL_ZH: dict[RedemptionStatus, str] = {
    RedemptionStatus.HELD: "预授权",
    RedemptionStatus.POSTED: "已核销",
    RedemptionStatus.VOIDED: "已撤销",
    RedemptionStatus.REFUNDED: "已退款",
}
terms.register("redemption_status", REDEMPTION_STATUS_LABEL_ZH)


class IssuanceStatus(StrEnum):
    COMPLETED = "completed"
    PARTIAL = "partial"  # issued as far as funds went; the rest is shortfall
    REFUSED = "refused"  # could not fund everyone, issued nothing
    NOTHING_TO_ISSUE = "nothing_to_issue"


ISSUANCE_STATUS_LABEL_ZH: dict[IssuanceStatus, str] = {
    IssuanceStatus.COMPLETED: "已完成",
    IssuanceStatus.PARTIAL: "部分发放",
    IssuanceStatus.REFUSED: "未发放",
    IssuanceStatus.NOTHING_TO_ISSUE: "无需发放",
}
terms.register("issuance_status", ISSUANCE_STATUS_LABEL_ZH)


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
        raise InvalidTransition(msg("a voucher that is {status} cannot {event}",
                                    status=Term(frm, "voucher_status"), event=event))
    return frm, to


_STATUS_ERROR = {
    VoucherStatus.REDEEMED: "voucher_already_redeemed",
    VoucherStatus.HELD: "voucher_already_redeemed",  # held by another order counts as spent
    VoucherStatus.EXPIRED: "voucher_expired",
}


def status_error(status: str) -> VoucherNotRedeemable:
    code = _STATUS_ERROR.get(VoucherStatus(status), "voucher_not_redeemable")
    return VoucherNotRedeemable(msg("voucher is {status}", status=Term(status, "voucher_status")),
                                code=code)


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
        raise VoucherNotRedeemable(msg("valid from {at}", at=format_local(v.valid_from)),
                                   code="voucher_not_yet_valid")
    if now >= v.expires_at:
        from civicvoucher.core.clock import format_local
        raise VoucherNotRedeemable(msg("expired at {at}", at=format_local(v.expires_at)),
                                   code="voucher_expired")
    if merchant_status != "active":
        raise VoucherNotRedeemable(
            msg("merchant is {status}", status=Term(merchant_status, "merchant_status")),
            code="merchant_not_active")
    if merchant_category not in v.categories:
        raise VoucherNotRedeemable(
            msg("category {category} is not allowed",
                category=Term(merchant_category, "category")),
            code="category_not_allowed"
        )
    if channel not in v.channels or channel not in merchant_channels:
        raise VoucherNotRedeemable(msg("channel {channel} is not allowed",
                                       channel=Term(channel, "channel")),
                                   code="channel_not_allowed")
    if not merchant_county.startswith(v.region_prefix):
        raise VoucherNotRedeemable(
            msg("merchant in {county} is outside the voucher's region {region}",
                county=merchant_county, region=v.region_prefix),
            code="region_not_allowed",
        )
    if order_amount_fen < v.min_order_fen:
        raise VoucherNotRedeemable(
            msg("the order of {order} is below the {needed} this voucher needs",
                order=Yuan(order_amount_fen), needed=Yuan(v.min_order_fen)),
            code="order_below_threshold", min_order_fen=v.min_order_fen,
        )


def request_hash(**params: object) -> str:
    """Fingerprint of a request body: same key + same body = replay; other body = conflict."""
    blob = json.dumps(params, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
