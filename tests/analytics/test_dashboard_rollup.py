"""The dashboard's rollup (``analytics/rollup.py``) against the direct computation (the oracle,
``dashboard(..., source="live")``): random sequences of redeem / hold / capture / void / refund /
expire / extend / member status / merchant category changes, with refreshes (incremental,
full, and the read's own when the log passes its bound) at random points, on SQLite and
PostgreSQL; and a refresh racing redemptions that commit during it (PostgreSQL, interleaving
fixed by events)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from civicvoucher.analytics import rollup
from civicvoucher.analytics.dashboard import dashboard
from civicvoucher.db import Database
from civicvoucher.errors import CivicVoucherError
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.rollup_schema import DIRTY, DV, STATE
from civicvoucher.schema import upgrade
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import capture, redeem, refund, void
from tests.analytics.world import EXPIRY, build_report_world
from tests.conftest import wipe
from tests.world import T0

TIMES = [T0 + timedelta(days=d, hours=h) for d in (0, 1, 5, 40) for h in (0, 15)] + [
    EXPIRY - timedelta(hours=1), EXPIRY + timedelta(days=1)]


def views(db: Database, at: datetime) -> None:
    """Every scope and program choice: the rollup's answer is the oracle's, field by field."""
    with db.session() as s:
        feds = s.execute(select(Org.path).where(Org.level != "union").order_by(Org.id))
        paths = [None, *list(feds.scalars())[:3]]
    for path in paths:
        for program in (None, "p2020"):
            with db.session() as s:
                want = dashboard(s, org_path=path, program=program, now=at, source="live")
            with db.session() as s:
                got = dashboard(s, org_path=path, program=program, now=at)
            assert got.to_dict() == want.to_dict(), (path, program, at)


def codes(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.execute(select(Voucher.code).order_by(Voucher.id)).scalars())


action = st.one_of(
    st.tuples(st.just("redeem"), st.integers(0, 30), st.integers(0, 1), st.booleans(),
              st.sampled_from(TIMES)),
    st.tuples(st.just("capture"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("refund"), st.integers(0, 30), st.sampled_from(TIMES)),
    st.tuples(st.just("expire"), st.sampled_from(TIMES[-2:])),
    st.tuples(st.just("extend"), st.integers(1, 30)),
    st.tuples(st.just("member"), st.integers(0, 30), st.sampled_from(["active", "left"])),
    st.tuples(st.just("category"), st.integers(0, 1)),
    st.tuples(st.just("refresh"), st.booleans()),
    st.tuples(st.just("check"), st.sampled_from(TIMES)),
)


def play(db: Database, step: tuple, n: int) -> None:
    what = step[0]
    w = play.world
    try:
        if what == "redeem":
            _, i, m, hold, at = step
            cs = codes(db)
            db.run(redeem, code=cs[i % len(cs)], merchant_id=list(w.merchants.values())[m],
                   order_amount_fen=40000, idem_key=f"r{n}", hold=hold, now=at)
        elif what == "capture":
            _, i, ok = step
            with db.session() as s:
                held = list(s.execute(select(Redemption.id).where(Redemption.status == "held")
                                      .order_by(Redemption.id)).scalars())
            if held:
                db.run(capture if ok else void, redemption_id=held[i % len(held)],
                       now=T0 + timedelta(days=1))
        elif what == "refund":
            _, i, at = step
            with db.session() as s:
                posted = list(s.execute(select(Redemption.id)
                                        .where(Redemption.status == "posted")
                                        .order_by(Redemption.id)).scalars())
            if posted:
                db.run(refund, redemption_id=posted[i % len(posted)], idem_key=f"f{n}",
                       now=at)
        elif what == "expire":
            db.run(expire, as_of=step[1], idem_key=f"x{n}", now=step[1])
        elif what == "extend":
            db.run(extend, program="p2020", new_expires_at=EXPIRY + timedelta(days=step[1]),
                   actor="test", reason="延期", idem_key=f"e{n}", now=T0 + timedelta(days=2))
        elif what == "member":
            _, i, status = step
            with db.session() as s:
                ids = list(s.execute(select(Member.id).order_by(Member.id)).scalars())
                s.execute(update(Member).where(Member.id == ids[i % len(ids)])
                          .values(status=status))
        elif what == "category":
            with db.session() as s:
                mid = list(w.merchants.values())[step[1]]
                cat = s.get(Merchant, mid).category
                s.execute(update(Merchant).where(Merchant.id == mid).values(
                    category="dining" if cat != "dining" else "supermarket"))
        elif what == "refresh":
            with db.session() as s:
                rollup.refresh(s, full=step[1])
            with db.session() as s:  # nothing changed since: nothing left live
                assert rollup.pending(s) == (0, 0)
        elif what == "check":
            views(db, step[1])
    except CivicVoucherError:
        pass  # a refused action (already redeemed, nothing to extend...): nothing changed


def scenario(db: Database, steps: list, bound: int, monkeypatch) -> None:
    monkeypatch.setattr(rollup, "DIRTY_UNIONS_MAX", bound)
    play.world = build_report_world(db, expire_rest=False).world
    with db.session() as s:
        rollup.refresh(s, full=True)
    views(db, T0)
    for n, step in enumerate(steps):
        play(db, step, n)
    views(db, TIMES[-1])
    views(db, T0 + timedelta(days=3))


SETTINGS = dict(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@settings(**SETTINGS)
@given(steps=st.lists(action, min_size=3, max_size=14), bound=st.sampled_from([0, 1, 256]))
def test_rollup_equals_direct_sqlite(tmp_path_factory, monkeypatch, steps, bound):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('roll') / 'cv.db'}")
    upgrade(db.engine)
    try:
        scenario(db, steps, bound, monkeypatch)
    finally:
        db.dispose()


@pytest.mark.pg
@settings(**SETTINGS)
@given(steps=st.lists(action, min_size=3, max_size=14), bound=st.sampled_from([0, 1, 256]))
def test_rollup_equals_direct_postgresql(pg_url, monkeypatch, steps, bound):
    db = Database(pg_url)
    wipe(db)
    try:
        scenario(db, steps, bound, monkeypatch)
    finally:
        db.dispose()


def test_the_rollup_is_what_is_read(db):
    """Not vacuous: after a refresh the figures come from the summaries (a summary row
    changed by hand shows), a change since makes that union live again (it no longer shows),
    and an unbuilt rollup (no ``dash_state``) is never read."""
    build_report_world(db, expire_rest=False)
    with db.session() as s:
        r = rollup.refresh(s, full=True)
    assert r.full and r.unions >= 4
    with db.session() as s:
        assert rollup.usable(s) and rollup.pending(s) == (0, 0)
        uid = s.execute(select(DV.c.union_id).where(DV.c.status == "issued")
                        .limit(1)).scalar_one()
        s.execute(update(DV).where(DV.c.union_id == uid, DV.c.status == "issued")
                  .values(fen=DV.c.fen + 1))
    with db.session() as s:
        bent = dashboard(s, org_path=None, now=T0).figures.issued_fen
        true = dashboard(s, org_path=None, now=T0, source="live").figures.issued_fen
    assert bent > true
    with db.session() as s:  # any write to the union's vouchers logs it: computed directly
        s.execute(update(Voucher).where(Voucher.union_id == uid).values(qr_used_exp=None))
        assert s.execute(select(func.count()).select_from(DIRTY)).scalar() >= 1
    with db.session() as s:
        assert dashboard(s, org_path=None, now=T0).figures.issued_fen == true
        s.execute(update(DV).values(fen=DV.c.fen + 1000))
        s.execute(STATE.delete())
    with db.session() as s:
        assert not rollup.usable(s)
        assert dashboard(s, org_path=None, now=T0).figures.issued_fen == true


def test_a_read_refreshes_past_the_bound(db, monkeypatch):
    build_report_world(db, expire_rest=False)
    with db.session() as s:
        rollup.refresh(s, full=True)
    monkeypatch.setattr(rollup, "DIRTY_UNIONS_MAX", 0)
    with db.session() as s:
        s.execute(update(Member).values(status="left"))
    with db.session() as s:
        assert rollup.pending(s)[1] >= 1
        d = dashboard(s, org_path=None, now=T0)
    with db.session() as s:
        assert rollup.pending(s) == (0, 0)
        assert d.figures.members == 0 == dashboard(s, org_path=None, now=T0,
                                                   source="live").figures.members


@pytest.mark.pg
@pytest.mark.parametrize("at", ["seen", "computed", "open_before"])
def test_a_refresh_racing_redemptions_loses_nothing(pg_db, at):
    """A redemption commits while a refresh runs: after the refresh's stage ``at`` ("seen":
    the log was copied; "computed": summaries written, log not yet trimmed), or it was open
    before the refresh started and commits after it ("open_before": its log row's sequence
    number is lower than rows the refresh consumed). The figures stay the oracle's."""
    db = pg_db
    rw = build_report_world(db, expire_rest=False)
    w = rw.world
    with db.session() as s:
        rollup.refresh(s, full=True)
    go, done, flushed, release = (threading.Event() for _ in range(4))
    errors: list[BaseException] = []

    def spend(key: str, code: str, *, wait_before_commit: bool) -> None:
        try:
            with db.session() as s:
                redeem(s, code=code, merchant_id=w.merchants["超市"], order_amount_fen=50000,
                       idem_key=key, now=T0 + timedelta(days=1))
                s.flush()
                flushed.set()
                if wait_before_commit:
                    assert release.wait(30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    with db.session() as s:  # two unspent consumption vouchers of different unions
        rows = s.execute(select(Voucher.code, Voucher.union_id)
                         .where(Voucher.status == "issued", Voucher.product_id == 1)
                         .order_by(Voucher.id)).all()
    code1, u1 = rows[0]
    code2 = next(c for c, u in rows if u != u1)
    if at == "open_before":
        # a later change first, so the open one's log row is not the highest
        t = threading.Thread(target=spend, args=("late", code1), kwargs={
            "wait_before_commit": True})
        t.start()
        assert flushed.wait(30)
        db.run(redeem, code=code2, merchant_id=w.merchants["饭店"], order_amount_fen=40000,
               idem_key="early", now=T0 + timedelta(days=1))
        with db.session() as s:
            r = rollup.refresh(s)
        assert r.log_rows >= 1
        release.set()
        t.join(30)
    else:
        def hook(stage: str) -> None:
            if stage == at:
                th = threading.Thread(target=spend, args=(f"race-{at}", code1),
                                      kwargs={"wait_before_commit": False})
                th.start()
                assert done.wait(30)
                th.join(30)
                go.set()

        with db.session() as s:
            rollup.refresh(s, hook=hook)
        assert go.is_set()
    assert not errors, errors
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(DIRTY)).scalar() >= 1  # still live
    at_ = T0 + timedelta(days=2)
    with db.session() as s:
        want = dashboard(s, org_path=None, now=at_, source="live")
        got = dashboard(s, org_path=None, now=at_)
    assert got.to_dict() == want.to_dict()
    assert want.figures.redemptions == 4 + (2 if at == "open_before" else 1)
    with db.session() as s:
        rollup.refresh(s)
    with db.session() as s:
        assert rollup.pending(s) == (0, 0)
        assert dashboard(s, org_path=None, now=at_).to_dict() == want.to_dict()


def test_0012_on_a_database_with_data_and_back(blank_db):
    """Migrated with data already in it: the dashboard computes directly (no ``dash_state``)
    until a full refresh, then reads the summaries, the same figures; the downgrade takes the
    tables and triggers away and redemptions still work."""
    from alembic import command
    from sqlalchemy import inspect

    from civicvoucher.schema import alembic_config, current

    db = blank_db
    upgrade(db.engine, "0011")
    rw = build_report_world(db, expire_rest=False)
    upgrade(db.engine, "0012")
    assert current(db.engine) == "0012"
    with db.session() as s:
        assert not rollup.usable(s)
        before = dashboard(s, org_path=None, now=T0).to_dict()
        assert before == dashboard(s, org_path=None, now=T0, source="live").to_dict()
        assert rollup.refresh(s).full  # never built: a full one whatever was asked
    with db.session() as s:
        assert rollup.usable(s) and rollup.pending(s) == (0, 0)
        assert dashboard(s, org_path=None, now=T0).to_dict() == before
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
    assert not [t for t in inspect(db.engine).get_table_names() if t.startswith("dash_")]
    with db.session() as s:
        code = s.execute(select(Voucher.code).where(Voucher.status == "issued",
                                                    Voucher.product_id == 1)
                         .order_by(Voucher.id).limit(1)).scalar_one()
    db.run(redeem, code=code, merchant_id=rw.world.merchants["超市"], order_amount_fen=40000,
           idem_key="after-downgrade", now=T0)
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Redemption)).scalar() == 5
