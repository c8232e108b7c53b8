"""Union fund accounts: deposits from dues, fiscal allocations and higher federations."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from civicvoucher.core.money import fen
from civicvoucher.db import once
from civicvoucher.errors import ValidationError
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, DepositSource, TransferCode
from civicvoucher.orgs.service import get_org, is_within


def fund_account(session: Session, org_id: int) -> int:
    return ledger.account_id(session, AccountCode.UNION_FUND, org_id, org_id=org_id)


def fund_balance(session: Session, org_id: int) -> int:
    return ledger.balance(session, fund_account(session, org_id))


@dataclass(frozen=True)
class Deposit:
    transfer_id: str
    org_id: int
    amount_fen: int
    source: str
    balance_fen: int
    replayed: bool


def deposit(
    session: Session,
    *,
    org_id: int,
    amount_fen: int,
    source: str,
    idem_key: str,
    from_org_id: int | None = None,
    memo: str | None = None,
) -> Deposit:
    """Put money into an organisation's fund. A 'transfer' comes from an ancestor federation's
    fund (and cannot overdraw it); dues and fiscal allocations come from outside."""
    fen(amount_fen)
    if amount_fen <= 0:
        raise ValidationError("deposit must be positive", field="amount")
    src = DepositSource(source)
    org = get_org(session, org_id)
    if src == DepositSource.TRANSFER:
        if from_org_id is None:
            raise ValidationError("a transfer needs the paying federation", field="from_org")
        payer = get_org(session, from_org_id)
        if payer.id == org.id or not is_within(org, payer):
            raise ValidationError(
                "transfers flow from a federation down its own subtree", field="from_org"
            )
        debit = fund_account(session, payer.id)
    else:
        if from_org_id is not None:
            raise ValidationError("only a transfer names a paying federation", field="from_org")
        debit = ledger.account_id(session, AccountCode.FUNDING_EXTERNAL, src)
    tid, credit = f"deposit:{idem_key}", fund_account(session, org.id)
    body = ledger.transfer_body(debit, credit, amount_fen, TransferCode.DEPOSIT)
    t, replayed = once(session, "deposit", lambda: ledger.find_transfer(session, tid, body),
                       lambda: ledger.post_transfer(
                           session, id=tid, debit_account_id=debit, credit_account_id=credit,
                           amount=amount_fen, code=TransferCode.DEPOSIT, memo=memo or str(src)))
    return Deposit(t.id, org.id, amount_fen, str(src), fund_balance(session, org.id),
                   replayed or t.replayed)


def deposit_many(session: Session, *, items: list[tuple[int, int, str, str]],
                 memo: str | None = None) -> int:
    """Bulk deposits from outside (dues, fiscal): (org id, amount fen, source, idem key) each.

    Same rules as ``deposit`` for those sources; one linked batch of transfers."""
    specs = []
    for org_id, amount, source, idem_key in items:
        fen(amount)
        if amount <= 0:
            raise ValidationError("deposit must be positive", field="amount")
        src = DepositSource(source)
        if src == DepositSource.TRANSFER:
            raise ValidationError("transfers between federations go one by one", field="source")
        specs.append(ledger.TransferSpec(
            id=f"deposit:{idem_key}",
            debit_account_id=ledger.account_id(session, AccountCode.FUNDING_EXTERNAL, src),
            credit_account_id=fund_account(session, org_id), amount=amount,
            code=TransferCode.DEPOSIT, memo=memo or str(src)))
    return ledger.post_batch(session, specs)
