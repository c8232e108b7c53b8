"""Posting transfers. The only place account balances change; the balance limit lives here.

Each balance change is one conditional UPDATE, so two transactions drawing on the same fund
cannot both pass a check made in Python (ARCHITECTURE rule 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.core.money import fen, format_yuan
from civicvoucher.db import is_postgres
from civicvoucher.errors import IdempotencyConflict, InsufficientFunds, InvalidTransition, NotFound
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.ledger.rules import (
    FLAGS_FOR_CODE,
    AccountCode,
    AccountFlags,
    TransferFlags,
    account_key,
    same_transfer,
)

A = Account.__table__
T = Transfer.__table__
NEVER_NEGATIVE = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


@dataclass(frozen=True)
class PostedTransfer:
    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: str
    flags: int
    pending_id: str | None
    replayed: bool = False


def account_id(
    session: Session,
    code: AccountCode,
    *parts: object,
    org_id: int | None = None,
    program_id: int | None = None,
    merchant_id: int | None = None,
) -> int:
    """Get or create the account with this natural key (safe under concurrency)."""
    key = account_key(code, *parts)
    found = session.execute(select(A.c.id).where(A.c.key == key)).scalar()
    if found is not None:
        return found
    values = dict(
        key=key, code=str(code), flags=int(FLAGS_FOR_CODE[code]), debits_posted=0,
        credits_posted=0, debits_pending=0, credits_pending=0, org_id=org_id,
        program_id=program_id, merchant_id=merchant_id, created_at=clock.now(),
    )
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(A).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return session.execute(select(A.c.id).where(A.c.key == key)).scalar_one()


def lock_account(session: Session, account_id_: int) -> Account:
    """Read an account row, locking it on PostgreSQL (SQLite transactions are serial already)."""
    q = select(Account).where(Account.id == account_id_).execution_options(populate_existing=True)
    if is_postgres(session):
        q = q.with_for_update()
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        raise NotFound(f"account {account_id_} does not exist")
    return row


def balance(session: Session, account_id_: int) -> int:
    row = session.execute(
        select(A.c.credits_posted - A.c.debits_posted).where(A.c.id == account_id_)
    ).scalar()
    return int(row or 0)


def _debit(session: Session, acct: int, amount: int, *, pending: bool, post: bool, void: bool) -> bool:
    if post:
        values = {A.c.debits_pending: A.c.debits_pending - amount,
                  A.c.debits_posted: A.c.debits_posted + amount}
        cond = A.c.id == acct
    elif void:
        values = {A.c.debits_pending: A.c.debits_pending - amount}
        cond = A.c.id == acct
    else:
        col = A.c.debits_pending if pending else A.c.debits_posted
        values = {col: col + amount}
        cond = and_(
            A.c.id == acct,
            or_(
                A.c.flags.op("&")(NEVER_NEGATIVE) == 0,
                A.c.debits_posted + A.c.debits_pending + amount <= A.c.credits_posted,
            ),
        )
    return session.execute(update(A).where(cond).values(values)).rowcount == 1


def _credit(session: Session, acct: int, amount: int, *, pending: bool, post: bool, void: bool) -> None:
    if post:
        values = {A.c.credits_pending: A.c.credits_pending - amount,
                  A.c.credits_posted: A.c.credits_posted + amount}
    elif void:
        values = {A.c.credits_pending: A.c.credits_pending - amount}
    else:
        col = A.c.credits_pending if pending else A.c.credits_posted
        values = {col: col + amount}
    session.execute(update(A).where(A.c.id == acct).values(values))


def post_transfer(
    session: Session,
    *,
    id: str,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    code: str,
    flags: TransferFlags = TransferFlags.NONE,
    pending_id: str | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> PostedTransfer:
    """Move ``amount`` fen from the debit account to the credit account, exactly once per id.

    A retry with the same id and body returns the first transfer (``replayed=True``); the same
    id with another body raises ``exists_with_different_amount``. PENDING reserves value;
    POST_PENDING / VOID_PENDING resolve a pending transfer named by ``pending_id``.
    """
    fen(amount)
    flags = TransferFlags(flags)
    body = dict(debit_account_id=debit_account_id, credit_account_id=credit_account_id,
                amount=amount, code=str(code), pending_id=pending_id, flags=int(flags))
    existing = session.execute(select(T).where(T.c.id == id)).mappings().first()
    if existing is not None:
        if not same_transfer(dict(existing), body):
            raise IdempotencyConflict(
                f"transfer {id} exists with a different body", code="exists_with_different_amount"
            )
        return PostedTransfer(**{k: existing[k] for k in (
            "id", "debit_account_id", "credit_account_id", "amount", "code", "flags", "pending_id"
        )}, replayed=True)
    if amount <= 0:
        raise ValueError("transfer amount must be positive")
    if debit_account_id == credit_account_id:
        raise ValueError("a transfer needs two different accounts")

    resolving = bool(flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING))
    if resolving:
        p = session.execute(select(T).where(T.c.id == pending_id)).mappings().first()
        if p is None or not p["flags"] & TransferFlags.PENDING:
            raise InvalidTransition(f"no pending transfer {pending_id}")
        if (p["debit_account_id"], p["credit_account_id"], p["amount"]) != (
            debit_account_id, credit_account_id, amount
        ):
            raise InvalidTransition(f"transfer {id} does not match pending {pending_id}")
    # Claim the id first: a concurrent duplicate now waits on the key and then fails, and the
    # caller's retry finds this transfer instead of applying it twice.
    session.execute(insert(T).values(id=id, memo=memo, created_at=now or clock.now(), **body))

    pending = bool(flags & TransferFlags.PENDING)
    post = bool(flags & TransferFlags.POST_PENDING)
    void = bool(flags & TransferFlags.VOID_PENDING)
    # Touch accounts in id order so two transfers in opposite directions cannot deadlock.
    for acct in sorted((debit_account_id, credit_account_id)):
        if acct == debit_account_id:
            if not _debit(session, acct, amount, pending=pending, post=post, void=void):
                avail = session.execute(
                    select(A.c.key, A.c.credits_posted - A.c.debits_posted - A.c.debits_pending)
                    .where(A.c.id == acct)
                ).first()
                raise InsufficientFunds(
                    f"account {avail[0]} has {format_yuan(avail[1])}, needs {format_yuan(amount)}",
                    account=avail[0], available_fen=avail[1], needed_fen=amount,
                )
        else:
            _credit(session, acct, amount, pending=pending, post=post, void=void)
    return PostedTransfer(id=id, **body)
