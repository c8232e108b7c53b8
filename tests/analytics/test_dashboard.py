"""The dashboard's figures against an independent count of the rows (Python over the voucher,
redemption, refund and member tables), against the report (same definitions), and the
drill-down: children add up to their parent, a subtree sees nothing of others."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from civicvoucher.analytics.dashboard import Figures, dashboard
from civicvoucher.core import clock
from civicvoucher.errors import NotFound
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product
from civicvoucher.vouchers.lifecycle import expire
from civicvoucher.vouchers.models import Redemption, Refund, Voucher
from civicvoucher.vouchers.redemption import redeem, refund
from tests.analytics.world import EXPIRY, build_report_world, voucher_codes
from tests.world import T0

ADDITIVE = [f.name for f in Figures.__dataclass_fields__.values()]


def expected(db, union_ids: set[int] | None, as_of: datetime) -> dict:
    """The figures counted row by row in Python (the test's own computation)."""
    with db.session() as s:
        orgs = {o.id: o for o in s.execute(select(Org)).scalars()}
        cons = {p.id for p in s.execute(select(Product)).scalars() if p.kind == "consumption"}
        face = sum(p.face_value_fen for p in s.execute(select(Product)).scalars()
                   if p.kind == "consumption")
        unions = {i for i, o in orgs.items() if o.level == "union"
                  and (union_ids is None or i in union_ids)}
        vouchers = [v for v in s.execute(select(Voucher)).scalars()
                    if v.union_id in unions and v.product_id in cons]
        vids = {v.id for v in vouchers}
        reds = [r for r in s.execute(select(Redemption)).scalars() if r.voucher_id in vids]
        posted = [r for r in reds if r.status == "posted"]
        rids = {r.id for r in reds}
        refunds = [f for f in s.execute(select(Refund)).scalars() if f.redemption_id in rids]
        members = [m for m in s.execute(select(Member)).scalars()
                   if m.union_id in unions and m.status == "active"]
    live = [v for v in vouchers if v.status in ("issued", "held")]
    out = [v for v in live if v.expires_at > as_of]
    lapsed = [v for v in live if v.expires_at <= as_of]
    expired = [v for v in vouchers if v.status == "expired"]
    return dict(
        unions=len(unions), members=len(members), planned_fen=len(members) * face,
        issued_fen=sum(v.amount_fen for v in vouchers), issued_count=len(vouchers),
        digital_fen=sum(v.amount_fen for v in vouchers if v.form == "digital"),
        paper_fen=sum(v.amount_fen for v in vouchers if v.form == "paper"),
        digital_count=sum(v.form == "digital" for v in vouchers),
        paper_count=sum(v.form == "paper" for v in vouchers),
        redeemed_fen=sum(r.amount_fen for r in posted), redemptions=len(posted),
        order_fen=sum(r.order_amount_fen for r in posted),
        redeemed_vouchers_fen=sum(v.amount_fen for v in vouchers if v.status == "redeemed"),
        outstanding_fen=sum(v.amount_fen for v in out), outstanding_count=len(out),
        lapsed_fen=sum(v.amount_fen for v in lapsed), lapsed_count=len(lapsed),
        expired_fen=sum(v.amount_fen for v in expired), expired_count=len(expired),
        refunded_fen=sum(f.amount_fen for f in refunds), refunds=len(refunds),
        refunded_restored_fen=sum(f.amount_fen for f in refunds if f.outcome == "restored"),
        refunded_to_fund_fen=sum(f.amount_fen for f in refunds if f.outcome == "to_fund"),
        _posted=posted, _vouchers=vouchers,
    )


def figures_of(e: dict) -> dict:
    return {k: v for k, v in e.items() if not k.startswith("_")}


def as_dict(f: Figures) -> dict:
    return {k: getattr(f, k) for k in ADDITIVE}


def path_of(db, org_id: int) -> str:
    with db.session() as s:
        return s.get(Org, org_id).path


def subtree_unions(db, org_id: int) -> set[int]:
    root = path_of(db, org_id)
    with db.session() as s:
        return {o.id for o in s.execute(select(Org)).scalars()
                if o.level == "union" and o.path.startswith(root)}


def test_province_figures_match_the_rows(report_world):
    db = report_world.world.db
    with db.session() as s:
        d = dashboard(s, org_path=None)
    e = expected(db, None, d.as_of)
    assert as_dict(d.figures) == figures_of(e)
    # the worked example's own numbers (tests/analytics/world.py)
    f = d.figures
    assert (f.planned_fen, f.issued_fen, f.digital_fen, f.paper_fen) == (
        330000, 240000, 150000, 90000)
    assert (f.redeemed_fen, f.order_fen, f.expired_fen, f.shortfall_fen) == (
        120000, 156000, 120000, 90000)
    assert f.leverage == pytest.approx(156000 / 120000)
    assert f.digital_share == pytest.approx(150000 / 240000)
    # voucher statuses split what was issued
    assert f.issued_fen == (f.redeemed_vouchers_fen + f.outstanding_fen + f.lapsed_fen
                            + f.expired_fen)
    json.dumps(d.to_dict())  # plain values only


def test_by_level_shortfall(report_world):
    db = report_world.world.db
    with db.session() as s:
        d = dashboard(s, org_path=None)
    got = {r.level: (r.figures.planned_fen, r.figures.issued_fen, r.figures.shortfall_fen)
           for r in d.by_level}
    assert got == {"province": (60000, 60000, 0), "city": (60000, 30000, 30000),
                   "county": (210000, 150000, 60000)}
    assert [r.level for r in d.by_level] == ["province", "city", "county"]
    for k in ADDITIVE:
        assert sum(getattr(r.figures, k) for r in d.by_level) == getattr(d.figures, k), k


@pytest.mark.parametrize("which", ["province", "city", "county_a", "county_b"])
def test_children_add_up_to_the_parent(report_world, which):
    w = report_world.world
    node = getattr(w, which)
    with w.db.session() as s:
        d = dashboard(s, org_path=path_of(w.db, node))
        kids = s.execute(select(Org.id).where(Org.parent_id == node)).scalars().all()
    assert sorted(c.org.id for c in d.children) == sorted(kids)
    for k in ADDITIVE:
        assert sum(getattr(c.figures, k) for c in d.children) == getattr(d.figures, k), k
    for c in d.children:  # each child is its own subtree's dashboard
        with w.db.session() as s:
            assert as_dict(c.figures) == as_dict(dashboard(s, org_path=c.org.path).figures)


def test_a_subtree_excludes_the_others(report_world):
    w = report_world.world
    with w.db.session() as s:
        d = dashboard(s, org_path=path_of(w.db, w.county_a))
    e = expected(w.db, subtree_unions(w.db, w.county_a), d.as_of)
    assert as_dict(d.figures) == figures_of(e)
    assert d.figures.unions == 2 and d.figures.members == 5  # unions A and B
    assert d.figures.issued_fen == 90000 and d.figures.paper_fen == 0
    assert d.figures.redeemed_fen == 60000 and d.figures.order_fen == 80000
    assert {c.org.id for c in d.children} == {w.union_a, w.union_b}
    assert [r.level for r in d.by_level] == ["county"]
    assert {r.key: r.redeemed_fen for r in d.by_category} == {
        "hotel_dining": 30000, "supermarket_fuel": 30000}
    # a union's own dashboard: itself, no children
    with w.db.session() as s:
        u = dashboard(s, org_path=path_of(w.db, w.union_b))
    assert u.children == () and u.figures.unions == 1 and u.figures.issued_fen == 0
    assert u.figures.shortfall_fen == u.figures.planned_fen == 60000


def test_breakdowns_match_the_rows(report_world):
    db = report_world.world.db
    with db.session() as s:
        d = dashboard(s, org_path=None)
        cats = {m.id: m.category for m in s.execute(select(Merchant)).scalars()}
    e = expected(db, None, d.as_of)
    by_cat, by_chan, by_day = (defaultdict(lambda: [0, 0, 0]) for _ in range(3))
    for r in e["_posted"]:
        day = clock.local_date(r.posted_at or r.created_at).isoformat()
        for acc, k in ((by_cat, cats[r.merchant_id]), (by_chan, r.channel), (by_day, day)):
            acc[k][0] += 1
            acc[k][1] += r.amount_fen
            acc[k][2] += r.order_amount_fen
    assert {r.key: [r.redemptions, r.redeemed_fen, r.order_fen] for r in d.by_category} == \
        dict(by_cat)
    assert {r.key: [r.redemptions, r.redeemed_fen, r.order_fen] for r in d.by_channel} == \
        dict(by_chan)
    assert {r.day: [r.redemptions, r.redeemed_fen, r.order_fen] for r in d.by_day
            if r.redemptions} == dict(by_day)
    issued = defaultdict(lambda: [0, 0])
    for v in e["_vouchers"]:
        issued[clock.local_date(v.issued_at).isoformat()][0] += 1
        issued[clock.local_date(v.issued_at).isoformat()][1] += v.amount_fen
    assert {r.day: [r.issued_count, r.issued_fen] for r in d.by_day if r.issued_count} == \
        dict(issued)


def test_days_are_local_days(db):
    """A redemption at 17:30 UTC is the next morning in Beijing: it counts on that day."""
    rw = build_report_world(db, expire_rest=False)
    w = rw.world
    late = datetime(2020, 5, 3, 17, 30)  # 2020-05-04 01:30 +08:00
    code = voucher_codes(db, rw.union_p)[1]
    db.run(redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=31000,
           idem_key="late", now=late)
    with db.session() as s:
        d = dashboard(s, org_path=None)
    day = {r.day: r for r in d.by_day}
    assert "2020-05-03" not in day
    assert (day["2020-05-04"].redemptions, day["2020-05-04"].order_fen) == (1, 31000)


def test_refunds_expiry_and_outstanding(db):
    """Before the deadline what was not spent is outstanding; past it, lapsed until the expiry
    run, then expired. A refund in time restores the voucher; one after the deadline sends the
    value to the union's fund (the voucher counts as expired)."""
    rw = build_report_world(db, expire_rest=False)
    before = T0 + timedelta(days=3)
    db.run(refund, redemption_id=rw.redemptions["p1"], idem_key="rf1", now=before)
    with db.session() as s:
        d = dashboard(s, org_path=None, now=before)
    e = expected(db, None, before)
    assert as_dict(d.figures) == figures_of(e)
    f = d.figures
    assert (f.refunds, f.refunded_fen, f.refunded_restored_fen) == (1, 30000, 30000)
    assert f.redeemed_fen == 90000 and f.redemptions == 3  # the refunded one no longer counts
    assert f.outstanding_fen == 240000 - 90000 and f.lapsed_fen == f.expired_fen == 0

    # the day after the deadline, before any expiry run: lapsed, not outstanding
    with db.session() as s:
        d = dashboard(s, org_path=None, today=date(2020, 7, 11))
    assert d.figures.outstanding_fen == 0 and d.figures.lapsed_fen == 150000
    assert d.as_of == clock.end_of_day(date(2020, 7, 11))

    db.run(expire, as_of=EXPIRY, idem_key="x1", now=EXPIRY)
    after = EXPIRY + timedelta(days=1)
    db.run(refund, redemption_id=rw.redemptions["a2"], idem_key="rf2", now=after)
    with db.session() as s:
        d = dashboard(s, org_path=None, now=after)
    e = expected(db, None, after)
    assert as_dict(d.figures) == figures_of(e)
    f = d.figures
    assert (f.refunds, f.refunded_fen, f.refunded_to_fund_fen) == (2, 60000, 30000)
    assert f.expired_fen == 150000 + 30000 and f.lapsed_fen == f.outstanding_fen == 0
    assert f.redeemed_fen == f.redeemed_vouchers_fen == 60000
    with db.session() as s:  # the county of union A sees its own refund only
        a = dashboard(s, org_path=path_of(db, rw.world.county_a), now=after)
    assert (a.figures.refunds, a.figures.refunded_to_fund_fen) == (1, 30000)


def test_same_figures_as_the_report(report_world, make_report):
    """The report (DuckDB over staged rows) and the dashboard (SQL on the live database) give
    the same plan, issue, form, redemption and leverage figures, province-wide and by county."""
    w = report_world.world
    report = make_report(report_world.url, level="county")
    with w.db.session() as s:
        d = dashboard(s, org_path=None)
    total = next(r for r in report.table("expected_issued").rows if r["level"] == "total")
    assert (total["members"], total["expected_fen"], total["issued_fen"],
            total["shortfall_fen"]) == (d.figures.members, d.figures.planned_fen,
                                        d.figures.issued_fen, d.figures.shortfall_fen)
    for r in report.table("expected_issued").rows:
        if r["level"] != "total":
            mine = next(x.figures for x in d.by_level if x.level == r["level"])
            assert (r["expected_fen"], r["issued_fen"]) == (mine.planned_fen, mine.issued_fen)
    counties = {r["org_id"]: r for r in report.table("by_org").rows if r["group"] == "org"}
    for org_id, r in counties.items():
        with w.db.session() as s:
            f = dashboard(s, org_path=path_of(w.db, org_id)).figures
        assert (r["members"], r["expected_fen"], r["issued_fen"], r["digital_fen"],
                r["paper_fen"], r["redeemed_fen"]) == (
            f.members, f.planned_fen, f.issued_fen, f.digital_fen, f.paper_fen,
            f.redeemed_fen)
        assert r["leverage"] == (pytest.approx(f.leverage) if f.leverage else None)


def test_unknown_program_or_org(report_world):
    db = report_world.world.db
    with db.session() as s:
        assert dashboard(s, org_path=None, program="p2020").figures.issued_fen == 240000
        assert dashboard(s, org_path=None, program=1).figures.issued_fen == 240000
        with pytest.raises(NotFound) as e:
            dashboard(s, org_path=None, program="nope")
        assert e.value.code == "program_not_found"
        with pytest.raises(NotFound) as e:
            dashboard(s, org_path="/999/")
        assert e.value.code == "org_not_found"


def test_empty_database(db):
    with db.session() as s:
        d = dashboard(s, org_path=None)
    assert d.figures == Figures() and d.children == () and d.by_day == ()
    assert d.figures.leverage is None and d.figures.digital_share is None


def test_tourism_cards_are_not_counted(db):
    """Only consumption vouchers count (the report's definition): spending a tourism card
    changes no figure."""
    rw = build_report_world(db, expire_rest=False)
    w = rw.world
    with db.session() as s:
        before = dashboard(s, org_path=None, now=T0)
    card = voucher_codes(db, w.union_a, "tourism")[0]
    db.run(redeem, code=card, merchant_id=w.merchants["饭店"], order_amount_fen=50000,
           idem_key="card", now=T0 + timedelta(hours=1))
    with db.session() as s:
        after = dashboard(s, org_path=None, now=T0)
        assert s.execute(select(Redemption).where(Redemption.idem_key == "card")).scalar_one()
    assert after.figures == before.figures
    assert after.by_category == before.by_category and after.by_day == before.by_day
    assert as_dict(after.figures) == figures_of(expected(db, None, T0))
