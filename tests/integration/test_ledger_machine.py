"""A Hypothesis state machine over fund/issue/redeem/refund/hold/capture/void/expire/extend/
settle, checked against a shadow model.

The model is the test's own account of what must happen, computed from its own state and
never from the engine's: every voucher's state and deadline, every redemption's state, and
the balance of every account (union funds, program reserves, vouchers outstanding, merchant
payables and receivables, settlement clearing, the outside world). Each rule predicts
success (and its effect) or the precise error code, calls the engine, and compares the
outcome; after every step the whole database is compared with the model and the ledger
invariants (``verify``) must hold. Only the configuration is read from the database at the
start: the members, merchants and products the world was built with.

Each rule counts its successes; a run in which no redemption succeeded fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode
from civicvoucher.ledger.service import forget_accounts
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.models import Base
from civicvoucher.programs.models import Product, Program
from civicvoucher.programs.service import create_program
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.reconcile import verify
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Redemption, Refund, Voucher
from civicvoucher.vouchers.redemption import capture, redeem, refund, void
from tests.world import build_world, fund, program_spec

HOLD = timedelta(minutes=15)  # vouchers.redemption.DEFAULT_HOLD, as the rules promise it
EXT, FUND, RESERVE, OUT, PAY, RECV, CLEAR = (
    AccountCode.FUNDING_EXTERNAL, AccountCode.UNION_FUND, AccountCode.PROGRAM_RESERVE,
    AccountCode.VOUCHERS_OUTSTANDING, AccountCode.MERCHANT_PAYABLE,
    AccountCode.MERCHANT_RECEIVABLE, AccountCode.SETTLEMENT_CLEARING)


def empty(db) -> None:
    """Every table emptied (ids go on: the model takes them from the engine). DELETE, not
    tests.conftest.wipe's TRUNCATE: on PostgreSQL that costs most of a second per example."""
    forget_accounts(db.engine)
    with db.engine.begin() as c:
        for t in reversed(Base.metadata.sorted_tables):
            c.execute(t.delete())


@dataclass
class MVoucher:
    code: str
    union: int
    program: int
    amount: int
    form: str
    expires_at: datetime
    status: str = "issued"
    # deadlines of extensions that passed it by while it was spent (see do_refund)
    missed: list = field(default_factory=list)  # (made at, new deadline) while spent


@dataclass
class MRedemption:
    voucher: int
    merchant: int
    amount: int
    status: str  # held | posted | voided | refunded
    hold_expires_at: datetime | None
    settled: bool = False


@dataclass
class MProduct:
    program: int
    key: str
    denominations: list
    threshold: int
    categories: frozenset
    channels: frozenset
    valid_from: datetime
    expires_at: datetime


class Books:
    """Balances (credits - debits posted) and pending sides, per account, in the model."""

    def __init__(self):
        self.posted: Counter = Counter()
        self.dpend: Counter = Counter()  # debits pending
        self.cpend: Counter = Counter()  # credits pending

    def move(self, debit, credit, amount):
        self.posted[debit] -= amount
        self.posted[credit] += amount

    def hold(self, debit, credit, amount):
        self.dpend[debit] += amount
        self.cpend[credit] += amount

    def release(self, debit, credit, amount, *, post: bool):
        self.dpend[debit] -= amount
        self.cpend[credit] -= amount
        if post:
            self.move(debit, credit, amount)

    def view(self) -> dict:
        keys = set(self.posted) | set(self.dpend) | set(self.cpend)
        return {k: (self.posted[k], self.dpend[k], self.cpend[k]) for k in keys
                if (self.posted[k], self.dpend[k], self.cpend[k]) != (0, 0, 0)}


def account_of(a) -> tuple:
    """The model's name for an engine account: clearing accounts (one per run) are one."""
    code = AccountCode(a.code)
    if code == CLEAR:
        return (CLEAR,)
    if code == EXT:
        return (EXT,)
    if code in (PAY, RECV):
        return (code, a.merchant_id)
    if code == FUND:
        return (code, a.org_id)
    return (code, a.org_id, a.program_id)


class LedgerMachine(RuleBasedStateMachine):
    db = None  # set by the test
    successes: Counter = Counter()  # rule -> times the engine did it (summed over examples)
    refusals: Counter = Counter()  # (rule, code) -> times refused, as predicted

    @initialize()
    def setup(self):
        empty(self.db)  # every example starts from empty tables
        self.w = build_world(self.db, members=(3, 2, 2), program=program_spec(
            denominations=(100, 50, 50), channels=("offline", "online")))
        with self.db.session() as s:
            create_program(s, spec=parse_program_spec(program_spec(
                "short", denominations=(30,), expires_at="2020-05-20T00:00:00")))
        self.now = datetime(2020, 5, 1, 9)
        self.n = 0
        self.unions = [self.w.union_a, self.w.union_b, self.w.union_c]
        self._read_configuration()
        self.vouchers: dict[int, MVoucher] = {}
        self.product_of: dict[int, int] = {}  # voucher -> product
        self.redemptions: dict[int, MRedemption] = {}
        self.entitled: set[tuple[int, int]] = set()  # (product id, member id)
        self.wide_deadline: dict[int, datetime] = {}  # program -> latest program-wide deadline
        self.books = Books()
        for u in self.unions:  # start with something to spend, so most runs reach redemption
            self.deposit(u=self.unions.index(u), yuan=700)
        for program in ("p2020", "short"):
            self._issue(self.w.union_a, program, partial=False, form="digital")

    def _read_configuration(self):
        """What the world was built with; the model's state starts from here."""
        with self.db.session() as s:
            self.members = {u: list(s.execute(select(Member.id).where(
                Member.union_id == u, Member.status == "active").order_by(Member.id)).scalars())
                for u in self.unions}
            self.program_id = dict(s.execute(select(Program.key, Program.id)).all())
            self.products = {p.id: MProduct(
                program=p.program_id, key=p.key, denominations=list(p.denominations),
                threshold=p.threshold_fen, categories=frozenset(p.categories),
                channels=frozenset(p.channels), valid_from=p.valid_from, expires_at=p.expires_at)
                for p in s.execute(select(Product).where(Product.optional.is_(False))).scalars()}
            self.merchants = {m.id: (m.status, m.category, m.county_code, m.channel_set)
                              for m in s.execute(select(Merchant)).scalars()}
        assert all(p.threshold == 0 for p in self.products.values())
        assert all(c.startswith("14") for _, _, c, _ in self.merchants.values())  # province

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    # --- calling the engine and comparing ------------------------------------------------

    def call(self, rule_name: str, expect: str | None, fn, **kw):
        """Run ``fn``; ``expect`` is None (must succeed) or the error code it must raise."""
        try:
            result = self.db.run(fn, **kw)
        except CivicVoucherError as e:
            assert expect is not None, f"{rule_name}: the model expected success, got {e.code}: {e}"
            assert e.code == expect, f"{rule_name}: expected {expect}, got {e.code}: {e}"
            self.refusals[(rule_name, expect)] += 1
            return None
        assert expect is None, f"{rule_name}: expected {expect}, the engine succeeded"
        return result

    def ok(self, rule_name: str) -> None:
        type(self).successes[rule_name] += 1

    # --- rules ----------------------------------------------------------------------------

    @rule(u=st.integers(0, 2), yuan=st.integers(1, 3000))
    def deposit(self, u, yuan):
        fund(self.w, self.unions[u], yuan, key=self.key())
        self.books.move((EXT,), (FUND, self.unions[u]), yuan * 100)
        self.ok("deposit")

    @rule(u=st.integers(0, 2), program=st.sampled_from(["p2020", "short"]), partial=st.booleans(),
          form=st.sampled_from(["digital", "paper"]))
    def do_issue(self, u, program, partial, form):
        self._issue(self.unions[u], program, partial=partial, form=form)

    def _issue(self, union, program, *, partial, form):
        pid = self.program_id[program]
        products = [(i, p) for i, p in sorted(self.products.items()) if p.program == pid]
        deadline = {i: max(p.expires_at, self.wide_deadline.get(pid, p.expires_at))
                    for i, p in products}
        if any(d <= self.now for d in deadline.values()):
            self.call("issue", "program_closed", issue, union_id=union, program=program,
                      form=form, mode="partial" if partial else "all_or_nothing",
                      idem_key=self.key(), now=self.now)
            return
        plan = []  # (member, [products]) in registry order
        for m in self.members[union]:
            todo = [(i, p) for i, p in products if (i, m) not in self.entitled]
            if todo:
                plan.append((m, todo))
        cost = [sum(sum(p.denominations) for _, p in todo) for _, todo in plan]
        available = self.books.posted[(FUND, union)]
        if not plan:
            status, n = "nothing_to_issue", 0
        elif available >= sum(cost):
            status, n = "completed", len(plan)
        elif not partial:
            status, n = "refused", 0
        else:
            n, spent = 0, 0
            while n < len(plan) and spent + cost[n] <= available:
                spent += cost[n]
                n += 1
            status = "partial" if n else "refused"
        before = max(self.vouchers, default=0)
        res = self.call("issue", None, issue, union_id=union, program=program, form=form,
                        mode="partial" if partial else "all_or_nothing", idem_key=self.key(),
                        now=self.now)
        amount = sum(cost[:n])
        assert (res.issuance.status, res.issuance.members_issued, res.issuance.amount_fen) == \
            (status, n, amount)
        want = sorted((m, i, d, form, deadline[i]) for m, todo in plan[:n] for i, p in todo
                      for d in p.denominations)
        with self.db.session() as s:
            new = s.execute(select(Voucher).where(Voucher.id > before)
                            .order_by(Voucher.id)).scalars().all()
            got = sorted((v.member_id, v.product_id, v.amount_fen, v.form, v.expires_at)
                         for v in new)
            assert got == want
            for v in new:
                self.vouchers[v.id] = MVoucher(code=v.code, union=union, program=pid,
                                               amount=v.amount_fen, form=form,
                                               expires_at=deadline[v.product_id])
                self.product_of[v.id] = v.product_id
        for m, todo in plan[:n]:
            self.entitled |= {(i, m) for i, _ in todo}
        if amount:
            self.books.move((FUND, union), (RESERVE, union, pid), amount)
            self.books.move((RESERVE, union, pid), (OUT, union, pid), amount)
        self.ok(f"issue {status}")

    def _stale_hold(self, vid: int) -> int | None:
        for rid, r in self.redemptions.items():
            if r.voucher == vid and r.status == "held" and r.hold_expires_at <= self.now:
                return rid
        return None

    def _void_hold(self, rid: int) -> None:
        r = self.redemptions[rid]
        v = self.vouchers[r.voucher]
        r.status, v.status = "voided", "issued"
        self.books.release((OUT, v.union, v.program), (PAY, r.merchant), r.amount, post=False)

    @rule(data=st.data(), order=st.integers(1, 30000), hold=st.booleans(),
          merchant=st.sampled_from(["超市", "饭店", "药店"]))
    def do_redeem(self, data, order, hold, merchant):
        """Any voucher, any merchant, any order: mostly refused, for a reason the model knows."""
        if self.vouchers:
            self._redeem(data.draw(st.sampled_from(sorted(self.vouchers))),
                         self.w.merchants[merchant], order, hold)

    @rule(data=st.data(), extra=st.integers(0, 20000), hold=st.booleans())
    def spend(self, data, extra, hold):
        """A voucher the model thinks unspent, at the supermarket (offline and online), for an
        order that covers it: succeeds unless the model's own state says otherwise."""
        pool = sorted(i for i, v in self.vouchers.items() if v.status in ("issued", "held"))
        if pool:
            vid = data.draw(st.sampled_from(pool))
            self._redeem(vid, self.w.merchants["超市"], self.vouchers[vid].amount + extra, hold)

    def _redeem(self, vid: int, mid: int, order: int, hold: bool) -> None:
        v, p = self.vouchers[vid], self.products[self.product_of[vid]]
        m_status, m_category, _, m_channels = self.merchants[mid]
        channel = "online" if hold else "offline"
        stale = self._stale_hold(vid) if v.status == "held" else None
        status = "issued" if stale is not None else v.status
        if status in ("redeemed", "held"):
            expect = "voucher_already_redeemed"
        elif status == "expired":
            expect = "voucher_expired"
        elif self.now < p.valid_from:
            expect = "voucher_not_yet_valid"
        elif self.now >= v.expires_at:
            expect = "voucher_expired"
        elif m_status != "active":
            expect = "merchant_not_active"
        elif m_category not in p.categories:
            expect = "category_not_allowed"
        elif channel not in p.channels or channel not in m_channels:
            expect = "channel_not_allowed"
        elif order < max(v.amount, p.threshold):
            expect = "order_below_threshold"
        else:
            expect = None
        key = self.key()
        res = self.call("redeem", expect, redeem, code=v.code, merchant_id=mid,
                        order_amount_fen=order, channel=channel, hold=hold, idem_key=key,
                        now=self.now)
        if res is None:
            return
        if stale is not None:
            self._void_hold(stale)
        rid = res.redemption.id
        assert rid not in self.redemptions
        self.redemptions[rid] = MRedemption(
            voucher=vid, merchant=mid, amount=v.amount, status="held" if hold else "posted",
            hold_expires_at=self.now + HOLD if hold else None)
        out, pay = (OUT, v.union, v.program), (PAY, mid)
        if hold:
            v.status = "held"
            self.books.hold(out, pay, v.amount)
        else:
            v.status = "redeemed"
            self.books.move(out, pay, v.amount)
        self.ok("hold" if hold else "redeem")

    def _pick(self, data, status):
        ids = sorted(i for i, r in self.redemptions.items() if r.status == status)
        return data.draw(st.sampled_from(ids)) if ids else None

    @rule(data=st.data())
    def do_capture(self, data):
        rid = self._pick(data, "held")
        if rid is None:
            return
        r = self.redemptions[rid]
        expired = self.now >= r.hold_expires_at
        if self.call("capture", "hold_expired" if expired else None, capture,
                     redemption_id=rid, now=self.now) is None:
            return
        v = self.vouchers[r.voucher]
        r.status, v.status = "posted", "redeemed"
        self.books.release((OUT, v.union, v.program), (PAY, r.merchant), r.amount, post=True)
        self.ok("capture")

    @rule(data=st.data())
    def do_void(self, data):
        rid = self._pick(data, "held")
        if rid is None:
            return
        self.call("void", None, void, redemption_id=rid, now=self.now)
        self._void_hold(rid)
        self.ok("void")

    @rule(data=st.data())
    def do_refund(self, data):
        rid = self._pick(data, "posted")
        if rid is None:
            return
        r = self.redemptions[rid]
        v = self.vouchers[r.voucher]
        res = self.call("refund", None, refund, redemption_id=rid, idem_key=self.key(),
                        now=self.now)
        # The deadline a restored voucher takes (issue 8, item 3): the one the extensions made
        # while it was spent would have given it, each moving it only if still running then.
        deadline = v.expires_at
        for made, new in v.missed:
            if made < deadline < new:
                deadline = new
        with self.db.session() as s:
            engine_deadline = s.get(Voucher, r.voucher).expires_at
        assert engine_deadline == deadline, (engine_deadline, deadline, v)
        still_valid = self.now < deadline
        assert res.refund.outcome == ("restored" if still_valid else "to_fund")
        v.expires_at, v.missed = deadline, []
        r.status = "refunded"
        debit = (RECV, r.merchant) if r.settled else (PAY, r.merchant)
        if still_valid:
            v.status = "issued"
            self.books.move(debit, (OUT, v.union, v.program), r.amount)
        else:
            v.status = "expired"
            self.books.move(debit, (FUND, v.union), r.amount)
        self.ok("refund restored" if still_valid else "refund to fund")

    @rule(minutes=st.integers(1, 30) | st.integers(1, 24 * 30).map(lambda h: 60 * h))
    def advance(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule()
    def do_expire(self):
        self.call("expire", None, expire, as_of=self.now, idem_key=self.key(), now=self.now)
        for rid, r in sorted(self.redemptions.items()):
            if r.status == "held" and r.hold_expires_at <= self.now:
                self._void_hold(rid)
        expired = 0
        for v in self.vouchers.values():
            if v.status == "issued" and v.expires_at <= self.now:
                v.status = "expired"
                self.books.move((OUT, v.union, v.program), (FUND, v.union), v.amount)
                expired += 1
        self.ok("expire" if expired else "expire (nothing due)")

    @rule(days=st.integers(1, 90), u=st.none() | st.integers(0, 2),
          program=st.sampled_from(["p2020", "short"]))
    def do_extend(self, days, u, program):
        new = self.now + timedelta(days=days)
        pid = self.program_id[program]
        unions = None if u is None else [self.unions[u]]
        current = min(max(p.expires_at, self.wide_deadline.get(pid, p.expires_at))
                      for p in self.products.values() if p.program == pid)
        if new <= current:  # deadlines only move later: an earlier one is refused
            self.call("extend", "extension_not_later", extend, program=program,
                      new_expires_at=new, actor="test", reason="notice", idem_key=self.key(),
                      union_ids=unions, now=self.now)
            return
        self.call("extend", None, extend, program=program, new_expires_at=new, actor="test",
                  reason="notice", idem_key=self.key(), union_ids=unions, now=self.now)
        for v in self.vouchers.values():
            if v.program != pid or (unions and v.union not in unions):
                continue
            # an extension moves only vouchers still running (one past its deadline is
            # expired, marked by the expiry run or not)
            if v.status in ("issued", "held") and self.now < v.expires_at < new:
                v.expires_at = new
            elif v.status == "redeemed" and v.expires_at < new:
                v.missed.append((self.now, new))
        if unions is None:
            self.wide_deadline[pid] = max(new, self.wide_deadline.get(pid, new))
        self.ok("extend")

    @rule()
    def do_settle(self):
        res = self.call("settle", None, settle, cutoff=self.now, idem_key=self.key(),
                        now=self.now)
        totals: Counter = Counter()
        for r in self.redemptions.values():
            if r.status == "posted" and not r.settled:
                r.settled = True
                totals[r.merchant] += r.amount
        recovered = 0
        for m, amount in sorted(totals.items()):
            self.books.move((PAY, m), (CLEAR,), amount)
            owed = -self.books.posted[(RECV, m)]
            if owed > 0:
                back = min(owed, amount)
                self.books.move((CLEAR,), (RECV, m), back)
                recovered += back
        assert (res.run.batches, res.run.amount_fen, res.run.recovered_fen) == \
            (len(totals), sum(totals.values()), recovered)
        self.ok("settle" if totals else "settle (nothing due)")

    # --- after every step --------------------------------------------------------------------

    @invariant()
    def engine_matches_the_model(self):
        if not hasattr(self, "w"):
            return
        # Steps happen one after another: the next one a microsecond later, as on a real
        # clock (the engine orders extensions and redemptions of a voucher by their times).
        self.now += timedelta(microseconds=1)
        with self.db.session() as s:
            vouchers = {v.id: (v.status, v.expires_at) for v in s.execute(select(
                Voucher.id, Voucher.status, Voucher.expires_at))}
            redemptions = {r.id: (r.status, r.settlement_batch_id is not None) for r in s.execute(
                select(Redemption.id, Redemption.status, Redemption.settlement_batch_id))}
            accounts: Counter = Counter()
            pend: dict = {}
            for a in s.execute(select(Account)).scalars():
                k = account_of(a)
                accounts[k] += a.credits_posted - a.debits_posted
                d, c = pend.get(k, (0, 0))
                pend[k] = (d + a.debits_pending, c + a.credits_pending)
            refunds = s.execute(select(Refund.id)).scalars().all()
            problems = verify(s)
        assert vouchers == {i: (v.status, v.expires_at) for i, v in self.vouchers.items()}
        assert redemptions == {i: (r.status, r.settled) for i, r in self.redemptions.items()}
        assert len(refunds) == sum(r.status == "refunded" for r in self.redemptions.values())
        engine = {k: (accounts[k], *pend[k]) for k in pend
                  if (accounts[k], *pend[k]) != (0, 0, 0)}
        assert engine == self.books.view()
        assert problems == []


@pytest.mark.slow
def test_ledger_state_machine(db):
    LedgerMachine.db = db
    LedgerMachine.successes = Counter()
    LedgerMachine.refusals = Counter()
    pg = db.dialect == "postgresql"
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=12 if pg else 20, stateful_step_count=40, deadline=None,
        suppress_health_check=list(HealthCheck)))
    done, refused = LedgerMachine.successes, LedgerMachine.refusals
    print("\nsucceeded:", dict(sorted(done.items())), "\nrefused as predicted:",
          dict(sorted(refused.items())))
    # A run in which nothing was spent tested nothing that matters. (Hypothesis switches
    # rules off at random per example, so the rarer successes are printed, not required.)
    assert done["redeem"] > 0, done
