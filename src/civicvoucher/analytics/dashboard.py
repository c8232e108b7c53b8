"""The web console's dashboard: one organisation's subtree at a glance, straight from the
transaction tables.

``dashboard(session, org_path=..., program=...)`` returns a ``Dashboard``: frozen dataclasses
of plain values (``to_dict()`` is JSON-ready), every amount integer fen.

Why not the report's DuckDB code (``issuance.py`` / ``spending.py``): the report first copies
a program's rows into DuckDB (``duck.stage``), which costs seconds at province scale, too slow
for a page. Here the same figures are SQLAlchemy Core ``GROUP BY`` queries on the live
database (SQLite or PostgreSQL), three round trips after two small look-ups: the figures (the
subtree's total, by level and by child in one statement), spending by merchant category and
channel (one statement) and the daily curve (one statement). The definitions are the
report's, and ``tests/analytics/test_dashboard.py`` checks them against ``compute_report``:

- only vouchers of **consumption** products count (the report's "issued"; tourism cards are
  not money a union plans per member);
- **planned** (应发) = active members of the subtree's unions x the sum of the program's
  consumption products' face values; **shortfall** = planned - issued; a union's **level** is
  its parent federation's (province / city / county);
- **issued** counts vouchers in any status; **redeemed** = posted redemptions (a refunded one
  no longer counts); **leverage** (拉动效应) = their order amounts / their voucher amounts;
- **days** are local calendar days in the deployment's zone (``core/clock.py``), the
  redemption's ``COALESCE(posted_at, created_at)`` as the report has it, with the zone's
  offsets from ``spending._offset_periods`` (daylight saving right too).

What the report does not have: vouchers still spendable (**outstanding**: issued or held and
not past their deadline at ``as_of``), **lapsed** (past the deadline, waiting for the expiry
run), **expired** (value back with the union's fund, including a refund after the deadline),
and **refunded** (refund rows, split restored / to the fund). Voucher statuses split the issued
value: issued = redeemed vouchers + outstanding + lapsed + expired.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from civicvoucher.analytics import rollup
from civicvoucher.analytics.spending import _offset_periods
from civicvoucher.analytics.tables import level_order, ratio
from civicvoucher.core import clock
from civicvoucher.errors import NotFound
from civicvoucher.i18n import msg
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product, Program
from civicvoucher.rollup_schema import DD, DI, DIRTY, DM, DR, DS, DV
from civicvoucher.vouchers.models import Redemption, Refund, Voucher

V = Voucher.__table__
R = Redemption.__table__
F = Refund.__table__
O = Org.__table__  # noqa: E741
M = Member.__table__
P = Product.__table__
MER = Merchant.__table__

CONSUMPTION = "consumption"


# --- the result ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    """One group's figures (the whole subtree, a level, a child): counts and integer fen."""

    unions: int = 0
    members: int = 0  # active members
    planned_fen: int = 0
    issued_fen: int = 0
    issued_count: int = 0
    digital_fen: int = 0
    paper_fen: int = 0
    digital_count: int = 0
    paper_count: int = 0
    redeemed_fen: int = 0  # posted redemptions
    redemptions: int = 0
    order_fen: int = 0  # what those orders came to in all
    redeemed_vouchers_fen: int = 0  # vouchers in status redeemed (= redeemed_fen)
    outstanding_fen: int = 0
    outstanding_count: int = 0
    lapsed_fen: int = 0
    lapsed_count: int = 0
    expired_fen: int = 0
    expired_count: int = 0
    refunded_fen: int = 0
    refunds: int = 0
    refunded_restored_fen: int = 0  # the voucher could be spent again
    refunded_to_fund_fen: int = 0  # after the deadline: back to the union's fund

    @property
    def shortfall_fen(self) -> int:
        return self.planned_fen - self.issued_fen

    @property
    def issue_rate(self) -> float | None:
        return ratio(self.issued_fen, self.planned_fen)

    @property
    def digital_share(self) -> float | None:
        return ratio(self.digital_fen, self.issued_fen)

    @property
    def redemption_rate(self) -> float | None:
        return ratio(self.redeemed_fen, self.issued_fen)

    @property
    def leverage(self) -> float | None:
        return ratio(self.order_fen, self.redeemed_fen)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("shortfall_fen", "issue_rate", "digital_share", "redemption_rate",
                     "leverage"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class OrgNode:
    id: int
    name: str
    level: str
    path: str
    code: str | None  # division code of a federation, USCC of a union


@dataclass(frozen=True)
class ChildRow:
    org: OrgNode
    figures: Figures


@dataclass(frozen=True)
class LevelRow:
    level: str  # the level of the unions' parent federation
    figures: Figures


@dataclass(frozen=True)
class SpendRow:
    """Posted redemptions of one merchant category or channel."""

    key: str
    redemptions: int
    redeemed_fen: int
    order_fen: int

    @property
    def leverage(self) -> float | None:
        return ratio(self.order_fen, self.redeemed_fen)


@dataclass(frozen=True)
class DayRow:
    day: str  # local calendar day, ISO
    issued_count: int
    issued_fen: int
    redemptions: int
    redeemed_fen: int
    order_fen: int


@dataclass(frozen=True)
class ProgramRef:
    id: int
    key: str
    name: str


@dataclass(frozen=True)
class Dashboard:
    org: OrgNode | None  # None: every organisation (province-wide roles)
    programs: tuple[ProgramRef, ...]
    as_of: datetime  # naive UTC: what "outstanding" and "lapsed" are measured at
    face_value_fen: int  # per member: the programs' consumption products
    figures: Figures
    by_level: tuple[LevelRow, ...]
    children: tuple[ChildRow, ...]
    by_category: tuple[SpendRow, ...]
    by_channel: tuple[SpendRow, ...]
    by_day: tuple[DayRow, ...]

    def to_dict(self) -> dict[str, Any]:
        def spend(r: SpendRow) -> dict:
            return dataclasses.asdict(r) | {"leverage": r.leverage}

        return {
            "org": dataclasses.asdict(self.org) if self.org else None,
            "programs": [dataclasses.asdict(p) for p in self.programs],
            "as_of": self.as_of.isoformat(),
            "face_value_fen": self.face_value_fen,
            "figures": self.figures.to_dict(),
            "by_level": [{"level": r.level, "figures": r.figures.to_dict()}
                         for r in self.by_level],
            "children": [{"org": dataclasses.asdict(r.org), "figures": r.figures.to_dict()}
                         for r in self.children],
            "by_category": [spend(r) for r in self.by_category],
            "by_channel": [spend(r) for r in self.by_channel],
            "by_day": [dataclasses.asdict(r) for r in self.by_day],
        }


# --- look-ups ------------------------------------------------------------------------------

def _node(session: Session, org_path: str | None) -> OrgNode | None:
    if org_path is None:
        return None
    row = session.execute(
        select(O.c.id, O.c.name, O.c.level, O.c.path,
               func.coalesce(O.c.division_code, O.c.uscc)).where(O.c.path == org_path)
    ).first()
    if row is None:
        raise NotFound(msg("no organisation {ref}", ref=org_path), code="org_not_found")
    return OrgNode(*row)


def _programs(session: Session, program: str | int | None) -> list[ProgramRef]:
    rows = [ProgramRef(*r) for r in session.execute(
        select(Program.id, Program.key, Program.name).order_by(Program.id))]
    if program is None:
        return rows
    ref = str(program).strip()
    found = [r for r in rows if r.key == ref] or [
        r for r in rows if ref.isdigit() and r.id == int(ref)]
    if not found:
        if rows:
            raise NotFound(msg("no program '{ref}' in the database (it holds: {keys})",
                               ref=ref, keys=[r.key for r in rows]), code="program_not_found")
        raise NotFound(msg("no program '{ref}' in the database (it holds none)", ref=ref),
                       code="program_not_found")
    return found[:1]


# --- local days ----------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _periods(lo: datetime, hi: datetime, zone_key: str) -> tuple:
    return tuple(_offset_periods(lo, hi, clock.zone(zone_key)))


def _local_day(col, dialect: str, periods: tuple):
    """The local calendar day of the naive-UTC timestamp ``col`` as SQL (a DATE on
    PostgreSQL, 'YYYY-MM-DD' text on SQLite)."""

    def shift(seconds: int):
        if dialect == "sqlite":
            return literal(f"{int(seconds):+d} seconds")
        return literal_column(f"INTERVAL '{int(seconds)} seconds'")

    if len(periods) == 1:
        by = shift(periods[0][1])
    else:
        whens = [(col < starts, shift(prev))
                 for (_, prev), (starts, _) in itertools.pairwise(periods)]
        by = case(*whens, else_=shift(periods[-1][1]))
    if dialect == "sqlite":
        return func.date(col, by)
    return cast(col + by, Date)


def _segment_after(path_col, length: int, dialect: str):
    """The org id that follows the first ``length`` characters of a materialised path (which
    end with '/'), as an integer."""
    rest = func.substr(path_col, length + 1)
    find = func.instr if dialect == "sqlite" else func.strpos
    at = find(rest, "/")
    return case((at > 1, cast(func.substr(rest, 1, at - 1), Integer)))  # the node itself: NULL


# --- the queries ---------------------------------------------------------------------------

def _n(value) -> int:
    return int(value or 0)


def _sum(expr):
    return func.coalesce(func.sum(expr), 0)


def _when(cond, value):
    return case((cond, value), else_=0)


_MEASURES = (
    "members", "issued_fen", "issued_count", "digital_fen", "paper_fen", "digital_count",
    "paper_count", "redeemed_fen", "redemptions", "order_fen", "redeemed_vouchers_fen",
    "outstanding_fen", "outstanding_count", "lapsed_fen", "lapsed_count", "expired_fen",
    "expired_count", "refunded_fen", "refunds", "refunded_restored_fen",
    "refunded_to_fund_fen",
)


def dashboard(session: Session, *, org_path: str | None, program: str | int | None = None,
              today: date | None = None, now: datetime | None = None,
              source: str = "auto") -> Dashboard:
    """The dashboard of the subtree at ``org_path`` (an ``Org.path`` such as '/1/4/'; None:
    every organisation) for ``program`` (key or id; None: every program, summed).

    ``as_of`` (what outstanding and lapsed are measured at) is ``now`` (naive UTC), else the
    end of the local day ``today``, else the clock's now. The caller checks scope first
    (``auth/scope.py``: the principal's ``org_path`` or an org inside it).

    ``source``: "auto" reads the rollup (``analytics/rollup.py``) for the unions that did not
    change since its last refresh and computes the others directly, after refreshing it first
    if too many changed; "live" computes every union directly (the oracle the tests compare
    the rollup with). Both give the same figures."""
    if source not in ("auto", "live"):
        raise ValueError(f"source must be 'auto' or 'live', not {source!r}")
    use_rollup = False
    if source == "auto":
        use_rollup = rollup.prepare(session)[0]
    as_of = now or (clock.end_of_day(today) if today is not None else clock.now())
    node = _node(session, org_path)
    programs = _programs(session, program)
    pids = [p.id for p in programs]
    products = session.execute(
        select(P.c.id, P.c.kind, P.c.face_value_fen, P.c.valid_from)
        .where(P.c.program_id.in_(pids) if pids else literal(False))).all()
    cons = [r.id for r in products if r.kind == CONSUMPTION]
    face = sum(int(r.face_value_fen) for r in products if r.kind == CONSUMPTION)
    others = [r.id for r in products if r.kind != CONSUMPTION]
    other_products = bool(others)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # The per-union LEFT JOINs make PostgreSQL overestimate the rows (no statistics on a
        # CTE's keys), which turns on JIT: at scale 0.1 a city's figures took 2.8 s, of which
        # 2.0 s JIT compiling (EXPLAIN ANALYZE); without JIT 0.8 s. This transaction only.
        session.execute(text("SET LOCAL jit = off"))

    # The subtree's grassroots unions, each with its parent federation's level.
    par = aliased(O)
    in_tree = O.c.path.like(node.path + "%") if node else true()
    unions = (select(O.c.id, O.c.path, par.c.level.label("level"))
              .join(par, par.c.id == O.c.parent_id)
              .where(O.c.level == "union", in_tree).cte("u"))
    changed = select(DIRTY.c.union_id)
    ul = unions
    uc = select(unions.c.id).where(unions.c.id.not_in(changed)).cte("uc")  # from the rollup

    def changed_only(col):
        """Computed directly: every union, or (rollup) those changed since its last refresh.
        PostgreSQL: ``= ANY(ARRAY(subquery))``, an index condition on the union (a semi-join
        on the log is estimated at half the unions, and then whole tables were scanned)."""
        if not use_rollup:
            return true()
        if dialect == "postgresql":
            return col == func.any(func.array(changed.scalar_subquery()))
        return col.in_(changed)

    live = V.c.status.in_(("issued", "held"))
    vs_live = (select(
        V.c.union_id,
        _sum(V.c.amount_fen).label("issued_fen"),
        func.count().label("issued_count"),
        _sum(_when(V.c.form == "digital", V.c.amount_fen)).label("digital_fen"),
        _sum(_when(V.c.form == "paper", V.c.amount_fen)).label("paper_fen"),
        _sum(_when(V.c.form == "digital", 1)).label("digital_count"),
        _sum(_when(V.c.form == "paper", 1)).label("paper_count"),
        _sum(_when(V.c.status == "redeemed", V.c.amount_fen)).label("redeemed_vouchers_fen"),
        _sum(_when(and_(live, V.c.expires_at > as_of), V.c.amount_fen)).label(
            "outstanding_fen"),
        _sum(_when(and_(live, V.c.expires_at > as_of), 1)).label("outstanding_count"),
        _sum(_when(and_(live, V.c.expires_at <= as_of), V.c.amount_fen)).label("lapsed_fen"),
        _sum(_when(and_(live, V.c.expires_at <= as_of), 1)).label("lapsed_count"),
        _sum(_when(V.c.status == "expired", V.c.amount_fen)).label("expired_fen"),
        _sum(_when(V.c.status == "expired", 1)).label("expired_count"),
    ).join(ul, ul.c.id == V.c.union_id)
        .where(V.c.program_id.in_(pids or [-1]), V.c.product_id.in_(cons or [-1]),
               changed_only(V.c.union_id))
        .group_by(V.c.union_id))

    if use_rollup:
        rlive = DV.c.status.in_(("issued", "held"))
        vs_roll = (select(
            DV.c.union_id,
            _sum(DV.c.fen), _sum(DV.c.n),
            _sum(_when(DV.c.form == "digital", DV.c.fen)),
            _sum(_when(DV.c.form == "paper", DV.c.fen)),
            _sum(_when(DV.c.form == "digital", DV.c.n)),
            _sum(_when(DV.c.form == "paper", DV.c.n)),
            _sum(_when(DV.c.status == "redeemed", DV.c.fen)),
            _sum(_when(and_(rlive, DV.c.expires_at > as_of), DV.c.fen)),
            _sum(_when(and_(rlive, DV.c.expires_at > as_of), DV.c.n)),
            _sum(_when(and_(rlive, DV.c.expires_at <= as_of), DV.c.fen)),
            _sum(_when(and_(rlive, DV.c.expires_at <= as_of), DV.c.n)),
            _sum(_when(DV.c.status == "expired", DV.c.fen)),
            _sum(_when(DV.c.status == "expired", DV.c.n)),
        ).join(uc, uc.c.id == DV.c.union_id)
            .where(DV.c.program_id.in_(pids or [-1]), DV.c.product_id.in_(cons or [-1]))
            .group_by(DV.c.union_id))
        vs = union_all(vs_live, vs_roll).cte("vs")
    else:
        vs = vs_live.cte("vs")

    def redemptions_in_scope(*cols):
        """Redemptions of consumption vouchers of the subtree's unions. Redemption rows carry
        no product: when the programs have other products (tourism cards), their vouchers are
        left out by one hashed anti-join (cheaper than a voucher look-up per redemption)."""
        q = (select(*cols).select_from(R).join(ul, ul.c.id == R.c.union_id)
             .where(R.c.program_id.in_(pids or [-1]), changed_only(R.c.union_id)))
        if other_products:
            # (a redemption's union is its voucher's: the changed unions' cards only)
            q = q.where(R.c.voucher_id.not_in(
                select(V.c.id).where(V.c.program_id.in_(pids), V.c.product_id.in_(others),
                                     changed_only(V.c.union_id))))
        return q

    posted = R.c.status == "posted"
    rs = (redemptions_in_scope(
        R.c.union_id,
        _sum(_when(posted, R.c.amount_fen)).label("redeemed_fen"),
        _sum(_when(posted, 1)).label("redemptions"),
        _sum(_when(posted, R.c.order_amount_fen)).label("order_fen"),
        _sum(func.coalesce(F.c.amount_fen, 0)).label("refunded_fen"),
        func.count(F.c.id).label("refunds"),
        _sum(_when(F.c.outcome == "restored", F.c.amount_fen)).label("refunded_restored_fen"),
        _sum(_when(F.c.outcome == "to_fund", F.c.amount_fen)).label("refunded_to_fund_fen"),
    ).outerjoin(F, F.c.redemption_id == R.c.id)
        .where(R.c.status.in_(("posted", "refunded")))
        .group_by(R.c.union_id))
    ms = (select(M.c.union_id, func.count().label("members"))
          .join(ul, ul.c.id == M.c.union_id)
          .where(M.c.status == "active", changed_only(M.c.union_id))
          .group_by(M.c.union_id))

    def roll_redemptions(table, *cols):
        """Rollup rows of the unchanged unions, tourism cards left out by the product."""
        q = (select(*cols).join(uc, uc.c.id == table.c.union_id)
             .where(table.c.program_id.in_(pids or [-1])))
        return q.where(table.c.product_id.not_in(others)) if other_products else q

    if use_rollup:
        rposted = DR.c.status == "posted"
        rs = union_all(rs, roll_redemptions(
            DR, DR.c.union_id, _sum(_when(rposted, DR.c.fen)), _sum(_when(rposted, DR.c.n)),
            _sum(_when(rposted, DR.c.order_fen)), _sum(DR.c.refunded_fen), _sum(DR.c.refunds),
            _sum(DR.c.restored_fen), _sum(DR.c.to_fund_fen)).group_by(DR.c.union_id))
        ms = union_all(ms, select(DM.c.union_id, DM.c.members)
                       .join(uc, uc.c.id == DM.c.union_id))
    rs = rs.cte("rs")
    ms = ms.cte("ms")

    per_union = (select(
        unions.c.id, unions.c.path, unions.c.level,
        _segment_after(unions.c.path, len(node.path) if node else 1, dialect).label("child_id"),
        *[func.coalesce(src.c[name], 0).label(name)
          for name, src in [("members", ms)]
          + [(k, vs) for k in ("issued_fen", "issued_count", "digital_fen", "paper_fen",
                               "digital_count", "paper_count", "redeemed_vouchers_fen",
                               "outstanding_fen", "outstanding_count", "lapsed_fen",
                               "lapsed_count", "expired_fen", "expired_count")]
          + [(k, rs) for k in ("redeemed_fen", "redemptions", "order_fen", "refunded_fen",
                               "refunds", "refunded_restored_fen",
                               "refunded_to_fund_fen")]],
    ).select_from(unions)
        .outerjoin(ms, ms.c.union_id == unions.c.id)
        .outerjoin(vs, vs.c.union_id == unions.c.id)
        .outerjoin(rs, rs.c.union_id == unions.c.id).cte("pu"))

    def sums(src):
        return [func.count(src.c.id).label("unions"),
                *[_sum(src.c[k]).label(k) for k in _MEASURES]]

    pu = per_union
    children = (select(O.c.id, O.c.name, O.c.level, O.c.path,
                       func.coalesce(O.c.division_code, O.c.uscc).label("code"))
                .where(O.c.parent_id == node.id if node else O.c.parent_id.is_(None))
                .cte("c"))
    no_str = cast(null(), String)
    q_total = select(literal("total").label("grp"), no_str.label("k"),
                     cast(null(), Integer).label("org_id"), no_str.label("name"),
                     no_str.label("level"), no_str.label("path"), no_str.label("code"),
                     *sums(pu))
    q_level = (select(literal("level").label("grp"), pu.c.level, cast(null(), Integer),
                      no_str, no_str, no_str, no_str, *sums(pu)).group_by(pu.c.level))
    # A union's child of the node is the id right after the node's path in the union's
    # path ('/1/4/19/200/' under '/1/4/': 19): an equality join, not a prefix test per pair.
    q_child = (select(literal("child").label("grp"), no_str, children.c.id, children.c.name,
                      children.c.level, children.c.path, children.c.code, *sums(pu))
               .select_from(children)
               .outerjoin(pu, pu.c.child_id == children.c.id)
               .group_by(children.c.id, children.c.name, children.c.level, children.c.path,
                         children.c.code))
    rows = session.execute(union_all(q_total, q_level, q_child)).mappings().all()

    def figures(r) -> Figures:
        vals = {k: _n(r[k]) for k in ("unions", *_MEASURES)}
        return Figures(planned_fen=vals["members"] * face, **vals)

    total = Figures()
    levels, kids = [], []
    for r in rows:
        if r["grp"] == "total":
            total = figures(r)
        elif r["grp"] == "level":
            levels.append(LevelRow(r["k"], figures(r)))
        else:
            kids.append(ChildRow(OrgNode(r["org_id"], r["name"], r["level"], r["path"],
                                         r["code"]), figures(r)))
    levels.sort(key=lambda x: level_order(x.level))
    kids.sort(key=lambda x: (x.org.level != "union", x.org.code or "", x.org.name, x.org.id))

    # Spending by merchant category and by channel: one statement.
    spend = redemptions_in_scope(
        R.c.merchant_id, R.c.channel, R.c.amount_fen, R.c.order_amount_fen,
    ).where(posted).cte("sp")
    cat = func.coalesce(MER.c.category, "unknown")
    parts = [
        select(literal("category").label("dim"), cat.label("k"), func.count().label("n"),
               _sum(spend.c.amount_fen).label("fen"),
               _sum(spend.c.order_amount_fen).label("order_fen"))
        .select_from(spend).outerjoin(MER, MER.c.id == spend.c.merchant_id).group_by(cat),
        select(literal("channel").label("dim"), spend.c.channel, func.count(),
               _sum(spend.c.amount_fen), _sum(spend.c.order_amount_fen))
        .group_by(spend.c.channel),
    ]
    if use_rollup:
        parts += [
            roll_redemptions(DS, literal("category"), DS.c.category, _sum(DS.c.n),
                             _sum(DS.c.fen), _sum(DS.c.order_fen)).group_by(DS.c.category),
            roll_redemptions(DS, literal("channel"), DS.c.channel, _sum(DS.c.n),
                             _sum(DS.c.fen), _sum(DS.c.order_fen)).group_by(DS.c.channel),
        ]
    sp = union_all(*parts).subquery("spa")
    q_spend = (select(sp.c.dim, sp.c.k, _sum(sp.c.n).label("n"), _sum(sp.c.fen).label("fen"),
                      _sum(sp.c.order_fen).label("order_fen"))
               .group_by(sp.c.dim, sp.c.k))
    by_cat, by_chan = [], []
    for r in session.execute(q_spend).mappings():
        row = SpendRow(str(r["k"]), _n(r["n"]), _n(r["fen"]), _n(r["order_fen"]))
        (by_cat if r["dim"] == "category" else by_chan).append(row)
    by_cat.sort(key=lambda x: (-x.redeemed_fen, x.key))
    by_chan.sort(key=lambda x: (-x.redeemed_fen, x.key))

    # The daily curve: issued (by issued_at) and redeemed (by posting), local days.
    lo = min((r.valid_from for r in products), default=as_of)
    zone = clock.zone()
    periods = _periods(min(lo, as_of), max(lo, as_of), getattr(zone, "key", str(zone)))
    spent_at = func.coalesce(R.c.posted_at, R.c.created_at)
    red_days = redemptions_in_scope(
        _local_day(spent_at, dialect, periods).label("day"),
        R.c.amount_fen.label("fen"), R.c.order_amount_fen.label("order_fen"),
    ).where(posted).subquery("rd")
    iss_days = (select(_local_day(V.c.issued_at, dialect, periods).label("day"),
                       V.c.amount_fen.label("fen"))
                .join(ul, ul.c.id == V.c.union_id)
                .where(V.c.program_id.in_(pids or [-1]), V.c.product_id.in_(cons or [-1]),
                       changed_only(V.c.union_id))
                .subquery("idy"))
    zero = literal(0)
    day_parts = [
        select(literal("issued").label("what"), iss_days.c.day.label("day"),
               func.count().label("n"), _sum(iss_days.c.fen).label("fen"),
               zero.label("order_fen"))
        .group_by(iss_days.c.day),
        select(literal("redeemed"), red_days.c.day, func.count(), _sum(red_days.c.fen),
               _sum(red_days.c.order_fen)).group_by(red_days.c.day),
    ]
    if use_rollup:
        day_parts += [
            select(literal("issued"), DI.c.day, _sum(DI.c.n), _sum(DI.c.fen), zero)
            .join(uc, uc.c.id == DI.c.union_id)
            .where(DI.c.program_id.in_(pids or [-1]), DI.c.product_id.in_(cons or [-1]))
            .group_by(DI.c.day),
            roll_redemptions(DD, literal("redeemed"), DD.c.day, _sum(DD.c.n), _sum(DD.c.fen),
                             _sum(DD.c.order_fen)).group_by(DD.c.day),
        ]
        da = union_all(*day_parts).subquery("da")
        q_days = (select(da.c.what, da.c.day, _sum(da.c.n).label("n"),
                         _sum(da.c.fen).label("fen"), _sum(da.c.order_fen).label("order_fen"))
                  .group_by(da.c.what, da.c.day))
    else:
        q_days = union_all(*day_parts)
    days: dict[str, dict[str, int]] = {}
    for r in session.execute(q_days).mappings():
        day = r["day"].isoformat() if isinstance(r["day"], date) else str(r["day"])
        d = days.setdefault(day, dict(issued_count=0, issued_fen=0, redemptions=0,
                                      redeemed_fen=0, order_fen=0))
        if r["what"] == "issued":
            d.update(issued_count=_n(r["n"]), issued_fen=_n(r["fen"]))
        else:
            d.update(redemptions=_n(r["n"]), redeemed_fen=_n(r["fen"]),
                     order_fen=_n(r["order_fen"]))
    by_day = tuple(DayRow(day, **d) for day, d in sorted(days.items()))

    return Dashboard(org=node, programs=tuple(programs), as_of=as_of, face_value_fen=face,
                     figures=total, by_level=tuple(levels), children=tuple(kids),
                     by_category=tuple(by_cat), by_channel=tuple(by_chan), by_day=by_day)


__all__ = ["ChildRow", "Dashboard", "DayRow", "Figures", "LevelRow", "OrgNode", "ProgramRef",
           "SpendRow", "dashboard"]
