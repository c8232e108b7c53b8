"""Money-path faults an outside test found: half commits, lost extensions, coded ledger errors,
keyed runs whose default moved, and the key that hashes ID numbers following the folder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from civicvoucher.errors import IdempotencyConflict, InvalidTransition
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, TransferCode, TransferFlags
from civicvoucher.reconcile import verify
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers import redemption
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Redemption, Voucher
from tests.world import T0, build_world, fund, program_spec


def _world(db, **kw):
    w = build_world(db, program=program_spec(channels=("offline", "online"), **kw))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
        codes = list(s.execute(select(Voucher.code).where(Voucher.union_id == w.union_a)
                               .order_by(Voucher.id)).scalars())
    return w, codes


def _redeem(db, w, code, key, *, now=T0, **kw):
    return db.run(redemption.redeem, code=code, merchant_id=w.merchants["超市"],
                  order_amount_fen=30000, idem_key=key, now=now, **kw)


# --- item 2: a hold release that fails part-way leaves nothing behind ----------------------

def test_a_stale_hold_whose_void_fails_is_left_whole_not_half_released(db, monkeypatch):
    """A feed presents two vouchers whose online holds timed out; voiding the second hold
    fails at the ledger. The first is released and spent; the second stays held, whole:
    its redemption still held, its voucher still held, its pending transfer still pending."""
    from civicvoucher.vouchers.batch import SpendRequest, redeem_batch

    w, codes = _world(db)
    for i in (0, 1):
        _redeem(db, w, codes[i], f"h{i}", channel="online", hold=True)
    real = redemption.ledger.post_transfer

    def void_fails(session, **kw):
        if kw.get("pending_id") == "redeem:h1":
            raise InvalidTransition("the pending transfer moved meanwhile")
        return real(session, **kw)

    monkeypatch.setattr(redemption.ledger, "post_transfer", void_fails)
    result = db.run(redeem_batch, batch_key="b", now=T0 + timedelta(hours=1), requests=[
        SpendRequest(code=c, merchant_id=w.merchants["超市"], order_amount_fen=30000,
                     idem_key=f"b{i}") for i, c in enumerate(codes[:2])])
    assert (result.redeemed, result.refused) == (1, [(1, "voucher_already_redeemed")])
    with db.session() as s:
        status = dict(s.execute(select(Voucher.code, Voucher.status)).all())
        assert (status[codes[0]], status[codes[1]]) == ("redeemed", "held")
        held = s.execute(select(Redemption.status).where(Redemption.idem_key == "h1")).scalar()
        assert held == "held"
        assert verify(s) == []


def test_capturing_a_hold_whose_voucher_is_not_held_fails_and_posts_nothing(db):
    w, codes = _world(db)
    rid = _redeem(db, w, codes[0], "h", channel="online", hold=True).redemption.id
    with db.session() as s:  # a voucher row out of step with its redemption (a bug elsewhere)
        s.execute(update(Voucher).where(Voucher.code == codes[0]).values(status="issued"))
    with pytest.raises(InvalidTransition) as exc:
        db.run(redemption.capture, redemption_id=rid, now=T0)
    assert exc.value.code == "voucher_not_held"
    with db.session() as s:
        assert s.execute(select(Redemption.status)).scalar() == "held"
        assert ledger.find_transfer(s, f"capture:{rid}", {}) is None


# --- item 3: a refund after an extension keeps the extension --------------------------------

def test_a_voucher_refunded_after_an_extension_gets_the_new_deadline(db):
    w, codes = _world(db)
    red = _redeem(db, w, codes[0], "r").redemption
    new = T0 + timedelta(days=120)  # the program ended 2020-07-11; now 2020-08-29
    db.run(extend, program=w.program, new_expires_at=new, actor="省总工会", reason="延期",
           idem_key="x", now=T0)
    rf = db.run(redemption.refund, redemption_id=red.id, idem_key="f", now=T0).refund
    assert rf.outcome == "restored"
    with db.session() as s:
        deadlines = dict(s.execute(select(Voucher.code, Voucher.expires_at)
                                   .where(Voucher.union_id == w.union_a)).all())
    assert deadlines[codes[0]] == deadlines[codes[1]] == new
    after_old_deadline = T0 + timedelta(days=90)
    assert _redeem(db, w, codes[0], "again", now=after_old_deadline).redemption.status == "posted"
    with db.session() as s:
        assert verify(s) == []


def test_a_refund_after_a_scoped_extension_that_does_not_cover_the_voucher_keeps_its_deadline(db):
    w, codes = _world(db)
    red = _redeem(db, w, codes[0], "r").redemption
    db.run(extend, program=w.program, new_expires_at=T0 + timedelta(days=120), actor="省总工会",
           reason="延期", union_ids=[w.union_b], idem_key="x", now=T0)
    db.run(redemption.refund, redemption_id=red.id, idem_key="f", now=T0)
    with db.session() as s:
        deadlines = dict(s.execute(select(Voucher.code, Voucher.expires_at)
                                   .where(Voucher.union_id == w.union_a)).all())
    assert deadlines[codes[0]] == deadlines[codes[1]]  # the sibling, never spent, not extended
    assert deadlines[codes[0]] < T0 + timedelta(days=100)


# --- item 4: the ledger names what went wrong ------------------------------------------------

def _pending(db):
    with db.session() as s:
        a = ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "x")
        b = ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "y")
        ledger.post_transfer(s, id="p", debit_account_id=a, credit_account_id=b, amount=100,
                             code=TransferCode.HOLD, flags=TransferFlags.PENDING)
    return a, b


@pytest.mark.parametrize("first,second,code", [
    (TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING, "pending_transfer_already_posted"),
    (TransferFlags.VOID_PENDING, TransferFlags.POST_PENDING, "pending_transfer_already_voided"),
    (TransferFlags.POST_PENDING, TransferFlags.POST_PENDING, "pending_transfer_already_posted"),
])
def test_a_pending_transfer_resolved_twice_is_a_coded_error(db, first, second, code):
    a, b = _pending(db)
    with db.session() as s:
        ledger.post_transfer(s, id="one", debit_account_id=a, credit_account_id=b, amount=100,
                             code=TransferCode.CAPTURE, flags=first, pending_id="p")
    with pytest.raises(InvalidTransition) as exc:
        db.run(ledger.post_transfer, id="two", debit_account_id=a, credit_account_id=b,
               amount=100, code=TransferCode.CAPTURE, flags=second, pending_id="p")
    assert exc.value.code == code
    with db.session() as s:
        assert verify(s) == []


def test_a_transfer_id_reused_with_another_body_names_the_field(db):
    a, b = _pending(db)
    for field, kw, code in [
        ("amount", dict(amount=101), "exists_with_different_amount"),
        ("credit", dict(credit_account_id=a, debit_account_id=b), "exists_with_different_debit_account_id"),
        ("code", dict(code=TransferCode.DEPOSIT), "exists_with_different_code"),
        ("flags", dict(flags=TransferFlags.NONE), "exists_with_different_flags"),
    ]:
        args = dict(id="p", debit_account_id=a, credit_account_id=b, amount=100,
                    code=TransferCode.HOLD, flags=TransferFlags.PENDING) | kw
        with pytest.raises(IdempotencyConflict) as exc:
            db.run(ledger.post_transfer, **args)
        assert exc.value.code == code, field


# --- item 7: a keyed run retried without its defaulted time returns the first run -----------

def test_settle_and_expire_retried_later_without_a_time_replay_the_first_run(db):
    w, codes = _world(db)
    _redeem(db, w, codes[0], "r")
    first = db.run(settle, cutoff=None, idem_key="S", now=T0 + timedelta(hours=1)).run
    again = db.run(settle, cutoff=None, idem_key="S", now=T0 + timedelta(hours=5))
    assert again.replayed and again.run.id == first.id and again.run.cutoff == first.cutoff
    with pytest.raises(IdempotencyConflict):  # an explicit, different cutoff is another request
        db.run(settle, cutoff=T0 + timedelta(hours=3), idem_key="S", now=T0 + timedelta(hours=5))
    late = T0 + timedelta(days=100)
    x = db.run(expire, as_of=None, idem_key="E", now=late).run
    y = db.run(expire, as_of=None, idem_key="E", now=late + timedelta(minutes=3))
    assert y.replayed and y.run.id == x.id and x.as_of == late and x.vouchers_expired == 2


# --- found by the outside test of the merged fixes ------------------------------------------

@pytest.mark.pg
def test_an_extension_racing_a_refund_still_reaches_the_restored_voucher(pg_db, monkeypatch):
    """The refund has read the extensions and not yet committed when an extension comes: the
    extension waits for it (program lock) and then moves the restored voucher too."""
    import threading

    db = pg_db
    w, codes = _world(db)
    red = _redeem(db, w, codes[0], "r").redemption
    read, go = threading.Event(), threading.Event()
    real = redemption.current_deadline

    def paused(session, v, **kw):
        got = real(session, v, **kw)
        read.set()
        go.wait(10)
        return got

    monkeypatch.setattr(redemption, "current_deadline", paused)
    new = T0 + timedelta(days=120)
    refund = threading.Thread(target=lambda: db.run(
        redemption.refund, redemption_id=red.id, idem_key="f", now=T0))
    refund.start()
    assert read.wait(10)
    ext = threading.Thread(target=lambda: db.run(
        extend, program=w.program, new_expires_at=new, actor="省总工会", reason="延期",
        idem_key="x", now=T0))
    ext.start()
    ext.join(2)  # on the old code it finished here, before the refund restored the voucher
    go.set()
    refund.join(20)
    ext.join(20)
    with db.session() as s:
        deadlines = dict(s.execute(select(Voucher.code, Voucher.expires_at)
                                   .where(Voucher.union_id == w.union_a)).all())
        assert deadlines[codes[0]] == deadlines[codes[1]] == new
        assert verify(s) == []


@pytest.mark.parametrize("expiry_ran", [True, False])
def test_an_extension_after_the_deadline_revives_nothing_and_a_late_refund_goes_to_the_fund(
        db, expiry_ran):
    w, codes = _world(db)
    red = _redeem(db, w, codes[0], "r").redemption
    after = T0 + timedelta(days=80)  # the program ended 2020-07-11 (Beijing): now 2020-07-20
    if expiry_ran:
        db.run(expire, as_of=after, idem_key="e", now=after)
    x = db.run(extend, program=w.program, new_expires_at=after + timedelta(days=30),
               actor="省总工会", reason="补发通知", idem_key="x", now=after).extension
    assert x.vouchers_extended == 0
    rf = db.run(redemption.refund, redemption_id=red.id, idem_key="f", now=after).refund
    assert rf.outcome == "to_fund"
    with db.session() as s:
        assert set(s.execute(select(Voucher.expires_at)
                             .where(Voucher.union_id == w.union_a)).scalars()) == {
            _deadline(s, w)}
        assert verify(s) == []


def _deadline(s, w):
    from civicvoucher.programs.models import Product

    return s.execute(select(Product.expires_at)).scalars().first()


def test_the_expiry_run_goes_on_when_one_hold_is_resolved_by_someone_else(db, monkeypatch):
    w, codes = _world(db)
    for i in (0, 1):
        _redeem(db, w, codes[i], f"h{i}", channel="online", hold=True)
    real = redemption._resolve_hold

    def cashier_got_there_first(session, red, **kw):
        if red.idem_key == "h0":
            raise InvalidTransition("no longer held", code="hold_not_active")
        return real(session, red, **kw)

    monkeypatch.setattr(redemption, "_resolve_hold", cashier_got_there_first)
    later = T0 + timedelta(hours=1)
    run = db.run(expire, as_of=later, idem_key="e", now=later).run
    assert run.holds_voided == 1
    with db.session() as s:
        assert verify(s) == []


def test_an_account_made_under_a_savepoint_is_remembered_only_once_the_transaction_commits(db):
    """A keyed operation's savepoint is released, then its transaction rolls back (a retry, a
    later error): the account it made never existed, and no later transaction may be given
    its id (seen as a rare not_found in concurrent issuance)."""
    from civicvoucher.db import once

    with pytest.raises(RuntimeError), db.session() as s:
        once(s, "t", lambda: None,
             lambda: ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "ghost"))
        raise RuntimeError("the transaction fails after the savepoint was released")
    with db.session() as s:
        acct = ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "ghost")
        assert ledger.lock_account(s, acct).key.endswith("ghost")
    with db.session() as s:  # rolled back inside a savepoint: forgotten as well
        def work():
            ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "ghost2")
            raise InvalidTransition("lost the race")

        assert once(s, "t", lambda: "first" if s.info.get("tried") else None,
                    lambda: (s.info.update(tried=True), work())) == ("first", True)
    with db.session() as s:
        acct = ledger.account_id(s, AccountCode.FUNDING_EXTERNAL, "ghost2")
        assert ledger.lock_account(s, acct).key.endswith("ghost2")
