"""Union fund accounts: deposits from dues, fiscal allocations and higher federations."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from civicvoucher.core.money import fen
from civicvoucher.db import once
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, DepositSource, TransferCode
from civicvoucher.orgs.models import Org
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


def check_deposit(session: Session, *, org_id: int, amount_fen: int, source: str,
                  from_org_id: int | None = None) -> tuple[Org, DepositSource, Org | None]:
    """What a deposit must be before anything is written (also checked when it is only
    requested): a positive amount, a known source, and a transfer's paying federation above
    the receiver. Returns the receiver, the source and the payer (transfers only)."""
    fen(amount_fen)
    if amount_fen <= 0:
        raise ValidationError(N_("deposit must be positive"), field="amount")
    try:
        src = DepositSource(source)
    except ValueError:
        raise ValidationError(
            msg("unknown deposit source {source} (use {choices})", source=repr(source),
                choices=[Term(s, "deposit_source") for s in DepositSource]),
            field="source") from None
    org = get_org(session, org_id)
    payer = None
    if src == DepositSource.TRANSFER:
        if from_org_id is None:
            raise ValidationError(N_("a transfer needs the paying federation"), field="from_org")
        payer = get_org(session, from_org_id)
        if payer.id == org.id or not is_within(org, payer):
            raise ValidationError(
                N_("transfers flow from a federation down its own subtree"), field="from_org"
            )
    elif from_org_id is not None:
        raise ValidationError(N_("only a transfer names a paying federation"), field="from_org")
    return org, src, payer


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
    """Put money into an organisation's fund, now. A 'transfer' comes from an ancestor
    federation's fund (and cannot overdraw it); dues and fiscal allocations come from outside.

    This moves the money without asking anyone: the doors (API, CLI) go through
    ``funds.approvals.request_deposit``, which calls this only for a deposit that needs no
    second person, and ``approvals.approve`` calls it once the checker agreed. Direct callers
    are system setup (tests, the demo's scenario) acting as the system."""
    org, src, payer = check_deposit(session, org_id=org_id, amount_fen=amount_fen,
                                    source=source, from_org_id=from_org_id)
    if payer is not None:
        debit = fund_account(session, payer.id)
    else:
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

    Same rules as ``deposit`` for those sources; one linked batch of transfers. System only,
    never a door: the demo's scenario (``scenarios/simulate.py``) funds its unions with it,
    acting as the system, so no second person is asked (docs/deposits.md). No API route or
    CLI command reaches it."""
    specs = []
    for org_id, amount, source, idem_key in items:
        fen(amount)
        if amount <= 0:
            raise ValidationError(N_("deposit must be positive"), field="amount")
        src = DepositSource(source)
        if src == DepositSource.TRANSFER:
            raise ValidationError(N_("transfers between federations go one by one"),
                                  field="source")
        specs.append(ledger.TransferSpec(
            id=f"deposit:{idem_key}",
            debit_account_id=ledger.account_id(session, AccountCode.FUNDING_EXTERNAL, src),
            credit_account_id=fund_account(session, org_id), amount=amount,
            code=TransferCode.DEPOSIT, memo=memo or str(src)))
    return ledger.post_batch(session, specs)
