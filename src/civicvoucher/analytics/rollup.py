"""The dashboard's rollup: per-union summaries that make a page view's cost independent of the
number of members, vouchers and redemptions, with the same figures as the direct computation,
up to the moment.

Design: **summaries per union + a log of the unions whose rows changed since** ("dirty").

- Summary tables (migration 0012), each keyed by union and only as fine as the dashboard
  reads them: ``dash_voucher`` (program, product, form, status, and the deadline of vouchers
  still issued/held, so outstanding vs lapsed is split at any ``as_of`` when reading: an
  extension moves a voucher's deadline, which is a change like any other),
  ``dash_issue_day`` (issued per local day), ``dash_redemption`` (posted and refunded
  redemptions with their refunds, by the voucher's product, so tourism cards stay out),
  ``dash_spend`` (posted, by merchant category and channel), ``dash_redeem_day`` (posted per
  local day), ``dash_member`` (active members). At scale 1.0 that is ~10^5 rows instead of
  ~10^7.
- ``dash_dirty``: insert-only log, one row per (statement, union) that changed a voucher,
  redemption, refund or member row, or a merchant's category. Written by **database triggers**
  (PostgreSQL: statement-level with transition tables, so a bulk COPY costs one small insert per
  statement; SQLite: row-level). An insert into a log with its own sequence: no shared row is
  updated in the redemption's transaction, so the money path does not serialise on it, and
  nothing in the services had to change (a bulk load, an expiry run, a refund, a member
  transfer, an extension are all caught the same way, whatever code wrote them).
- A read (``analytics.dashboard``) takes, in one statement, the summaries of the subtree's
  unions that have no log row, and the direct computation (the oracle's SQL) for the unions
  that do. A union is either wholly from the summaries or wholly live, so the figures are
  exactly the direct computation's.
- ``refresh``: (1) copy the log's rows as they are now into a temp table ("seen"); (2)
  recompute the summaries of the unions in it (every union when ``full``); (3) delete exactly
  the seen log rows; one transaction. No watermark on ids: on PostgreSQL a sequence number is
  taken at insert and committed later, so "everything up to id N" would skip a late commit.
  Why it loses nothing (READ COMMITTED, each statement its own snapshot): a change that
  committed before (1) is in the snapshot of every statement in (2); one that commits later
  has a log row (same transaction as the change) that is not in "seen", so it is not deleted
  and its union stays live until the next refresh. Over-marking is harmless. Refreshes take a
  transaction-level advisory lock (PostgreSQL) or the write lock (SQLite's BEGIN IMMEDIATE),
  so they do not overlap. A reader sees the refresh's commit whole or not at all.
- When: ``civicvoucher dashboard refresh`` (``--full`` rebuilds), after the demo's bulk load,
  and on a read when the log holds more than ``DIRTY_UNIONS_MAX`` unions or
  ``LOG_ROWS_MAX`` rows (``maybe_refresh``; on PostgreSQL it skips if a refresh is running).
- ``dash_state`` says the summaries are usable: absent (a database migrated with data in it,
  or emptied by TRUNCATE) means the dashboard computes directly until a full refresh; the
  migration writes it when the tables are empty (a new deployment starts incremental). It
  records the time zone the local days were cut in: another zone means a full rebuild (until
  then, the direct computation).

Local days: the summaries cut days with the zone's real offsets over a wide window (from a year
before the first product's start); the direct computation uses the offsets over [first product
start, as_of]. They agree whenever no offset change lies outside that window (always, for
Asia/Shanghai since 1991).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.programs.models import Product
from civicvoucher.rollup_schema import DD, DI, DIRTY, DM, DR, DS, DV, STATE, SUMMARIES, BigId
from civicvoucher.vouchers.models import Redemption, Refund, Voucher

DIRTY_UNIONS_MAX = 256  # a read refreshes first when more unions than this are live
LOG_ROWS_MAX = 50_000  # ... or the log holds more rows than this
LOCK_KEY = 0x64617368  # 'dash': the advisory lock refreshes take on PostgreSQL

V = Voucher.__table__
R = Redemption.__table__
F = Refund.__table__
M = Member.__table__
MER = Merchant.__table__
P = Product.__table__


def zone_key() -> str:
    z = clock.zone()
    return getattr(z, "key", str(z))


def usable(session: Session) -> bool:
    """The summaries can be read: built (``dash_state``) in the deployment's current zone."""
    z = session.execute(select(STATE.c.zone).where(STATE.c.id == 1)).scalar()
    return z is not None and z == zone_key()


# --- local days ------------------------------------------------------------------------------

def _day_expr(session: Session, col):
    from civicvoucher.analytics.dashboard import _local_day, _periods

    lo = session.execute(select(func.min(P.c.valid_from))).scalar()
    now = clock.now().replace(microsecond=0)
    lo = (min(lo, now) if lo else now) - timedelta(days=366)
    hi = now + timedelta(days=366)
    lo = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    hi = hi.replace(hour=0, minute=0, second=0, microsecond=0)
    return _local_day(col, session.get_bind().dialect.name, _periods(lo, hi, zone_key()))


# --- refresh ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Refreshed:
    full: bool
    unions: int  # unions recomputed (full: every union with rows)
    log_rows: int  # log rows consumed
    seconds: float
    skipped: bool = False  # PostgreSQL: another refresh held the lock


def _summaries(session: Session, units) -> list:
    """INSERT ... SELECT statements recomputing the summaries of the unions ``units`` selects
    (None: every union)."""
    def only(col):
        return col.in_(units) if units is not None else literal(True)

    live = V.c.status.in_(("issued", "held"))
    exp = case((live, V.c.expires_at))
    q_v = (select(V.c.union_id, V.c.program_id, V.c.product_id, V.c.form, V.c.status, exp,
                  func.count(), func.sum(V.c.amount_fen))
           .where(only(V.c.union_id))
           .group_by(V.c.union_id, V.c.program_id, V.c.product_id, V.c.form, V.c.status, exp))
    iday = _day_expr(session, V.c.issued_at)
    q_i = (select(V.c.union_id, V.c.program_id, V.c.product_id, iday, func.count(),
                  func.sum(V.c.amount_fen))
           .where(only(V.c.union_id))
           .group_by(V.c.union_id, V.c.program_id, V.c.product_id, iday))
    q_r = (select(R.c.union_id, R.c.program_id, V.c.product_id, R.c.status, func.count(),
                  func.sum(R.c.amount_fen), func.sum(R.c.order_amount_fen), func.count(F.c.id),
                  func.coalesce(func.sum(func.coalesce(F.c.amount_fen, 0)), 0),
                  func.coalesce(func.sum(case((F.c.outcome == "restored", F.c.amount_fen),
                                              else_=0)), 0),
                  func.coalesce(func.sum(case((F.c.outcome == "to_fund", F.c.amount_fen),
                                              else_=0)), 0))
           .select_from(R).join(V, V.c.id == R.c.voucher_id)
           .outerjoin(F, F.c.redemption_id == R.c.id)
           .where(R.c.status.in_(("posted", "refunded")), only(R.c.union_id))
           .group_by(R.c.union_id, R.c.program_id, V.c.product_id, R.c.status))
    cat = func.coalesce(MER.c.category, "unknown")
    q_s = (select(R.c.union_id, R.c.program_id, V.c.product_id, cat, R.c.channel,
                  func.count(), func.sum(R.c.amount_fen), func.sum(R.c.order_amount_fen))
           .select_from(R).join(V, V.c.id == R.c.voucher_id)
           .outerjoin(MER, MER.c.id == R.c.merchant_id)
           .where(R.c.status == "posted", only(R.c.union_id))
           .group_by(R.c.union_id, R.c.program_id, V.c.product_id, cat, R.c.channel))
    rday = _day_expr(session, func.coalesce(R.c.posted_at, R.c.created_at))
    q_d = (select(R.c.union_id, R.c.program_id, V.c.product_id, rday, func.count(),
                  func.sum(R.c.amount_fen), func.sum(R.c.order_amount_fen))
           .select_from(R).join(V, V.c.id == R.c.voucher_id)
           .where(R.c.status == "posted", only(R.c.union_id))
           .group_by(R.c.union_id, R.c.program_id, V.c.product_id, rday))
    q_m = (select(M.c.union_id, func.count()).where(M.c.status == "active", only(M.c.union_id))
           .group_by(M.c.union_id))
    cols = lambda t: [c.name for c in t.columns]  # noqa: E731
    return [insert(t).from_select(cols(t), q)
            for t, q in ((DV, q_v), (DI, q_i), (DR, q_r), (DS, q_s), (DD, q_d), (DM, q_m))]


def refresh(session: Session, *, full: bool = False, wait: bool = True,
            hook: Callable[[str], None] | None = None) -> Refreshed:
    """Bring the summaries up to date in the session's transaction (the caller commits).

    ``full``: rebuild every union (also when the summaries were never built, or were cut in
    another zone). ``wait=False`` (PostgreSQL): return ``skipped`` at once if another refresh
    holds the lock. ``hook(stage)`` is called after "seen" and after "computed" (tests use it
    to commit a redemption in between)."""
    started = time.perf_counter()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        if wait:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        elif not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                 {"k": LOCK_KEY}).scalar():
            return Refreshed(full, 0, 0, time.perf_counter() - started, skipped=True)
        session.execute(text("SET LOCAL jit = off"))
    full = full or not usable(session)
    session.execute(text("DROP TABLE IF EXISTS dash_seen"))
    tmp = "CREATE TEMP TABLE dash_seen AS " if dialect == "sqlite" else \
        "CREATE TEMP TABLE dash_seen ON COMMIT DROP AS "
    session.execute(text(tmp + "SELECT seq, union_id FROM dash_dirty"))
    seen = Table("dash_seen", MetaData(), Column("seq", BigId),
                 Column("union_id", Integer))
    log_rows = session.execute(select(func.count()).select_from(seen)).scalar() or 0
    if hook:
        hook("seen")
    if full:
        units = None
        for t in SUMMARIES:
            session.execute(delete(t))
    else:
        units = select(seen.c.union_id).distinct().scalar_subquery()
        for t in SUMMARIES:
            session.execute(delete(t).where(t.c.union_id.in_(units)))
    for stmt in _summaries(session, units):
        session.execute(stmt)
    unions = session.execute(select(func.count(func.distinct(
        (DV if full else seen).c.union_id)))).scalar() or 0
    if hook:
        hook("computed")
    session.execute(delete(DIRTY).where(DIRTY.c.seq.in_(select(seen.c.seq))))
    if dialect == "sqlite":
        session.execute(text("DROP TABLE dash_seen"))
    now = clock.now()
    if session.execute(select(STATE.c.id).where(STATE.c.id == 1)).first():
        session.execute(STATE.update().where(STATE.c.id == 1).values(zone=zone_key(),
                                                                     refreshed_at=now))
    else:
        session.execute(insert(STATE).values(id=1, zone=zone_key(), refreshed_at=now))
    if full and dialect == "postgresql":
        for t in (*SUMMARIES, DIRTY):  # autovacuum may be off: plan for what is there now
            session.execute(text(f"ANALYZE {t.name}"))
    return Refreshed(full, int(unions), int(log_rows), time.perf_counter() - started)


def pending(session: Session) -> tuple[int, int]:
    """(log rows, distinct unions) in the log, each counted up to just past its bound."""
    rows = session.execute(select(func.count()).select_from(
        select(DIRTY.c.seq).limit(LOG_ROWS_MAX + 1).subquery())).scalar() or 0
    unions = session.execute(select(func.count()).select_from(
        select(DIRTY.c.union_id).distinct().limit(DIRTY_UNIONS_MAX + 1).subquery())).scalar()
    return int(rows), int(unions or 0)


def maybe_refresh(session: Session) -> Refreshed | None:
    """Refresh first when the live part of a read has grown past its bound (and the
    summaries are built: building them is the CLI's job, not a page view's)."""
    return prepare(session)[1]


def prepare(session: Session) -> tuple[bool, Refreshed | None]:
    """What a read does first: (the summaries are usable, the refresh it ran if any)."""
    if not usable(session):
        return False, None
    rows, unions = pending(session)
    if rows <= LOG_ROWS_MAX and unions <= DIRTY_UNIONS_MAX:
        return True, None
    return True, refresh(session, wait=False)


__all__ = [
    "DIRTY",
    "DIRTY_UNIONS_MAX",
    "LOG_ROWS_MAX",
    "STATE",
    "SUMMARIES",
    "Refreshed",
    "maybe_refresh",
    "pending",
    "prepare",
    "refresh",
    "usable",
]
