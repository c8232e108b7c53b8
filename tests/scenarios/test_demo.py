"""The Shanxi 2020 scenario through the real engine: the report lands on the article's figures
(scaled to full size), a seed is a dataset, and the report reads data, not targets."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update

from civicvoucher.analytics import compute_report
from civicvoucher.db import Database
from civicvoucher.reconcile import verify
from civicvoucher.scenarios.funding import plan_funding
from civicvoucher.scenarios.model import apply_overrides, guarantee_by_county, load_scenario
from civicvoucher.scenarios.population import People, plan_merchants, plan_unions
from civicvoucher.scenarios.simulate import simulate
from civicvoucher.schema import upgrade
from civicvoucher.vouchers.models import Redemption

SCN = load_scenario()
PUB = SCN["published"]
YI = 100_000_000 * 100  # fen


def run(tmp_path, scale: float, seed: int = 2020, scn: dict = SCN):
    db = Database(f"sqlite:///{tmp_path / f'demo-{scale}-{seed}.db'}")
    upgrade(db.engine)
    summary = simulate(db, scn, scale=scale, seed=seed, key=b"demo-test")
    return db, summary


def report(db, scale):
    return compute_report(db.url, scale=scale, published=PUB,
                          guarantee_by_county=guarantee_by_county(SCN), program_key="shanxi-2020")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db, summary = run(tmp_path_factory.mktemp("demo"), 0.01)
    yield db, summary, report(db, 0.01)
    db.dispose()


def full(rep, key):
    return rep.headline[key].full


def near(ours, published, tol):
    assert published, "no published figure"
    dev = (ours - published) / published
    assert abs(dev) <= tol, f"{ours} vs {published}: {dev:+.2%}"


def test_figures_at_full_size_agree_with_the_article(demo):
    _, summary, rep = demo
    comparison = {row["key"]: row for row in rep.table("comparison").rows}
    must = {  # key in the comparison table -> tolerance
        "expected_fen_total": 0.02, "issued_fen_total": 0.02, "issued_fen_city": 0.02,
        "issued_fen_county": 0.02, "issued_fen_province": 0.02,
        "issued_digital_fen_city": 0.02, "issued_digital_fen_county": 0.02,
        "issued_digital_fen_total": 0.02, "issued_paper_fen_total": 0.02,
        "issued_paper_fen_city": 0.02, "issued_paper_fen_county": 0.02,
        "shortfall_fen_city": 0.02, "shortfall_fen_county": 0.02, "shortfall_fen_total": 0.02,
        "digital_share": 0.02, "leverage_digital": 0.02, "tourism_cards": 0.02,
        # 0.48 + 2.3 = 2.78亿 cannot hold with 900,000 members x 300 yuan: 3% there
        "issued_digital_fen_province": 0.03, "issued_paper_fen_province": 0.03,
    }
    for key, tol in must.items():
        row = comparison[key]
        near(row["ours"], row["published"], tol)
    groups = {r["group"]: r["counties"] for r in rep.table("guarantee_groups").rows}
    assert [groups[g] for g in ("100%", "50% to <100%", "under 50%", "0%")] == [20, 22, 68, 7]
    assert summary.refused == {}


def test_the_books_balance_after_the_whole_program(demo):
    db, _, _ = demo
    with db.session() as s:
        assert verify(s) == []


def test_the_report_reads_transactions_not_targets(demo):
    """Double one redemption's order amount: leverage moves, and only because of that row."""
    db, _, rep = demo
    with db.session() as s:
        rid, order = s.execute(select(Redemption.id, Redemption.order_amount_fen)
                               .order_by(Redemption.id).limit(1)).one()
    try:
        with db.session() as s:
            s.execute(update(Redemption).where(Redemption.id == rid)
                      .values(order_amount_fen=order + 10_000_000))
        changed = report(db, 0.01)
        assert full(changed, "leverage_digital") != full(rep, "leverage_digital") or \
            changed.table("leverage").rows != rep.table("leverage").rows
    finally:
        with db.session() as s:
            s.execute(update(Redemption).where(Redemption.id == rid).values(order_amount_fen=order))


def test_same_seed_same_report_tables(tmp_path):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
    # the smallest scale the demo takes: determinism does not depend on size
    a, _ = run(tmp_path / "a", 0.001)
    b, _ = run(tmp_path / "b", 0.001)
    c, _ = run(tmp_path / "c", 0.001, seed=99)
    ra, rb, rc = report(a, 0.001), report(b, 0.001), report(c, 0.001)
    assert {n: t.rows for n, t in ra.tables.items()} == {n: t.rows for n, t in rb.tables.items()}
    assert rc.table("daily_spending").rows != ra.table("daily_spending").rows


@pytest.mark.parametrize("seed", [2020, 7])
def test_funding_model_lands_at_scale_0_1(seed):
    """The planned issuance at scale 0.1 (the engine's own run at 0.01 is tested above; at 0.1
    it takes minutes, see bench/): what the funded and partial unions can pay for."""
    rng = random.Random(seed)
    scale = 0.1
    plans = plan_unions(SCN, scale=scale, rng=rng)
    People(rng)  # the simulator draws people and merchants between unions and funding
    plan_merchants(SCN, scale=scale, rng=rng)
    funding = plan_funding(SCN, plans, rng=rng)
    issued: dict[str, float] = {}
    for u in plans:
        f = funding[u.index]
        n = u.size if f.funded else (min(u.size, int(u.size * f.fund_ratio)) if f.partial_mode
                                     else 0)
        issued[u.level] = issued.get(u.level, 0) + n * 30000 / scale
    for level in ("province", "city", "county"):
        near(issued[level], PUB["issued_total_yuan"][level] * 100, 0.02)
    cards = sum(f.tourism_cards for f in funding.values()) / scale
    near(cards, PUB["tourism_cards"], 0.02)


def test_what_if_full_county_guarantee_issues_more(tmp_path):
    scn = apply_overrides(SCN, {"county_guarantee": "1.0"})
    assert {c["guarantee"] for c in scn["counties"]} == {1.0}
    (tmp_path / "base").mkdir()
    (tmp_path / "whatif").mkdir()
    base_db, base = run(tmp_path / "base", 0.002)
    what_db, what = run(tmp_path / "whatif", 0.002, scn=scn)
    assert what.vouchers > base.vouchers
    county = lambda db: report(db, 0.002).table("expected_issued").row(level="county")  # noqa: E731
    assert county(what_db)["issued_fen"] > county(base_db)["issued_fen"]
