"""Posting transfers. The only place account balances change; the balance limit lives here.

Each balance change is one conditional UPDATE, so two transactions drawing on the same fund
cannot both pass a check made in Python (ARCHITECTURE rule 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import and_, bindparam, event, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.core.money import fen
from civicvoucher.db import is_postgres
from civicvoucher.errors import IdempotencyConflict, InsufficientFunds, InvalidTransition, NotFound
from civicvoucher.i18n import N_, Yuan, msg
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
_COMMITTED: WeakKeyDictionary[Engine, dict[str, int]] = WeakKeyDictionary()


@event.listens_for(Session, "after_commit")
def _remember_accounts(session: Session) -> None:
    """Only ids whose rows are committed may outlive the transaction that looked them up.
    A savepoint's release fires this event too, while the transaction may still roll back:
    only the outermost commit counts."""
    if session.in_nested_transaction():
        return
    found = session.info.pop("account_ids", None)
    if found:
        _COMMITTED.setdefault(session.get_bind(), {}).update(found)


@event.listens_for(Session, "after_rollback")
def _forget_uncommitted(session: Session) -> None:
    """Also after a savepoint's rollback, which may take accounts it made with it: the ids
    found in this transaction are looked up again."""
    session.info.pop("account_ids", None)


def forget_accounts(engine: Engine) -> None:
    """Drop remembered ids (tests that empty the tables call this)."""
    _COMMITTED.pop(engine, None)
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
    """Get or create the account with this natural key (safe under concurrency).

    Ids are remembered: for the session, and once its transaction commits, for the process
    (an account, once made, is never removed)."""
    key = account_key(code, *parts)
    cache = session.info.setdefault("account_ids", {})
    if key in cache:
        return cache[key]
    committed = _COMMITTED.get(session.get_bind())
    if committed and key in committed:
        return committed[key]
    found = session.execute(_SELECT_ACCOUNT, {"key": key}).scalar()
    if found is None:
        found = session.execute(_insert_account(session), dict(
            key=key, code=str(code), flags=int(FLAGS_FOR_CODE[code]), org_id=org_id,
            program_id=program_id, merchant_id=merchant_id, created_at=clock.now(),
        )).scalar()
    if found is None:  # a concurrent transaction made it first
        found = session.execute(_SELECT_ACCOUNT, {"key": key}).scalar_one()
    cache[key] = found
    return found


_SELECT_ACCOUNT = select(A.c.id).where(A.c.key == bindparam("key"))
_INSERT_ACCOUNT: dict[str, object] = {}


def _insert_account(session: Session):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, built once per dialect."""
    name = session.get_bind().dialect.name
    if name not in _INSERT_ACCOUNT:
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        _INSERT_ACCOUNT[name] = (
            dialect_insert(A).values(
                key=bindparam("key"), code=bindparam("code"), flags=bindparam("flags"),
                debits_posted=0, credits_posted=0, debits_pending=0, credits_pending=0,
                org_id=bindparam("org_id"), program_id=bindparam("program_id"),
                merchant_id=bindparam("merchant_id"), created_at=bindparam("created_at"),
            ).on_conflict_do_nothing(index_elements=["key"]).returning(A.c.id)
        )
    return _INSERT_ACCOUNT[name]


def lock_account(session: Session, account_id_: int) -> Account:
    """Read an account row, locking it on PostgreSQL (SQLite transactions are serial already)."""
    q = select(Account).where(Account.id == account_id_).execution_options(populate_existing=True)
    if is_postgres(session):
        q = q.with_for_update()
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        raise NotFound(msg("account {account} does not exist", account=account_id_))
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
    if session.execute(update(A).where(A.c.id == acct).values(values)).rowcount != 1:
        raise NotFound(msg("account {account} does not exist", account=acct),
                       code="credit_account_not_found")


_DIFFERENT = {"debit_account_id": "exists_with_different_debit_account_id",
              "credit_account_id": "exists_with_different_credit_account_id",
              "amount": "exists_with_different_amount", "code": "exists_with_different_code",
              "pending_id": "exists_with_different_pending_id",
              "flags": "exists_with_different_flags"}


def transfer_body(debit_account_id: int, credit_account_id: int, amount: int, code: str,
                  flags: TransferFlags = TransferFlags.NONE, pending_id: str | None = None
                  ) -> dict:
    """What a transfer asks for: a retry under the same id must ask for exactly this."""
    return dict(debit_account_id=debit_account_id, credit_account_id=credit_account_id,
                amount=amount, code=str(code), pending_id=pending_id, flags=int(flags))


def find_transfer(session: Session, id: str, body: dict) -> PostedTransfer | None:
    """The transfer already posted under ``id`` (a replay), or None. The same id with another
    body is a conflict whose code names the first field that differs (TigerBeetle's codes)."""
    existing = session.execute(select(T).where(T.c.id == id)).mappings().first()
    if existing is None:
        return None
    if not same_transfer(dict(existing), body):
        field = next(k for k in _DIFFERENT if existing[k] != body.get(k))
        have, given = existing[field], body.get(field)
        if field == "amount":
            have, given = Yuan(have), Yuan(given)
        raise IdempotencyConflict(
            msg("transfer {id} exists with a different {field}: {have} ≠ {given}", id=id,
                field=field, have=have, given=given),
            code=_DIFFERENT[field], field=field)
    return PostedTransfer(**{k: existing[k] for k in (
        "id", "debit_account_id", "credit_account_id", "amount", "code", "flags", "pending_id"
    )}, replayed=True)


def _not_resolved(session: Session, pending_id: str) -> None:
    """A pending transfer is posted or voided once (TigerBeetle's codes for the second try)."""
    done = session.execute(select(T.c.id, T.c.flags).where(T.c.pending_id == pending_id)).first()
    if done is None:
        return
    if done.flags & TransferFlags.POST_PENDING:
        raise InvalidTransition(msg("pending transfer {pending} was posted by {done}",
                                    pending=pending_id, done=done.id),
                                code="pending_transfer_already_posted")
    raise InvalidTransition(msg("pending transfer {pending} was voided by {done}",
                                pending=pending_id, done=done.id),
                            code="pending_transfer_already_voided")


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
    body = transfer_body(debit_account_id, credit_account_id, amount, code, flags, pending_id)
    if (replay := find_transfer(session, id, body)) is not None:
        return replay
    if amount <= 0:
        raise ValueError("transfer amount must be positive")
    if debit_account_id == credit_account_id:
        raise ValueError("a transfer needs two different accounts")

    resolving = bool(flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING))
    if resolving:
        p = session.execute(select(T).where(T.c.id == pending_id)).mappings().first()
        if p is None or not p["flags"] & TransferFlags.PENDING:
            raise InvalidTransition(msg("no pending transfer {pending}", pending=pending_id),
                                    code="pending_transfer_not_found")
        if (p["debit_account_id"], p["credit_account_id"], p["amount"]) != (
            debit_account_id, credit_account_id, amount
        ):
            raise InvalidTransition(msg("transfer {id} does not match pending {pending}", id=id,
                                        pending=pending_id),
                                    code="pending_transfer_has_different_body")
        _not_resolved(session, pending_id)
    # Claim the id first: a concurrent duplicate now waits on the key and then fails, and the
    # caller's retry finds this transfer instead of applying it twice.
    session.execute(insert(T).values(id=id, memo=memo, created_at=now or clock.now(), **body))
    # (a second resolution racing this one waits on the unique pending_id, then finds it)

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
                    msg("account {account} has {available}, needs {needed}", account=avail[0],
                        available=Yuan(avail[1]), needed=Yuan(amount)),
                    account=avail[0], available_fen=avail[1], needed_fen=amount,
                )
        else:
            _credit(session, acct, amount, pending=pending, post=post, void=void)
    return PostedTransfer(id=id, **body)


@dataclass(frozen=True)
class TransferSpec:
    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: str
    memo: str | None = None


def post_batch(session: Session, transfers: list[TransferSpec], *,
               now: datetime | None = None) -> int:
    """Post many plain transfers as one linked unit: all or none, each exactly once.

    Same rules as ``post_transfer`` (balance limits, idempotent ids), applied with one
    insert for the transfers and one UPDATE per account for the net movement, so bulk paths
    (settlement, batch redemption) keep a transfer per item without a statement per item.
    A batch whose ids were all posted before is a replay (returns 0); a partly posted one is
    a conflict.
    """
    if not transfers:
        return 0
    for t in transfers:
        fen(t.amount)
        if t.amount <= 0 or t.debit_account_id == t.credit_account_id:
            raise ValueError(f"transfer {t.id}: positive amount and two accounts needed")
    ids = [t.id for t in transfers]
    existing = {  # in chunks: PostgreSQL takes at most 65,535 parameters
        r["id"]: r
        for i in range(0, len(ids), 10_000)
        for r in session.execute(select(T).where(T.c.id.in_(ids[i : i + 10_000]))).mappings()
    }
    if existing:
        same = len(existing) == len(transfers) and all(
            same_transfer(dict(existing[t.id]), dict(
                debit_account_id=t.debit_account_id, credit_account_id=t.credit_account_id,
                amount=t.amount, code=str(t.code), pending_id=None, flags=0))
            for t in transfers)
        if not same:
            raise IdempotencyConflict(N_("some of these transfers exist with another body"),
                                      code="exists_with_different_amount")
        return 0
    when = now or clock.now()
    session.execute(insert(T), [
        dict(id=t.id, debit_account_id=t.debit_account_id, credit_account_id=t.credit_account_id,
             amount=t.amount, code=str(t.code), flags=0, pending_id=None, memo=t.memo,
             created_at=when)
        for t in transfers
    ])
    debits: dict[int, int] = {}
    credits: dict[int, int] = {}
    for t in transfers:
        debits[t.debit_account_id] = debits.get(t.debit_account_id, 0) + t.amount
        credits[t.credit_account_id] = credits.get(t.credit_account_id, 0) + t.amount
    # One executemany per side, in account-id order (no deadlocks between batches).
    debit_rows = [{"aid": a, "amt": debits[a]} for a in sorted(debits)]
    moved = session.execute(
        update(A).where(
            A.c.id == bindparam("aid"),
            or_(A.c.flags.op("&")(NEVER_NEGATIVE) == 0,
                A.c.debits_posted + A.c.debits_pending + bindparam("amt") <= A.c.credits_posted),
        ).values(debits_posted=A.c.debits_posted + bindparam("amt")),
        debit_rows,
    ).rowcount
    if moved != len(debit_rows):
        rows = session.execute(
            select(A.c.id, A.c.key, A.c.credits_posted - A.c.debits_posted - A.c.debits_pending)
            .where(A.c.id.in_(list(debits)), A.c.flags.op("&")(NEVER_NEGATIVE) != 0)
        ).all()
        short = [key for aid, key, avail in rows if avail < debits[aid]] or ["(unknown)"]
        raise InsufficientFunds(msg("this batch would overdraw {accounts}", accounts=short),
                                accounts=short)
    session.execute(
        update(A).where(A.c.id == bindparam("aid"))
        .values(credits_posted=A.c.credits_posted + bindparam("amt")),
        [{"aid": a, "amt": credits[a]} for a in sorted(credits)],
    )
    return len(transfers)
