"""Issue 8 item 10: the Shanxi scenario's deadlines are Beijing time. "7月10日24:00" is
2020-07-10T16:00Z (it used to be stored as 2020-07-11T00:00Z, 08:00 next morning in Beijing)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from civicvoucher.analytics import compute_report
from civicvoucher.db import Database
from civicvoucher.programs.models import Product
from civicvoucher.scenarios.model import guarantee_by_county, load_scenario
from civicvoucher.scenarios.simulate import simulate
from civicvoucher.schema import upgrade
from civicvoucher.settlement.models import SettlementRun
from civicvoucher.vouchers.models import ExpiryRun, Extension, Redemption, Voucher

SCN = load_scenario()


@pytest.fixture(scope="module")
def shanxi(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("CIVICVOUCHER_TIMEZONE", raising=False)
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('shanxi') / 'cv.db'}")
    upgrade(db.engine)
    simulate(db, SCN, scale=0.002, seed=2020, key=b"demo-test")
    yield db
    db.dispose()
    mp.undo()


def test_the_deadlines_are_beijing_midnight(shanxi):
    with shanxi.session() as s:
        voucher = s.execute(select(Product).where(Product.key == "voucher")).scalar_one()
        assert (voucher.valid_from, voucher.expires_at) == (
            datetime(2020, 4, 25, 16), datetime(2020, 7, 10, 16))
        ext = s.execute(select(Extension)).scalar_one()
        assert ext.new_expires_at == datetime(2020, 7, 31, 16)  # 8月1日 00:00 Beijing
        runs = sorted(s.execute(select(ExpiryRun.as_of)).scalars())
        assert runs == [datetime(2020, 7, 10, 16), datetime(2020, 7, 31, 16)]
        cutoffs = set(s.execute(select(SettlementRun.cutoff)).scalars())
        # every Monday 00:00 Beijing (Sunday 16:00Z), and the final run at the new deadline
        assert {c.weekday() for c in cutoffs if c != ext.new_expires_at} == {6}
        assert {c.hour for c in cutoffs} == {16}


def test_spending_happens_in_beijing_days_and_stops_at_the_deadlines(shanxi):
    with shanxi.session() as s:
        times = s.execute(select(func.min(Redemption.created_at),
                                 func.max(Redemption.created_at))).one()
        assert times[0] >= datetime(2020, 4, 25, 16) and times[1] < datetime(2020, 7, 31, 16)
        hours = set(s.execute(select(Redemption.created_at)).scalars())
        assert {t.hour for t in hours} == {4}  # noon in Beijing
        late_paper = s.execute(
            select(func.count()).select_from(Redemption)
            .join(Voucher, Voucher.id == Redemption.voucher_id)
            .where(Voucher.form == "paper", Redemption.created_at >= datetime(2020, 7, 10, 16))
        ).scalar_one()
        assert late_paper == 0
    rep = compute_report(shanxi.url, scale=0.002, published=SCN["published"],
                         guarantee_by_county=guarantee_by_county(SCN), program_key="shanxi-2020")
    days = [r["day"] for r in rep.table("daily_spending").rows]
    assert days[0] >= "2020-04-26" and days[-1] <= "2020-07-31"
