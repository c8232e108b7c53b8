"""The report over a world spread across every level of the tree: correct totals, and the same
tables when computed twice (the second run reuses the process's DuckDB and its scanner).

How fast it is over 100,000 vouchers is a benchmark, not a test: bench/bench_report.py.
"""

from __future__ import annotations

from civicvoucher.analytics import compute_report
from tests.analytics.bigworld import build_big_world

UNIONS, MEMBERS, REDEMPTIONS = 7, 12, 30  # six vouchers each: 504 vouchers


def test_report_over_a_spread_world_is_right_and_repeatable(db, published):
    build_big_world(db, unions=UNIONS, members_per_union=MEMBERS, redemptions=REDEMPTIONS)
    url = db.engine.url.render_as_string(hide_password=False)
    reports = [compute_report(url, scale=0.01, published=published,
                              guarantee_by_county={"140105": 1.0}) for _ in range(2)]
    total = reports[0].table("redemption_rate").row(form="total")
    assert total["vouchers"] == UNIONS * MEMBERS * 6
    assert total["redeemed"] == REDEMPTIONS
    first, second = ({name: t.rows for name, t in r.tables.items()} for r in reports)
    assert first == second
