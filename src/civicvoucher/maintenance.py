"""Housekeeping: prune what has stopped being in force, so the tables that every request
touches do not grow for ever (``civicvoucher maintenance``, safe to run from cron).

Four kinds of rows outlive their use:

* ``rate_bucket``: one row per login name, IP, cashier, terminal ... ever seen; random
  usernames add one each. A bucket is pruned once it has been idle for ``bucket_idle``
  (default 24 h, far longer than any window, so no bucket within its window is touched) and
  holds no live lock. Its failure counter is forgotten with it: wrong passwords older than a
  day of silence no longer count towards a lockout.
* ``idempotency_key``: a stored answer is kept for ``TTL`` (24 h, ``api.idempotency``); past
  that a request treats it as absent anyway. A claim still ``in_progress`` past its TTL is
  pruned only when no request holds the key's lock (the lock dies with its owner, see
  ``api.idempotency``): the lock is taken, the row deleted, the lock let go.
* ``api_token``: a token past its expiry or revoked can never authenticate again.
* ``voucher.qr_used_exp``: the expiry second of the newest QR payload spent on the voucher.
  Once that second has passed, every payload it could refuse is refused as expired anyway,
  so it is cleared (one value per voucher: it never grows, but it is state kept for nothing).

Every rule waits ``grace`` (default 1 h) past the moment a row stops being in force, for the
clocks of other hosts. The work goes in chunks of ``chunk`` rows, each its own short
transaction, walking the primary key (so a table of millions never holds one long
transaction or lock, and a row skipped is never looked at twice in a run); each DELETE or
UPDATE repeats its condition, so a row renewed between the look and the delete stays. A second
run right after the first prunes nothing: the job is idempotent by construction.

On PostgreSQL the tables something was pruned from are vacuumed and analysed afterwards
(``VACUUM (ANALYZE)``): with autovacuum off, the space of deleted rows is otherwise never
reused and the planner keeps the statistics of the bloated table. On SQLite freed pages are
reused by themselves; the tables are analysed.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from civicvoucher.api import idempotency as idem
from civicvoucher.auth.models import ApiToken, IdempotencyRecord, RateBucket
from civicvoucher.core import clock, testpoints
from civicvoucher.db import Database
from civicvoucher.i18n import N_, localize
from civicvoucher.vouchers.models import Voucher

B, K, T, V = (RateBucket.__table__, IdempotencyRecord.__table__, ApiToken.__table__,
              Voucher.__table__)


@dataclass(frozen=True)
class Policy:
    """How long past the end of its force a row is kept, and the size of a chunk (its keys
    go into one ``IN (...)``: keep it well under SQLite's 32,766 bound parameters)."""

    grace: timedelta = timedelta(hours=1)
    bucket_idle: timedelta = timedelta(hours=24)
    chunk: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.chunk <= 10_000:
            raise ValueError("chunk must be 1 to 10,000 rows")
        if self.grace < timedelta(0):
            raise ValueError("grace must not be negative")
        if self.bucket_idle < timedelta(minutes=15):  # longer than any window or lockout
            raise ValueError("bucket_idle must be at least 15 minutes")


@dataclass
class Pruned:
    """What one rule pruned (or, in a dry run, would prune)."""

    table: str
    zh: str
    en: str
    pruned: int = 0
    held: int = 0  # idempotency claims past their TTL whose owner still holds the lock: kept
    chunks: int = 0  # transactions that pruned something

    @property
    def label(self) -> str:
        """What was pruned, in the current language (``en`` is its msgid)."""
        return localize(self.en)


@dataclass
class Report:
    now: datetime
    dry_run: bool
    results: list[Pruned] = field(default_factory=list)
    analysed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.pruned for r in self.results)

    def counts(self) -> dict[str, int]:
        return {r.table: r.pruned for r in self.results}


# --- what is no longer in force ------------------------------------------------------------


def idle_bucket(now: datetime, policy: Policy) -> ColumnElement[bool]:
    """Idle for ``bucket_idle`` (a request after its window would have moved
    ``window_start``), no lock that ends later than ``grace`` ago, and nothing the login
    policy still remembers (a trusted address, a backoff: ``ratelimit.prunable``)."""
    from civicvoucher.auth.ratelimit import Limits, prunable

    cutoff = now - policy.grace
    return and_(B.c.window_start <= now - policy.bucket_idle,
                or_(B.c.locked_until.is_(None), B.c.locked_until <= cutoff),
                prunable(Limits.from_env(), now))


def expired_key(now: datetime, policy: Policy) -> ColumnElement[bool]:
    return K.c.expires_at <= now - policy.grace


def dead_token(now: datetime, policy: Policy) -> ColumnElement[bool]:
    cutoff = now - policy.grace
    return or_(and_(T.c.expires_at.is_not(None), T.c.expires_at <= cutoff),
               and_(T.c.revoked_at.is_not(None), T.c.revoked_at <= cutoff))


def spent_qr_expired(now: datetime, policy: Policy) -> ColumnElement[bool]:
    cutoff = calendar.timegm((now - policy.grace).timetuple())
    return and_(V.c.qr_used_exp.is_not(None), V.c.qr_used_exp <= cutoff)


# --- chunked pruning -----------------------------------------------------------------------


def _walk(db: Database, pk, condition: ColumnElement[bool], chunk: int,
          act: Callable[[Session, Sequence], int], out: Pruned) -> Iterator[None]:
    """Visit the rows matching ``condition`` in primary-key order, ``chunk`` at a time, each
    chunk in its own transaction: ``act(session, keys)`` prunes them and says how many.
    Yields after each chunk's commit (for work that must not run inside it)."""
    last = None
    while True:
        def step(s: Session, after=last) -> tuple[list, int]:
            q = select(pk).where(condition)
            if after is not None:
                q = q.where(pk > after)
            keys = list(s.execute(q.order_by(pk).limit(chunk)).scalars())
            testpoints.reached("maintenance.after_lookup")  # a row may be renewed here
            return keys, act(s, keys) if keys else 0

        keys, n = db.run(step)
        if n:
            out.pruned += n
            out.chunks += 1
        yield
        if len(keys) < chunk:
            return
        last = keys[-1]


def _prune(db: Database, pk, condition: ColumnElement[bool], chunk: int,
           act: Callable[[Session, Sequence], int], out: Pruned) -> Pruned:
    for _ in _walk(db, pk, condition, chunk, act, out):
        pass
    return out


def prune_buckets(db: Database, now: datetime, policy: Policy, dry_run: bool) -> Pruned:
    out = Pruned("rate_bucket", "限流计数", N_("rate-limit buckets"))
    cond = idle_bucket(now, policy)
    return _prune(db, B.c.key, cond, policy.chunk, lambda s, keys: len(keys) if dry_run else
                  s.execute(delete(B).where(B.c.key.in_(keys), cond)).rowcount, out)


def prune_tokens(db: Database, now: datetime, policy: Policy, dry_run: bool) -> Pruned:
    out = Pruned("api_token", "失效令牌", N_("expired or revoked tokens"))
    cond = dead_token(now, policy)
    return _prune(db, T.c.id, cond, policy.chunk, lambda s, ids: len(ids) if dry_run else
                  s.execute(delete(T).where(T.c.id.in_(ids), cond)).rowcount, out)


def prune_spent_qr(db: Database, now: datetime, policy: Policy, dry_run: bool) -> Pruned:
    out = Pruned("voucher.qr_used_exp", "已用二维码记录", N_("spent QR payloads"))
    cond = spent_qr_expired(now, policy)
    return _prune(db, V.c.id, cond, policy.chunk, lambda s, ids: len(ids) if dry_run else
                  s.execute(update(V).where(V.c.id.in_(ids), cond).values(qr_used_exp=None))
                  .rowcount, out)


def prune_idempotency(db: Database, now: datetime, policy: Policy, dry_run: bool) -> Pruned:
    """Answers past their TTL go in chunks; a claim still in progress past its TTL goes only
    if its key's lock is free (its owner is gone), deleted while we hold that lock."""
    out = Pruned("idempotency_key", "过期幂等键", N_("expired idempotency keys"))
    cond = expired_key(now, policy)
    locker = idem.locker_for(db)
    claims: dict[int, tuple[int, int, str, str | None]] = {}  # by id: a retried chunk adds none

    def act(s: Session, ids: Sequence[int]) -> int:
        rows = s.execute(select(K.c.id, K.c.user_id, K.c.key, K.c.state, K.c.claim_token)
                         .where(K.c.id.in_(ids))).all()
        done = [r.id for r in rows if r.state == "done"]
        claims.update({r.id: (r.id, r.user_id, r.key, r.claim_token)
                       for r in rows if r.state != "done"})
        if dry_run or not done:
            return len(done)
        return s.execute(delete(K).where(K.c.id.in_(done), K.c.state == "done", cond)).rowcount

    for _ in _walk(db, K.c.id, cond, policy.chunk, act, out):
        while claims:  # between chunks, outside any transaction of ours
            _prune_claim(db, locker, claims.pop(next(iter(claims))), cond, dry_run, out)
    return out


def _prune_claim(db: Database, locker, claim: tuple[int, int, str, str | None],
                 cond: ColumnElement[bool], dry_run: bool, out: Pruned) -> None:
    """One expired claim still in progress: deleted only while we hold its key's lock, which
    we get only if its owner is gone; the fencing token must still be the one we saw."""
    rid, user_id, key, token = claim
    lock = locker.lock(user_id, key)
    if not lock.acquire():
        out.held += 1
        return
    try:
        if dry_run:
            out.pruned += 1
            return
        token_is = K.c.claim_token.is_(None) if token is None else K.c.claim_token == token
        n = db.run(lambda s: s.execute(delete(K).where(
            K.c.id == rid, K.c.state == "in_progress", token_is, cond)).rowcount)
        out.pruned += n
        out.chunks += n
    finally:
        lock.release()


RULES = (prune_buckets, prune_idempotency, prune_tokens, prune_spent_qr)


def run_maintenance(db: Database, *, policy: Policy = Policy(), now: datetime | None = None,
                    dry_run: bool = False, into: Report | None = None) -> Report:
    """Prune every kind (``dry_run``: count only, change nothing), then refresh the planner's
    statistics of the tables something was pruned from. ``into``: a report to fill as the
    rules finish, so a caller still knows what was done if a later rule fails."""
    report = into or Report(now=now or clock.now(), dry_run=dry_run)
    for rule in RULES:
        report.results.append(rule(db, report.now, policy, report.dry_run))
    if not report.dry_run:
        tables = sorted({r.table.split(".")[0] for r in report.results if r.pruned})
        refresh_statistics(db, tables)
        report.analysed = tables
    return report


def refresh_statistics(db: Database, tables: Sequence[str]) -> None:
    """PostgreSQL: ``VACUUM (ANALYZE)`` each table (outside a transaction, as VACUUM must be;
    it does not block reads or writes). SQLite: ``ANALYZE``."""
    if not tables:
        return
    if db.dialect != "postgresql":
        db.analyze(*tables)
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for t in tables:
            c.exec_driver_sql(f'VACUUM (ANALYZE) "{t}"')
