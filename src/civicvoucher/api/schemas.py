"""Request and response bodies. One response schema per audience: an ORM row never leaves a
route as is, and no schema carries an unmasked ID number or phone (none is stored anyway).

Money is integer fen, strictly: every ``*_fen`` field refuses true, "100" and 1.0 (422 naming
the field), in requests and responses alike.

Times: a request's time without an offset is local wall time in the deployment's zone
(``CIVICVOUCHER_TIMEZONE``, default Asia/Shanghai); an explicit offset (``+08:00``, ``Z``) is
honoured; a local time that daylight saving skips or repeats is refused (422 naming the field).
Every time in a response carries the deployment zone's offset: ``2020-07-11T00:00:00+08:00``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
)

from civicvoucher.core import clock
from civicvoucher.core.sealed import SHOWN_ONCE  # secrets task: shown-once response fields


def _local_to_utc(v: datetime) -> datetime:
    return clock.to_utc(v)  # naive = local wall time; ZoneError (a ValueError) names the time


def _utc_to_local(v: datetime) -> datetime:
    try:
        return clock.to_local(v)
    except OverflowError:  # at the edge of the calendar (9999-12-31T23:00Z): say it in UTC
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v


Id = Annotated[int, Field(ge=1, le=2_147_483_647)]
Fen = Annotated[StrictInt, Field(ge=1, le=10**13, description="amount in fen (1 yuan = 100 fen), "
                                                              "an integer (not a string or float)")]
FenOut = Annotated[StrictInt, Field(description="amount in fen (1 yuan = 100 fen)")]
When = Annotated[datetime, AfterValidator(_local_to_utc),
                 Field(description="ISO 8601; without an offset it is local time in the "
                                   "deployment's zone (CIVICVOUCHER_TIMEZONE, default "
                                   "Asia/Shanghai); an explicit offset (+08:00, Z) is honoured; "
                                   "a local time that daylight saving skips or repeats is refused")]


def _deadline_day(v: object) -> object:
    """A bare date as a deadline: through the end of that local day (as in program files)."""
    day = clock.bare_date(v)
    return clock.end_of_day(day).replace(tzinfo=UTC) if day is not None else v


Deadline = Annotated[datetime, BeforeValidator(_deadline_day), AfterValidator(_local_to_utc),
                     Field(description="exclusive deadline, ISO 8601, local time unless an "
                                       "offset is given; a bare date (2020-07-31) means through "
                                       "the end of that local day")]
Instant = Annotated[datetime, PlainSerializer(_utc_to_local, return_type=datetime, when_used="json"),
                    Field(description="ISO 8601 with the deployment zone's offset, e.g. "
                                      "2020-07-11T00:00:00+08:00")]
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
LongText = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$")]
Code = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9 -]+$",
                            description="a voucher code as typed, any case, dashes allowed")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth --------------------------------------------------------------------------------

class LoginIn(In):
    username: Text
    password: Annotated[str, Field(min_length=1, max_length=200)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class WhoAmI(BaseModel):
    user_id: int
    username: str
    role: str
    org_id: int | None
    merchant_id: int | None
    member_id: int | None


class ApiTokenIn(In):
    name: Text


class ApiTokenOut(BaseModel):
    id: int
    name: str | None
    prefix: str
    token: Annotated[str | None, SHOWN_ONCE] = Field(
        None, description="shown once, at creation, and never stored: null in a replay "
                          "(X-CV-Secret-Withheld names it); lost, revoke it and make a new one")
    revoked: bool


def _channel_word(value: object) -> object:
    """A channel by its code or its Chinese name: "offline" or "线下" (merchants.rules)."""
    if isinstance(value, str):
        from civicvoucher.merchants.rules import parse_channels

        found, unknown = parse_channels(value)
        if len(found) == 1 and not unknown:
            return found[0].value
    return value


class UserIn(In):
    username: Text
    role: Literal["province_admin", "city_admin", "county_admin", "union_admin",
                  "merchant_admin", "cashier", "auditor", "analyst", "channel", "member"]
    password: Annotated[str | None, Field(min_length=10, max_length=200)] = None
    org_id: Id | None = Field(None, description="binds the organisation roles, and only them")
    merchant_id: Id | None = Field(None, description="binds merchant_admin and cashier only")
    member_id: Id | None = Field(None, description="binds a member user only")
    channels: Annotated[list[Annotated[Literal["offline", "online", "takeaway", "groupbuy"],
                                       BeforeValidator(_channel_word)]],
                        Field(min_length=1, max_length=4,
                              description="a channel user only: the redemption channel kinds "
                                          "its callbacks may report (default online)")] | None = None
    send_code_to_phone: Annotated[str | None, Field(
        min_length=1, max_length=20, pattern=r"^[0-9 +()-]+$",
        description="a member only (who takes no password): send the activation code to this "
                    "number, which must be the member's phone on file; without it the code is "
                    "in the answer, once, for a sealed slip")] = None


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    org_id: int | None
    merchant_id: int | None
    member_id: int | None
    channel_secret: Annotated[str | None, SHOWN_ONCE] = Field(
        None, description="a channel's HMAC secret, shown once and stored only sealed: null in a "
                          "replay (X-CV-Secret-Withheld names it)")
    activation_code: Annotated[str | None, SHOWN_ONCE] = Field(None, description=(
        "a new member's one-time activation code, shown once (not when sent by SMS): null in "
        "a replay"))
    activation_expires_at: Instant | None = None
    activation_sent_to: str | None = Field(None, description="the masked phone it was sent to")


class Revoked(BaseModel):
    revoked: bool


# --- organisations and funds ---------------------------------------------------------------

class OrgIn(In):
    level: Literal["city", "county", "union"]
    name: Text
    parent_id: Id
    division_code: Annotated[str | None, Field(pattern=r"^\d{6}$")] = None
    uscc: Annotated[str | None, Field(pattern=r"^[0-9A-Z]{18}$")] = None
    unit_type: Literal["administrative", "enterprise"] | None = None


class OrgOut(BaseModel):
    id: int
    parent_id: int | None
    level: str
    name: str
    division_code: str | None
    uscc: str | None
    unit_type: str | None
    region_code: str


class FundBalance(BaseModel):
    org_id: int
    balance_fen: FenOut


class DepositIn(In):
    org_id: Id
    amount_fen: Fen
    source: Literal["dues", "fiscal", "transfer"]
    from_org_id: Id | None = None
    memo: Text | None = None


class DepositOut(BaseModel):
    transfer_id: str
    org_id: int
    amount_fen: FenOut
    source: str
    balance_fen: FenOut


# --- members --------------------------------------------------------------------------------

class MemberAdminView(BaseModel):
    """What an administrator or auditor sees: ID number and phone masked."""

    id: int
    union_id: int
    name: str
    id_masked: str
    phone_masked: str | None
    status: str


class RowErrorOut(BaseModel):
    row: int
    field: str
    reason: str


class OrgImportOut(BaseModel):
    rows: int
    imported: int
    orgs: list[OrgOut]


class ImportOut(BaseModel):
    rows: int
    imported: int
    unchanged: int
    rejected: list[RowErrorOut]
    duplicates: int


# --- programs -------------------------------------------------------------------------------

class ProductOut(BaseModel):
    key: str
    kind: str
    name: str
    denominations_fen: list[FenOut]
    threshold_fen: FenOut
    categories: list[str]
    channels: list[str]
    region_scope: str
    valid_from: Instant
    expires_at: Instant
    optional: bool


class ProgramOut(BaseModel):
    id: int
    key: str
    name: str
    documents: list[str]
    per_member_fen: FenOut
    products: list[ProductOut]
    created: bool | None = None
    updated: bool | None = Field(None, description="PUT: whether the definition changed")


# --- issuance -------------------------------------------------------------------------------

class IssueIn(In):
    union_id: Id
    program: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    products: Annotated[list[Annotated[str, Field(max_length=80)]] | None,
                        Field(max_length=20)] = None
    member_ids: Annotated[list[Id] | None, Field(max_length=100_000)] = None
    form: Literal["digital", "paper"] = "digital"
    mode: Literal["all_or_nothing", "partial"] = "all_or_nothing"
    funding_org_id: Id | None = None


class IssuanceOut(BaseModel):
    id: int
    union_id: int
    program_id: int
    products: list[str]
    funding_org_id: int
    mode: str
    form: str
    status: str
    members_eligible: int
    members_issued: int
    members_duplicate: int
    vouchers_issued: int
    amount_fen: FenOut
    shortfall_fen: FenOut
    created_at: Instant


# --- merchants ------------------------------------------------------------------------------

Channel = Annotated[Literal["offline", "online", "takeaway", "groupbuy"],
                    BeforeValidator(_channel_word)]


class MerchantIn(In):
    uscc: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{18}$")]
    name: Text
    mcc: Annotated[str, Field(pattern=r"^\d{4}$")]
    county_code: Annotated[str, Field(pattern=r"^\d{6}$")]
    channels: Annotated[list[Channel], Field(min_length=1, max_length=4)]
    status: Literal["pending", "active", "suspended"] = "pending"


class MerchantOut(BaseModel):
    id: int
    uscc: str
    name: str
    mcc: str
    category: str
    county_code: str
    channels: list[str]
    status: str


class MerchantStatusIn(In):
    status: Literal["pending", "active", "suspended"]


# --- spending -------------------------------------------------------------------------------

class VoucherRef(In):
    """A voucher as the cashier has it: the scanned QR payload, or the code typed in."""

    payload: Annotated[str | None, Field(min_length=1, max_length=200,
                                         pattern=r"^[A-Za-z0-9._-]+$")] = None
    code: Code | None = None


class LookupIn(VoucherRef):
    merchant_id: Id | None = None


class CashierVoucherView(BaseModel):
    """What a cashier sees before redeeming: value and rules, never whose voucher it is."""

    status: str
    amount_fen: FenOut
    threshold_fen: FenOut
    min_order_fen: FenOut = Field(description="the order must be at least this")
    valid_from: Instant
    expires_at: Instant
    categories: list[str]
    channels: list[str]
    region_prefix: str


class RedeemIn(VoucherRef):
    merchant_id: Id | None = Field(None, description="defaults to the cashier's merchant")
    order_amount_fen: Fen
    channel: Channel = "offline"
    hold: bool = Field(False, description="online orders: hold until capture or void")


class Receipt(BaseModel):
    """A redemption as its merchant and the administrators see it."""

    receipt_id: str = Field(description="quote this to the customer and in disputes")
    id: int
    merchant_id: int
    union_id: int
    program_id: int
    channel: str
    order_amount_fen: FenOut
    amount_fen: FenOut
    status: str
    hold_expires_at: Instant | None
    created_at: Instant
    posted_at: Instant | None
    settled: bool


class RefundIn(In):
    reason: LongText | None = None


class RefundOut(BaseModel):
    id: int
    redemption_id: int
    outcome: str
    amount_fen: FenOut
    created_at: Instant


# --- province-wide runs ---------------------------------------------------------------------

class ExpiryIn(In):
    as_of: When


class ExpiryOut(BaseModel):
    id: int
    as_of: Instant
    vouchers_expired: int
    amount_fen: FenOut
    holds_voided: int


class ExtensionIn(In):
    program: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    new_expires_at: Deadline
    reason: LongText
    product: Annotated[str | None, Field(max_length=80, pattern=r"^[a-z0-9][a-z0-9_-]*$")] = None
    union_ids: Annotated[list[Id] | None, Field(max_length=10_000)] = None
    region_prefix: Annotated[str | None, Field(pattern=r"^\d{2,6}$")] = None
    form: Literal["digital", "paper"] | None = None
    document: Text | None = None


class ExtensionOut(BaseModel):
    id: int
    program_id: int
    new_expires_at: Instant
    vouchers_extended: int
    program_wide: bool


class SettlementIn(In):
    cutoff: When


class SettlementOut(BaseModel):
    id: int
    cutoff: Instant
    batches: int
    redemptions: int
    amount_fen: FenOut = Field(description="the settled redemptions' total (gross)")
    recovered_fen: FenOut = Field(description="kept from the payouts: refunds of redemptions "
                               "the merchants had already been paid for")
    payout_fen: FenOut = Field(description="paid to the merchants: amount_fen - recovered_fen")


class SettlementBatchOut(BaseModel):
    """One merchant's payout in one settlement run."""

    id: int
    run_id: int
    merchant_id: int
    redemptions: int
    amount_fen: FenOut = Field(description="its redemptions' total (gross)")
    recovered_fen: FenOut = Field(description="kept back: refunds after earlier payouts")
    payout_fen: FenOut = Field(description="paid: amount_fen - recovered_fen")
    created_at: Instant


class LedgerProblem(BaseModel):
    check: str
    subject: str
    detail: str


class LedgerVerifyOut(BaseModel):
    ok: bool
    problems: list[LedgerProblem]


# --- reports (aggregates only) ----------------------------------------------------------------

class StatusTotal(BaseModel):
    status: str
    vouchers: int
    amount_fen: FenOut


class SummaryReport(BaseModel):
    """Aggregates over an organisation's subtree: no row about any person."""

    org_id: int
    unions: int
    members: int
    fund_balance_fen: FenOut
    vouchers: list[StatusTotal]
    redemptions: int
    redeemed_fen: FenOut
    order_total_fen: FenOut


# --- audit ----------------------------------------------------------------------------------

class AuditEntryOut(BaseModel):
    seq: int
    created_at: Instant
    actor: str
    role: str | None
    scope: str | None
    action: str
    target: str | None
    outcome: str
    request_id: str | None
    detail: dict
    hash: str


class AuditBreak(BaseModel):
    seq: int
    reason: str


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    breaks: list[AuditBreak]


# --- a member's own vouchers ----------------------------------------------------------------

class MemberVoucherView(BaseModel):
    id: int
    code: str | None = Field(description="printed on paper vouchers; digital ones show a QR")
    program_id: int
    amount_fen: FenOut
    threshold_fen: FenOut
    form: str
    status: str
    valid_from: Instant
    expires_at: Instant


class QrOut(BaseModel):
    payload: str
    expires_at: Instant
    refresh_after_s: int


# --- payment-channel callbacks --------------------------------------------------------------

class CallbackIn(In):
    txn_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                 description="the channel's transaction id: the idempotency key")]
    kind: Literal["redeem", "refund"]
    code: Code | None = None
    merchant_id: Id | None = None
    order_amount_fen: Fen | None = None
    channel: Channel = "online"
    original_txn_id: Annotated[str | None, Field(min_length=1, max_length=64,
                                                 pattern=r"^[A-Za-z0-9_.:-]+$")] = None
    reason: LongText | None = None


class CallbackOut(BaseModel):
    txn_id: str
    accepted: bool
    duplicate: bool
    redemption_id: int | None = None
    refund_id: int | None = None
    amount_fen: FenOut | None = None


# --- member changes (status, phone, transfer, re-import with updates) ------------------------

class MemberStatusIn(In):
    status: Literal["active", "suspended", "left", "transferred"] = Field(
        description="left: 离会; transferred: 调出 to a union outside this registry (to move "
                    "the member to a union here, use /transfer)")
    reason: Text | None = None


class MemberPhoneIn(In):
    phone: Annotated[str | None, Field(min_length=1, max_length=20, pattern=r"^[0-9 +()-]+$",
                                       description="a mainland mobile number; null removes it")]


class MemberTransferIn(In):
    to_union_id: Id
    reason: Text | None = None


class FieldChangeOut(BaseModel):
    """One field of one member: phones masked."""

    field: Literal["name", "phone", "status"]
    old: str | None
    new: str | None


class MemberChangeOut(BaseModel):
    member: MemberAdminView
    changed: bool  # False: it already was so (nothing written)
    changes: list[FieldChangeOut]


class MemberTransferOut(BaseModel):
    old: MemberAdminView  # the row in the union the member left: status transferred
    new: MemberAdminView  # the member's row in the new union
    created: bool  # False: the person already had a row there, which was used
    changed: bool  # False: already transferred there (nothing written)


class MemberRowChangeOut(BaseModel):
    row: int | None
    member_id: int
    id_masked: str
    changes: list[FieldChangeOut]


class MemberImportOut(ImportOut):
    updated: int = 0  # members changed (with update=true)
    dry_run: bool = False
    changes_total: int = 0  # registered members who differ from the file
    changes: list[MemberRowChangeOut] = []  # the first 1,000 of them


# --- member credentials and deposit approvals (issue 9, task "credentials") ------------------

class ActivateIn(In):
    """A member activates their account: the one-time code and a password of their own."""

    username: Text | None = Field(None, description="the member user's name, or give member_id")
    member_id: Id | None = Field(None, description="the member's id in the registry")
    code: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$",
                               description="as printed or sent, e.g. ABCDE-FGHJK (any case)")]
    password: Annotated[str, Field(min_length=10, max_length=200)]


class ActivatedOut(BaseModel):
    user_id: int
    username: str
    member_id: int | None
    activated: bool = True


class InviteIn(In):
    send_code_to_phone: Annotated[str | None, Field(
        min_length=1, max_length=20, pattern=r"^[0-9 +()-]+$",
        description="send the code to this number (it must be the member's phone on file); "
                    "without it the code is in the answer, once, for a sealed slip")] = None


class InviteOut(BaseModel):
    user_id: int
    username: str
    member_id: int | None
    activation_code: Annotated[str | None, SHOWN_ONCE] = Field(
        None, description="shown once (not when sent by SMS): null in a replay")
    activation_expires_at: Instant
    activation_sent_to: str | None = None
    voided_previous: bool = Field(description="an unused earlier code no longer works")
    cleared_password: bool = Field(description="the password set before was cleared and the "
                                               "user's tokens revoked")


class DepositRequestOut(BaseModel):
    """A deposit that waits for (or had) its second person; money moves only on approval."""

    id: int
    org_id: int
    from_org_id: int | None
    amount_fen: FenOut
    source: str
    reason: Literal["fiscal", "transfer", "over_threshold"]
    status: Literal["pending", "approved", "rejected"]
    maker_name: str
    checker_name: str | None
    note: str | None
    transfer_id: str | None
    created_at: Instant
    decided_at: Instant | None
    balance_fen: FenOut | None = Field(None, description="the fund after the decision")


class RejectIn(In):
    reason: Text | None = None
# --- issue 10 (report): a program's policy report as JSON (GET /reports/programs/{program}) --

class ReportColumnOut(BaseModel):
    key: str
    label_zh: str
    label_en: str
    kind: Literal["text", "fen", "count", "ratio", "share", "unit", "bool"] = Field(
        description="fen: integer fen; count: an integer; share: a fraction (0.172 is 17.2%); "
                    "ratio: a plain ratio (leverage 1.27); unit: the row's `unit` cell says "
                    "which of these the value is")
    code: bool = Field(description="a machine key (e.g. level = 'province'), not for people")


class ReportTableOut(BaseModel):
    name: str
    title_zh: str
    title_en: str
    note_zh: str
    note_en: str
    columns: list[ReportColumnOut]
    rows: list[dict[str, str | int | float | bool | None]] = Field(
        description="one object per row, keyed by column key; money in integer fen, null "
                    "where there is nothing to divide by")


class ReportHeadlineOut(BaseModel):
    key: str
    label_zh: str
    label_en: str
    unit: Literal["fen", "count", "share", "ratio"]
    value: int | float | None = Field(description="as measured (a sample's own value)")
    full: int | float | None = Field(description="at full size: value / scale")


class ReportNoticeOut(BaseModel):
    code: str
    zh: str
    en: str


class ReportScopeOut(BaseModel):
    org_id: int | None = Field(description="the subtree's root; null: the whole program")
    name_zh: str
    level: str | None
    code: str | None = Field(description="its division code or USCC")


class ProgramReportOut(BaseModel):
    """The same tables as ``civicvoucher report`` writes, over the caller's subtree."""

    program_id: int
    program_key: str
    program_name: str
    scope: ReportScopeOut
    scale: float = Field(description="1 for a real program; a simulated sample's fraction")
    sample: bool = Field(description="true: every table holds sample values, not real figures")
    sample_warning_zh: str | None
    sample_warning_en: str | None
    scenario: str | None
    generated_at: Instant
    notices: list[ReportNoticeOut]
    headline: list[ReportHeadlineOut]
    tables: list[ReportTableOut]
