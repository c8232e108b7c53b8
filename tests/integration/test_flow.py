"""Worked examples of the core engine, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from civicvoucher.errors import (
    IdempotencyConflict,
    InvalidTransition,
    RedemptionNotRefundable,
    ValidationError,
    VoucherNotRedeemable,
)
from civicvoucher.funds.service import deposit, fund_balance
from civicvoucher.reconcile import verify
from civicvoucher.settlement.service import batch_redemptions, settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import capture, redeem, refund, void
from tests.world import T0, build_world, fund, program_spec


def codes(db, union_id):
    with db.session() as s:
        return list(s.execute(select(Voucher.code).where(Voucher.union_id == union_id)
                              .order_by(Voucher.id)).scalars())


def assert_books(db):
    with db.session() as s:
        assert verify(s) == []


def test_issue_all_members_and_books_balance(db):
    """Union A has 3 members and 1,000 yuan: 3 x 300 issued, 100 left in the fund."""
    w = build_world(db)
    fund(w, w.union_a, 1000)
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="i1", now=T0)
        assert (r.issuance.status, r.issuance.members_issued, r.issuance.vouchers_issued) == (
            "completed", 3, 3)
        assert r.issuance.amount_fen == 90000 and r.issuance.shortfall_fen == 0
        assert fund_balance(s, w.union_a) == 10000
    assert_books(db)


def test_issuing_twice_issues_nothing_new_and_key_replays(db):
    w = build_world(db)
    fund(w, w.union_a, 2000)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i1", now=T0)
    with db.session() as s:
        again = issue(s, union_id=w.union_a, program=w.program, idem_key="i1", now=T0)
        assert again.replayed
        second = issue(s, union_id=w.union_a, program=w.program, idem_key="i2", now=T0)
        assert second.issuance.status == "nothing_to_issue"
        assert s.execute(select(func.count()).select_from(Voucher)).scalar() == 3
        with pytest.raises(IdempotencyConflict):
            issue(s, union_id=w.union_a, program=w.program, idem_key="i1", form="paper", now=T0)
    assert_books(db)


def test_short_funds_issue_nothing_by_default_or_partially_on_request(db):
    """700 yuan for three 300-yuan members: refused, or two issued and 300 short."""
    w = build_world(db)
    fund(w, w.union_a, 700)
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="i1", now=T0)
        assert (r.issuance.status, r.issuance.members_issued) == ("refused", 0)
        assert r.issuance.shortfall_fen == 90000
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="i2", mode="partial", now=T0)
        assert (r.issuance.status, r.issuance.members_issued) == ("partial", 2)
        assert (r.issuance.amount_fen, r.issuance.shortfall_fen) == (60000, 30000)
        assert fund_balance(s, w.union_a) == 10000
    assert_books(db)


def test_federation_funds_a_union_within_its_subtree_only(db):
    w = build_world(db)
    fund(w, w.county_a, 900)
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="i1",
                  funding_org_id=w.county_a, now=T0)
        assert r.issuance.status == "completed"
        assert fund_balance(s, w.county_a) == 0
        with pytest.raises(ValidationError):
            issue(s, union_id=w.union_c, program=w.program, idem_key="i2",
                  funding_org_id=w.county_a, now=T0)


def test_same_person_in_two_unions_is_issued_once(db):
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members, cross_union_duplicates
    from tests.world import SECRET, make_id

    w = build_world(db)
    with db.session() as s:
        add_members(s, [(1, MemberRow(name="重复", id_number=make_id(1), phone=None,
                                      union=w.union_uscc["B"], status=MemberStatus.ACTIVE))],
                    key=SECRET)
        assert len(cross_union_duplicates(s)) == 1
    fund(w, w.union_a, 900)
    fund(w, w.union_b, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="a", now=T0)
        r = issue(s, union_id=w.union_b, program=w.program, idem_key="b", now=T0)
        assert (r.issuance.members_issued, r.issuance.members_duplicate) == (2, 1)
    assert_books(db)


def test_redeem_checks_rules_and_records_order_amount(db):
    w = build_world(db, program=program_spec(threshold=400, scope="county"))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    c = codes(db, w.union_a)
    cases = [
        (dict(merchant_id=w.merchants["超市"], order_amount_fen=39999), "order_below_threshold"),
        (dict(merchant_id=w.merchants["饭店"], order_amount_fen=50000), "region_not_allowed"),
        (dict(merchant_id=w.merchants["药店"], order_amount_fen=50000), "merchant_not_active"),
        (dict(merchant_id=w.merchants["超市"], order_amount_fen=50000, channel="takeaway"),
         "channel_not_allowed"),
        (dict(merchant_id=w.merchants["超市"], order_amount_fen=50000,
              now=datetime(2020, 4, 1)), "voucher_not_yet_valid"),
        (dict(merchant_id=w.merchants["超市"], order_amount_fen=50000,
              now=datetime(2020, 7, 11)), "voucher_expired"),
    ]
    for i, (kw, code) in enumerate(cases):
        kw.setdefault("now", T0)
        with pytest.raises(VoucherNotRedeemable) as exc, db.session() as s:
            redeem(s, code=c[0], idem_key=f"bad{i}", **kw)
        assert exc.value.code == code
    r = db.run(redeem, code=c[0].lower(), merchant_id=w.merchants["超市"],
               order_amount_fen=52000, idem_key="ok", now=T0)
    assert (r.redemption.amount_fen, r.redemption.order_amount_fen) == (30000, 52000)
    again = db.run(redeem, code=c[0], merchant_id=w.merchants["超市"],
                   order_amount_fen=52000, idem_key="ok", now=T0)
    assert again.replayed and again.redemption.id == r.redemption.id
    with pytest.raises(VoucherNotRedeemable) as exc:
        db.run(redeem, code=c[0], merchant_id=w.merchants["超市"], order_amount_fen=52000,
               idem_key="other", now=T0)
    assert exc.value.code == "voucher_already_redeemed"
    with pytest.raises(IdempotencyConflict):
        db.run(redeem, code=c[0], merchant_id=w.merchants["超市"], order_amount_fen=99900,
               idem_key="ok", now=T0)
    assert_books(db)


def test_refund_restores_a_valid_voucher_and_returns_value_after_deadline(db):
    w = build_world(db)
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    c = codes(db, w.union_a)
    shop = w.merchants["超市"]
    r1 = db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, idem_key="r1", now=T0)
    rf = db.run(refund, redemption_id=r1.redemption.id, idem_key="f1", now=T0)
    assert rf.refund.outcome == "restored"
    assert db.run(refund, redemption_id=r1.redemption.id, idem_key="f1", now=T0).replayed
    with pytest.raises(RedemptionNotRefundable):
        db.run(refund, redemption_id=r1.redemption.id, idem_key="f2", now=T0)
    # spendable again
    r2 = db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, idem_key="r2", now=T0)
    after = datetime(2020, 7, 20)
    rf2 = db.run(refund, redemption_id=r2.redemption.id, idem_key="f3", now=after)
    assert rf2.refund.outcome == "to_fund"
    with db.session() as s:
        assert fund_balance(s, w.union_a) == 30000
    assert_books(db)


def test_hold_capture_void_and_timeout(db):
    w = build_world(db, program=program_spec(channels=("offline", "online")))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    c = codes(db, w.union_a)
    shop = w.merchants["超市"]
    h = db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, channel="online",
               hold=True, idem_key="h1", now=T0).redemption
    assert h.status == "held"
    assert_books(db)
    with pytest.raises(VoucherNotRedeemable):
        db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, idem_key="x", now=T0)
    assert db.run(capture, redemption_id=h.id, now=T0).status == "posted"
    assert db.run(capture, redemption_id=h.id, now=T0).status == "posted"  # idempotent
    h2 = db.run(redeem, code=c[1], merchant_id=shop, order_amount_fen=30000, channel="online",
                hold=True, idem_key="h2", now=T0).redemption
    assert db.run(void, redemption_id=h2.id, now=T0).status == "voided"
    h3 = db.run(redeem, code=c[1], merchant_id=shop, order_amount_fen=30000, channel="online",
                hold=True, idem_key="h3", now=T0).redemption
    with pytest.raises(InvalidTransition) as exc:
        db.run(capture, redemption_id=h3.id, now=T0 + timedelta(hours=1))
    assert exc.value.code == "hold_expired"
    assert_books(db)


def test_a_timed_out_hold_frees_its_voucher_when_it_is_next_presented(db):
    """An online order held and never captured: once the hold's time is up the member can
    spend the voucher again (the stale hold is voided first), by a cashier or a batch feed."""
    from civicvoucher.vouchers.batch import SpendRequest, redeem_batch
    from civicvoucher.vouchers.models import Redemption

    w = build_world(db, program=program_spec(channels=("offline", "online")))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    c = codes(db, w.union_a)
    shop = w.merchants["超市"]
    held = [db.run(redeem, code=code, merchant_id=shop, order_amount_fen=30000,
                   channel="online", hold=True, idem_key=f"h{i}", now=T0).redemption
            for i, code in enumerate(c[:2])]
    with pytest.raises(VoucherNotRedeemable) as exc:  # still within the hold's time
        db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, idem_key="early",
               now=T0 + timedelta(minutes=5))
    assert exc.value.code == "voucher_already_redeemed"  # held by another order
    later = T0 + timedelta(hours=1)
    again = db.run(redeem, code=c[0], merchant_id=shop, order_amount_fen=30000, idem_key="r0",
                   now=later).redemption
    assert again.status == "posted"
    batch = db.run(redeem_batch, requests=[SpendRequest(code=c[1], merchant_id=shop,
                                                        order_amount_fen=30000, idem_key="r1")],
                   batch_key="b", now=later)
    assert (batch.redeemed, batch.refused) == (1, [])
    with db.session() as s:
        assert [s.get(Redemption, h.id).status for h in held] == ["voided", "voided"]
    assert_books(db)


def test_expiry_returns_breakage_and_extension_moves_deadlines(db):
    w = build_world(db)
    fund(w, w.union_a, 900)
    fund(w, w.union_c, 600)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
        issue(s, union_id=w.union_c, program=w.program, idem_key="ic", now=T0)
    ca = codes(db, w.union_a)
    db.run(redeem, code=ca[0], merchant_id=w.merchants["超市"], order_amount_fen=40000,
           idem_key="r", now=T0)
    ext = db.run(extend, program=w.program, new_expires_at=datetime(2020, 8, 1), actor="省总工会",
                 reason="关于延迟消费时间节点的通知", union_ids=[w.union_c], idem_key="e1",
                 now=datetime(2020, 7, 5))
    assert ext.extension.vouchers_extended == 2
    first = db.run(expire, as_of=datetime(2020, 7, 11), idem_key="x1", now=datetime(2020, 7, 11))
    assert (first.run.vouchers_expired, first.run.amount_fen) == (2, 60000)
    again = db.run(expire, as_of=datetime(2020, 7, 11), idem_key="x2", now=datetime(2020, 7, 11))
    assert again.run.vouchers_expired == 0
    with db.session() as s:
        assert fund_balance(s, w.union_a) == 60000
        assert fund_balance(s, w.union_c) == 0
    later = db.run(expire, as_of=datetime(2020, 8, 1), idem_key="x3", now=datetime(2020, 8, 2))
    assert later.run.vouchers_expired == 2
    assert_books(db)


def test_settlement_groups_redemptions_per_merchant_once(db):
    w = build_world(db, program=program_spec(denominations=(50, 50, 50)))
    fund(w, w.union_a, 450)
    fund(w, w.union_c, 300)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
        issue(s, union_id=w.union_c, program=w.program, idem_key="ic", now=T0)
    ca, cc = codes(db, w.union_a), codes(db, w.union_c)
    for i, code in enumerate(ca[:4]):
        db.run(redeem, code=code, merchant_id=w.merchants["超市"], order_amount_fen=6000,
               idem_key=f"a{i}", now=T0 + timedelta(minutes=i))
    db.run(redeem, code=cc[0], merchant_id=w.merchants["饭店"], order_amount_fen=8000,
           idem_key="c0", now=T0)
    late = db.run(redeem, code=ca[5], merchant_id=w.merchants["超市"], order_amount_fen=6000,
                  idem_key="late", now=T0 + timedelta(days=2))
    run = db.run(settle, cutoff=T0 + timedelta(days=1), idem_key="s1", now=T0 + timedelta(days=1))
    assert (run.run.batches, run.run.redemptions, run.run.amount_fen) == (2, 5, 25000)
    assert db.run(settle, cutoff=T0 + timedelta(days=1), idem_key="s1").replayed
    with db.session() as s:
        from civicvoucher.settlement.models import SettlementBatch

        batches = s.execute(select(SettlementBatch).order_by(SettlementBatch.id)).scalars().all()
        assert [len(batch_redemptions(s, b.id)) for b in batches] == [4, 1]
    assert late.redemption.settlement_batch_id is None
    again = db.run(settle, cutoff=T0 + timedelta(days=1), idem_key="s2")
    assert again.run.redemptions == 0
    assert_books(db)


def _receivable(db, merchant_id):
    from civicvoucher.ledger.service import balance
    from civicvoucher.vouchers.redemption import receivable_account

    with db.session() as s:
        return balance(s, receivable_account(s, merchant_id))


def test_refund_after_settlement_is_kept_from_the_merchants_next_payouts(db):
    """The merchant was paid for four 50-yuan vouchers; three are refunded afterwards. It
    owes 150 yuan back: its next payout (one 50-yuan redemption) keeps all 50, the one after
    that the remaining 100 of its 150; what is left is paid out."""
    from civicvoucher.settlement.models import SettlementBatch

    w = build_world(db, program=program_spec(denominations=(50, 50, 50)))
    fund(w, w.union_a, 450)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
    ca = codes(db, w.union_a)
    shop = w.merchants["超市"]
    reds = [db.run(redeem, code=code, merchant_id=shop, order_amount_fen=6000,
                   idem_key=f"a{i}", now=T0).redemption for i, code in enumerate(ca[:4])]
    first = db.run(settle, cutoff=T0 + timedelta(hours=1), idem_key="s1",
                   now=T0 + timedelta(hours=1))
    assert (first.run.amount_fen, first.run.recovered_fen) == (20000, 0)
    for r in reds[:3]:
        done = db.run(refund, redemption_id=r.id, idem_key=f"f{r.id}", now=T0 + timedelta(hours=2))
        assert done.refund.outcome == "restored"
    assert db.run(refund, redemption_id=reds[0].id, idem_key=f"f{reds[0].id}").replayed
    with pytest.raises(RedemptionNotRefundable):
        db.run(refund, redemption_id=reds[0].id, idem_key="again", now=T0 + timedelta(hours=2))
    assert _receivable(db, shop) == -15000
    assert_books(db)

    # A restored voucher is spent again: the merchant's next payout is 50 yuan, all kept.
    db.run(redeem, code=ca[0], merchant_id=shop, order_amount_fen=6000, idem_key="b0",
           now=T0 + timedelta(hours=3))
    second = db.run(settle, cutoff=T0 + timedelta(hours=4), idem_key="s2",
                    now=T0 + timedelta(hours=4))
    assert (second.run.amount_fen, second.run.recovered_fen) == (5000, 5000)
    assert _receivable(db, shop) == -10000
    assert_books(db)

    for i, code in enumerate(ca[1:3] + ca[4:7], 1):
        db.run(redeem, code=code, merchant_id=shop, order_amount_fen=6000, idem_key=f"b{i}",
               now=T0 + timedelta(hours=5))
    third = db.run(settle, cutoff=T0 + timedelta(hours=6), idem_key="s3",
                   now=T0 + timedelta(hours=6))
    assert (third.run.amount_fen, third.run.recovered_fen) == (25000, 10000)
    assert _receivable(db, shop) == 0
    with db.session() as s:
        batch = s.execute(select(SettlementBatch).where(SettlementBatch.run_id == third.run.id)
                          ).scalar_one()
        assert (batch.amount_fen, batch.recovered_fen) == (25000, 10000)
    assert_books(db)


def test_refund_after_settlement_and_deadline_returns_to_the_fund(db):
    w = build_world(db, program=program_spec(denominations=(50, 50, 50)))
    fund(w, w.union_a, 450)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
        before = fund_balance(s, w.union_a)
    red = db.run(redeem, code=codes(db, w.union_a)[0], merchant_id=w.merchants["超市"],
                 order_amount_fen=6000, idem_key="a", now=T0).redemption
    db.run(settle, cutoff=T0 + timedelta(hours=1), idem_key="s1", now=T0 + timedelta(hours=1))
    late = datetime(2031, 1, 1)
    done = db.run(refund, redemption_id=red.id, idem_key="f", now=late)
    assert done.refund.outcome == "to_fund"
    with db.session() as s:
        assert fund_balance(s, w.union_a) == before + 5000
    assert _receivable(db, w.merchants["超市"]) == -5000
    assert_books(db)


def test_deposit_is_idempotent_and_transfers_cannot_overdraw(db):
    w = build_world(db)
    with db.session() as s:
        d = deposit(s, org_id=w.city, amount_fen=100000, source="fiscal", idem_key="d1")
        assert not d.replayed
        assert deposit(s, org_id=w.city, amount_fen=100000, source="fiscal", idem_key="d1").replayed
        with pytest.raises(IdempotencyConflict):
            deposit(s, org_id=w.city, amount_fen=5, source="fiscal", idem_key="d1")
        deposit(s, org_id=w.county_a, amount_fen=60000, source="transfer", from_org_id=w.city,
                idem_key="t1")
    from civicvoucher.errors import InsufficientFunds

    with pytest.raises(InsufficientFunds), db.session() as s:
        deposit(s, org_id=w.county_b, amount_fen=60000, source="transfer", from_org_id=w.city,
                idem_key="t2")
    with db.session() as s:
        assert fund_balance(s, w.city) == 40000
    assert_books(db)


def test_a_federation_cannot_be_created_outside_its_parents_region(db):
    """A city admin must not mint a county of another city (it would widen its own scope)."""
    from civicvoucher.errors import Conflict
    from civicvoucher.orgs.service import create_org

    w = build_world(db)
    for code, level in (("140300", "county"), ("140302", "county"), ("140100", "county"),
                        ("14010", "county")):
        with pytest.raises(ValidationError) as exc, db.session() as s:
            create_org(s, level=level, name="x", division_code=code, parent_id=w.city)
        assert exc.value.field == "division_code"
    with pytest.raises(Conflict), db.session() as s:
        create_org(s, level="county", name="again", division_code="140105", parent_id=w.city)
    with db.session() as s:
        assert create_org(s, level="county", name="杏花岭区总工会", division_code="140107",
                          parent_id=w.city).region_code == "140107"


def test_verify_names_a_voucher_whose_redemption_was_edited_away(db):
    """Sums can hide a swap; the per-voucher check cannot: mark a spent voucher issued again
    and re-mark an unspent one redeemed, keeping every total equal."""
    from sqlalchemy import update

    w = build_world(db)
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    c = codes(db, w.union_a)
    db.run(redeem, code=c[0], merchant_id=w.merchants["超市"], order_amount_fen=30000,
           idem_key="r", now=T0)
    with db.session() as s:
        s.execute(update(Voucher).where(Voucher.code == c[0]).values(status="issued"))
        s.execute(update(Voucher).where(Voucher.code == c[1]).values(status="redeemed"))
    with db.snapshot() as s:
        problems = verify(s)
    assert {p.check for p in problems} == {"voucher"} and len(problems) == 2
