"""The report over 100,000 vouchers takes a couple of seconds at most."""

from __future__ import annotations

import time

import pytest

from civicvoucher.analytics import compute_report
from civicvoucher.db import Database
from civicvoucher.schema import upgrade
from tests.analytics.bigworld import build_big_world

pytestmark = pytest.mark.slow

UNIONS, MEMBERS, REDEMPTIONS = 20, 834, 300  # six vouchers each: 100,080 vouchers


@pytest.fixture(scope="module")
def big_url(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    build_big_world(db, unions=UNIONS, members_per_union=MEMBERS, redemptions=REDEMPTIONS)
    db.dispose()
    return f"sqlite:///{path}"


def test_report_over_100k_vouchers_is_fast(big_url, published):
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        report = compute_report(big_url, scale=0.01, published=published,
                                guarantee_by_county={"140105": 1.0})
        timings.append(time.perf_counter() - start)
    total = report.table("redemption_rate").row(form="total")
    assert total["vouchers"] == UNIONS * MEMBERS * 6
    assert total["redeemed"] == REDEMPTIONS
    assert min(timings) < 2.0, timings
