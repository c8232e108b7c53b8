"""Pure ledger rules: account codes, flags, and what a transfer may do.

"A → B" means value moves from A to B: debit A, credit B. An account's balance is
credits_posted - debits_posted; money on hold sits in debits_pending until posted or voided.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum

from civicvoucher.i18n import terms


class AccountCode(StrEnum):
    FUNDING_EXTERNAL = "funding.external"  # the outside world: may go negative
    UNION_FUND = "union.fund"
    PROGRAM_RESERVE = "program.reserve"
    VOUCHERS_OUTSTANDING = "vouchers.outstanding"
    MERCHANT_PAYABLE = "merchant.payable"
    SETTLEMENT_CLEARING = "settlement.clearing"
    # What a merchant owes back: a refund of an already-paid redemption debits it (its balance
    # goes below zero), and the merchant's next settlement credits it from the payout.
    MERCHANT_RECEIVABLE = "merchant.receivable"


class AccountFlags(IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # never negative


class TransferFlags(IntFlag):
    NONE = 0
    PENDING = 1
    POST_PENDING = 2
    VOID_PENDING = 4


class TransferCode(StrEnum):
    DEPOSIT = "deposit"
    RESERVE = "reserve"
    ISSUE = "issue"
    REDEEM = "redeem"
    HOLD = "hold"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    EXPIRE = "expire"
    SETTLE = "settle"
    RECOVER = "recover"  # netted from a payout: what the merchant owed back


class DepositSource(StrEnum):
    DUES = "dues"  # 工会会费/经费 collected
    FISCAL = "fiscal"  # 财政拨款
    TRANSFER = "transfer"  # from a higher federation


DEPOSIT_SOURCE_LABEL_ZH: dict[DepositSource, str] = {
    DepositSource.DUES: "工会经费",
    DepositSource.FISCAL: "财政拨款",
    DepositSource.TRANSFER: "上级划拨",
}
terms.register("deposit_source", DEPOSIT_SOURCE_LABEL_ZH)


FLAGS_FOR_CODE: dict[AccountCode, AccountFlags] = {
    AccountCode.FUNDING_EXTERNAL: AccountFlags.NONE,
    AccountCode.UNION_FUND: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.PROGRAM_RESERVE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.VOUCHERS_OUTSTANDING: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.MERCHANT_PAYABLE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.SETTLEMENT_CLEARING: AccountFlags.NONE,
    AccountCode.MERCHANT_RECEIVABLE: AccountFlags.NONE,  # at most zero; verify checks it
}


def account_key(code: AccountCode, *parts: object) -> str:
    """Natural key of an account: 'union.fund:12', 'vouchers.outstanding:12:3'."""
    return ":".join([str(code), *(str(p) for p in parts)])


def same_transfer(a: dict, b: dict) -> bool:
    """Does a retried transfer ask for exactly what the first one did?"""
    keys = ("debit_account_id", "credit_account_id", "amount", "code", "pending_id", "flags")
    return all(a.get(k) == b.get(k) for k in keys)
