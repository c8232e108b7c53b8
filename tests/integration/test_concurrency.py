"""Races, proven by racing: many threads at once on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from civicvoucher.errors import CivicVoucherError
from civicvoucher.funds.service import fund_balance
from civicvoucher.programs.service import create_program
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.reconcile import verify
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import redeem
from tests.world import T0, build_world, fund, program_spec


def race(n: int, fn):
    """Run fn(i) in n threads released together; return results or error codes."""
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        try:
            return fn(i)
        except CivicVoucherError as exc:
            return exc.code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def test_32_concurrent_redemptions_of_one_voucher_succeed_once(db):
    w = build_world(db)
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
        code = s.execute(select(Voucher.code).limit(1)).scalar_one()
    results = race(32, lambda i: db.run(
        redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=30000 + i,
        idem_key=f"r{i}", now=T0).redemption.id)
    outcomes = Counter("ok" if isinstance(r, int) else r for r in results)
    assert outcomes == {"ok": 1, "voucher_already_redeemed": 31}
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Redemption)).scalar() == 1
        assert verify(s) == []


def test_one_key_sent_16_times_at_once_has_one_effect(db):
    w = build_world(db)
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
        code = s.execute(select(Voucher.code).limit(1)).scalar_one()
    results = race(16, lambda i: db.run(
        redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=30000,
        idem_key="same", now=T0).redemption.id)
    assert len(set(results)) == 1 and isinstance(results[0], int)
    with db.session() as s:
        assert verify(s) == []


def test_concurrent_issuance_for_one_union_and_program_issues_once(db):
    w = build_world(db)
    fund(w, w.union_a, 5000)
    results = race(8, lambda i: db.run(
        issue, union_id=w.union_a, program=w.program, idem_key=f"i{i}", now=T0).issuance.status)
    assert Counter(results) == {"completed": 1, "nothing_to_issue": 7}
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Voucher)).scalar() == 3
        assert fund_balance(s, w.union_a) == 500000 - 90000
        assert verify(s) == []


def test_one_union_issuing_two_programs_at_once_never_overdraws(db):
    """Union A can afford one program (3 x 300 of 1,000 yuan), not two."""
    w = build_world(db)
    with db.session() as s:
        create_program(s, spec=parse_program_spec(program_spec("second")))
    fund(w, w.union_a, 1000)
    for rnd in range(3):  # several rounds: the interleaving differs each time
        results = race(2, lambda i, rnd=rnd: db.run(
            issue, union_id=w.union_a, program=["p2020", "second"][i], idem_key=f"x{i}{rnd}",
            now=T0).issuance.status)
        with db.session() as s:
            assert fund_balance(s, w.union_a) >= 0
    with db.session() as s:
        statuses = Counter(s.execute(select(Voucher.program_id)).scalars())
        assert sum(statuses.values()) == 3  # one program issued, the other refused
        assert fund_balance(s, w.union_a) == 10000
        assert verify(s) == []
    assert "completed" in results or "nothing_to_issue" in results


def test_federation_funding_many_unions_at_once_never_overdraws(db):
    """The county federation holds 1,400 yuan; unions A (3 members) and B (2) need 900 and 600.
    Eight concurrent issuances for A and B paid from that fund: exactly one of them fits."""
    w = build_world(db)
    fund(w, w.county_a, 1400)  # not enough for both: exactly one of A/B completes
    unions = [w.union_a, w.union_b] * 4
    results = race(8, lambda i: db.run(
        issue, union_id=unions[i], program=w.program, idem_key=f"f{i}",
        funding_org_id=w.county_a, now=T0).issuance.status)
    with db.session() as s:
        balance = fund_balance(s, w.county_a)
        issued = s.execute(select(func.sum(Voucher.amount_fen))).scalar()
        assert balance >= 0
        assert balance + issued == 140000
        assert issued in (90000, 60000)
        assert verify(s) == []
    assert Counter(results)["completed"] == 1


def test_refunds_after_settlement_racing_settlement_runs_never_net_twice(db):
    """Six refunds of already-paid redemptions race four settlement runs over the merchant's
    new redemptions: each new redemption lands in exactly one batch, and the runs together
    keep back no more than the merchant owed (its receivable never goes above zero)."""
    from datetime import timedelta

    from civicvoucher.ledger.service import balance
    from civicvoucher.settlement.models import SettlementRun
    from civicvoucher.settlement.service import settle
    from civicvoucher.vouchers.redemption import receivable_account, refund

    w = build_world(db, program=program_spec(denominations=(50, 50, 50)))
    fund(w, w.union_a, 450)
    fund(w, w.union_c, 300)
    shop = w.merchants["超市"]
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
        issue(s, union_id=w.union_c, program=w.program, idem_key="ic", now=T0)
        by_union = {u: list(s.execute(select(Voucher.code).where(Voucher.union_id == u)
                                      .order_by(Voucher.id)).scalars())
                    for u in (w.union_a, w.union_c)}
    paid = [db.run(redeem, code=c, merchant_id=shop, order_amount_fen=6000, idem_key=f"a{i}",
                   now=T0).redemption.id for i, c in enumerate(by_union[w.union_a])]
    db.run(settle, cutoff=T0 + timedelta(hours=1), idem_key="s0", now=T0 + timedelta(hours=1))
    for i, c in enumerate(by_union[w.union_c]):
        db.run(redeem, code=c, merchant_id=shop, order_amount_fen=6000, idem_key=f"c{i}",
               now=T0 + timedelta(hours=2))
    later = T0 + timedelta(hours=3)

    def step(i):
        if i < 6:
            return db.run(refund, redemption_id=paid[i], idem_key=f"f{i}", now=later).refund.id
        return db.run(settle, cutoff=later, idem_key=f"s{i}", now=later).run.id

    results = race(10, step)
    assert all(isinstance(r, int) for r in results), results
    with db.session() as s:
        runs = s.execute(select(SettlementRun).where(SettlementRun.idem_key != "s0")).scalars().all()
        assert sum(r.redemptions for r in runs) == len(by_union[w.union_c])
        assert sum(r.amount_fen for r in runs) == 5000 * len(by_union[w.union_c])
        recovered = sum(r.recovered_fen for r in runs)
        assert 0 <= recovered <= 6 * 5000
        assert balance(s, receivable_account(s, shop)) == recovered - 6 * 5000
        assert verify(s) == []


def test_concurrent_redemptions_of_a_voucher_with_a_timed_out_hold_succeed_once(db):
    """Eight cashiers present a voucher whose online hold timed out: the hold is voided once,
    the voucher spent once, the rest told it is spent."""
    from datetime import timedelta

    w = build_world(db, program=program_spec(channels=("offline", "online")))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
        code = s.execute(select(Voucher.code).order_by(Voucher.id).limit(1)).scalar_one()
    db.run(redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=30000,
           channel="online", hold=True, idem_key="h", now=T0)
    later = T0 + timedelta(hours=1)
    results = race(8, lambda i: db.run(
        redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=30000 + i,
        idem_key=f"r{i}", now=later).redemption.id)
    assert Counter("ok" if isinstance(r, int) else r for r in results) == {
        "ok": 1, "voucher_already_redeemed": 7}
    with db.session() as s:
        statuses = Counter(s.execute(select(Redemption.status)).scalars())
        assert statuses == {"voided": 1, "posted": 1}
        assert verify(s) == []
