"""Rate limits and lockouts, kept in the database (table ``rate_bucket``) so every worker
process and every server behind a load balancer shares them; no Redis needed.

A bucket is a fixed window counter plus a failure counter. ``hit`` counts a request and
refuses past the limit (429 ``rate_limited``); ``fail`` counts a failure and, at the threshold,
locks the bucket for a while (429 ``locked_out``); ``succeed`` clears the failures.
Each call is one upsert in its own short transaction, so a refused request is still counted.
A refusal says whether it is the ``first`` of its window (exactly one request crosses the limit),
and ``fail`` says when it sets a lock: callers audit those events once, not every refused
attempt, so unauthenticated noise cannot grow the audit log without bound.

Defaults (``Limits``): login 10 per minute per account and 60 per IP, 5 wrong passwords lock the
account for 15 minutes; typed voucher codes 30 per minute per cashier and per terminal and 120
per IP, 10 unknown codes lock that cashier or terminal for 15 minutes; payment-channel
callbacks 600 per minute per IP, and 20 bad signatures (or stale timestamps) from an IP lock it
for 15 minutes. Voucher codes are 128 random bits, so even without the limits guessing is
hopeless; the limits stop the noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from civicvoucher.auth.errors import RateLimited
from civicvoucher.auth.models import RateBucket
from civicvoucher.core import clock
from civicvoucher.db import Database

B = RateBucket.__table__


@dataclass(frozen=True)
class Limits:
    window: timedelta = timedelta(minutes=1)
    login_per_account: int = 10
    login_per_ip: int = 60
    login_failures_to_lock: int = 5
    code_per_user: int = 30
    code_per_terminal: int = 30
    code_per_ip: int = 120
    code_failures_to_lock: int = 10
    callback_per_ip: int = 600
    callback_failures_to_lock: int = 20
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Count:
    """A bucket after a hit: requests in this window, failures since the last success."""

    hits: int
    failures: int


def _upsert(session: Session, key: str, now: datetime, window: timedelta, *, hit: int,
            fail: int):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stale = B.c.window_start <= now - window
    stmt = insert(B).values(key=key, window_start=now, hits=hit, failures=fail, locked_until=None)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "hits": case((stale, hit), else_=B.c.hits + hit),
            "window_start": case((stale, now), else_=B.c.window_start),
            "failures": B.c.failures + fail,
        },
    ).returning(B.c.hits, B.c.failures, B.c.locked_until)
    return session.execute(stmt).one()


def _locked(locked_until: datetime | None, now: datetime, key: str) -> None:
    if locked_until is not None and locked_until > now:
        raise RateLimited("too many failures: locked for a while", code="locked_out",
                          retry_after=int((locked_until - now).total_seconds()) + 1, bucket=key)


def hit(db: Database, key: str, *, limit: int, window: timedelta) -> Count:
    """Count one request against ``key``; refuse if over ``limit`` or locked out. A refusal
    for the limit carries ``first=True`` for the one request that crossed it this window."""
    counted: list[Count] = []

    def run(s: Session) -> None:
        now = clock.now()
        hits, failures, locked_until = _upsert(s, key, now, window, hit=1, fail=0)
        counted.append(Count(hits, failures))
        _locked(locked_until, now, key)
        if hits > limit:
            raise RateLimited(f"more than {limit} requests in {int(window.total_seconds())} s",
                              retry_after=int(window.total_seconds()), bucket=key,
                              first=hits == limit + 1)

    _commit_even_if_refused(db, run)
    return counted[-1]


def fail(db: Database, key: str, *, threshold: int, lock_for: timedelta,
         window: timedelta) -> bool:
    """Count one failure; at ``threshold`` lock the bucket for ``lock_for``. True if locked."""

    def run(s: Session) -> bool:
        now = clock.now()
        _, failures, _ = _upsert(s, key, now, window, hit=0, fail=1)
        if failures >= threshold:
            s.execute(B.update().where(B.c.key == key)
                      .values(locked_until=now + lock_for, failures=0))
            return True
        return False

    return db.run(run)


def succeed(db: Database, key: str) -> None:
    db.run(lambda s: s.execute(B.update().where(B.c.key == key, B.c.failures > 0)
                               .values(failures=0)))


def check_locked(session: Session, key: str) -> None:
    until = session.execute(select(B.c.locked_until).where(B.c.key == key)).scalar()
    _locked(until, clock.now(), key)


def _commit_even_if_refused(db: Database, fn) -> None:
    """Run ``fn`` and commit its count even when it refuses the request."""
    refused: list[RateLimited] = []

    def wrapped(s: Session) -> None:
        try:
            fn(s)
        except RateLimited as exc:
            refused.append(exc)

    db.run(wrapped)
    if refused:
        raise refused[0]
