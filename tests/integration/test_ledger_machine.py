"""A Hypothesis state machine over fund/issue/redeem/refund/hold/capture/void/expire/extend/
settle: after every step the ledger invariants and the voucher reconciliation hold."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from civicvoucher.errors import CivicVoucherError
from civicvoucher.programs.service import create_program
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.reconcile import verify
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import capture, redeem, refund, void
from tests.conftest import wipe
from tests.world import build_world, fund, program_spec


class LedgerMachine(RuleBasedStateMachine):
    db = None  # set by the test

    @initialize()
    def setup(self):
        wipe(self.db)  # every example starts from empty tables
        self.w = build_world(self.db, members=(3, 2, 2), program=program_spec(
            denominations=(100, 50, 50), channels=("offline", "online")))
        with self.db.session() as s:
            create_program(s, spec=parse_program_spec(program_spec(
                "short", denominations=(30,), expires_at="2020-05-20T00:00:00")))
        self.now = datetime(2020, 5, 1, 9)
        self.n = 0
        self.unions = [self.w.union_a, self.w.union_b, self.w.union_c]
        for u in self.unions:  # start with something to spend, so most runs reach redemption
            fund(self.w, u, 700, key=self.key())
        for program in ("p2020", "short"):
            self.attempt(issue, union_id=self.w.union_a, program=program, idem_key=self.key(),
                         now=self.now)

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def attempt(self, fn, **kw):
        try:
            return self.db.run(fn, **kw)
        except CivicVoucherError:
            return None  # refused by a rule: allowed, and must leave the books sound

    def pick(self, model, data, **where):
        with self.db.session() as s:
            q = select(model.id)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            ids = s.execute(q.order_by(model.id)).scalars().all()
        return data.draw(st.sampled_from(ids)) if ids else None

    @rule(u=st.integers(0, 2), yuan=st.integers(1, 3000))
    def deposit(self, u, yuan):
        fund(self.w, self.unions[u], yuan, key=self.key())

    @rule(u=st.integers(0, 2), program=st.sampled_from(["p2020", "short"]), partial=st.booleans(),
          form=st.sampled_from(["digital", "paper"]))
    def do_issue(self, u, program, partial, form):
        self.attempt(issue, union_id=self.unions[u], program=program, form=form,
                     mode="partial" if partial else "all_or_nothing", idem_key=self.key(),
                     now=self.now)

    @rule(data=st.data(), extra=st.integers(0, 20000), hold=st.booleans(),
          shop=st.sampled_from(["超市", "饭店"]))
    def do_redeem(self, data, extra, hold, shop):
        with self.db.session() as s:
            codes = s.execute(select(Voucher.code).order_by(Voucher.id)).scalars().all()
        if not codes:
            return
        code = data.draw(st.sampled_from(codes))
        self.attempt(redeem, code=code, merchant_id=self.w.merchants[shop],
                     order_amount_fen=10000 + extra, channel="online" if hold else "offline",
                     hold=hold, idem_key=self.key(), now=self.now)

    @rule(data=st.data())
    def do_capture(self, data):
        rid = self.pick(Redemption, data, status="held")
        if rid:
            self.attempt(capture, redemption_id=rid, now=self.now)

    @rule(data=st.data())
    def do_void(self, data):
        rid = self.pick(Redemption, data, status="held")
        if rid:
            self.attempt(void, redemption_id=rid, now=self.now)

    @rule(data=st.data())
    def do_refund(self, data):
        rid = self.pick(Redemption, data, status="posted")
        if rid:
            self.attempt(refund, redemption_id=rid, idem_key=self.key(), now=self.now)

    @rule(hours=st.integers(1, 24 * 60))
    def advance(self, hours):
        self.now += timedelta(hours=hours)

    @rule()
    def do_expire(self):
        self.attempt(expire, as_of=self.now, idem_key=self.key(), now=self.now)

    @rule(days=st.integers(1, 30), u=st.none() | st.integers(0, 2),
          program=st.sampled_from(["p2020", "short"]))
    def do_extend(self, days, u, program):
        self.attempt(extend, program=program, new_expires_at=self.now + timedelta(days=days),
                     actor="test", reason="notice", idem_key=self.key(),
                     union_ids=None if u is None else [self.unions[u]], now=self.now)

    @rule()
    def do_settle(self):
        self.attempt(settle, cutoff=self.now, idem_key=self.key(), now=self.now)

    @invariant()
    def books_are_sound(self):
        if not hasattr(self, "w"):
            return
        with self.db.session() as s:
            assert verify(s) == []


@pytest.mark.slow
def test_ledger_state_machine(db):
    LedgerMachine.db = db
    pg = db.dialect == "postgresql"
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=15 if pg else 25, stateful_step_count=25, deadline=None,
        suppress_health_check=list(HealthCheck)))
