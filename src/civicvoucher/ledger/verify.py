"""The ledger's own invariants, which need nothing but accounts and transfers:

1. every transfer is well-formed (positive, two different existing accounts) and the ledger
   as a whole balances (total debits = total credits, posted and pending);
2. every account's stored totals equal the sum of its transfers;
3. no account flagged never-negative is negative.

The ledger knows no domain. What ``ledger verify`` also checks (vouchers, redemptions and
settlement batches against their accounts) lives in ``civicvoucher.reconcile``, whose
``verify()`` runs these checks and those; the CLI and the API call that.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from civicvoucher.core.money import format_yuan
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.ledger.rules import AccountFlags, TransferFlags


@dataclass(frozen=True)
class Problem:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


def load_accounts(session: Session) -> dict:
    """Every account row by id (the reconciliations read them too)."""
    return {r.id: r for r in session.execute(select(Account.__table__)).all()}


def verify_ledger(session: Session, accounts: dict | None = None) -> list[Problem]:
    """The ledger's problems; an empty list means the accounts and transfers are sound."""
    problems: list[Problem] = []
    T = Transfer.__table__
    if accounts is None:
        accounts = load_accounts(session)

    bad = session.execute(
        select(T.c.id).where(
            (T.c.amount <= 0) | (T.c.debit_account_id == T.c.credit_account_id)
        )
    ).scalars().all()
    problems += [Problem("transfer", t, "amount not positive or same account twice") for t in bad]

    # What each account's totals must be, recomputed from the transfers.
    pending_open = (T.c.flags.op("&")(int(TransferFlags.PENDING)) != 0) & ~T.c.id.in_(
        select(T.c.pending_id).where(T.c.pending_id.is_not(None))
    )
    posted = T.c.flags.op("&")(int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)) == 0
    want: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for side, idx in ((T.c.debit_account_id, 0), (T.c.credit_account_id, 1)):
        q = select(
            side,
            func.sum(case((posted, T.c.amount), else_=0)),
            func.sum(case((pending_open, T.c.amount), else_=0)),
        ).group_by(side)
        for acct, p, pend in session.execute(q).all():
            want[acct][idx] = int(p or 0)
            want[acct][idx + 2] = int(pend or 0)
    totals = [0, 0, 0, 0]
    for acct_id, a in accounts.items():
        w = want.get(acct_id, [0, 0, 0, 0])
        have = [a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending]
        totals = [x + y for x, y in zip(totals, have, strict=True)]
        if have != w:
            problems.append(Problem(
                "entries", a.key,
                f"stored d/c posted {have[0]}/{have[1]} pending {have[2]}/{have[3]}, "
                f"transfers say {w[0]}/{w[1]} pending {w[2]}/{w[3]}",
            ))
        if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
            a.debits_posted + a.debits_pending > a.credits_posted
        ):
            problems.append(Problem("negative", a.key, f"balance {format_yuan(a.credits_posted - a.debits_posted - a.debits_pending)}"))
    for acct_id in set(want) - set(accounts):
        problems.append(Problem("entries", str(acct_id), "transfers name an account that does not exist"))
    if totals[0] != totals[1] or totals[2] != totals[3]:
        problems.append(Problem("balance", "ledger", f"debits {totals[0]} vs credits {totals[1]}, pending {totals[2]} vs {totals[3]}"))
    return problems
