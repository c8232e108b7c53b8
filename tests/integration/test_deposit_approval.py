"""Maker-checker deposits in the service and at the command line: money moves once, whoever
approves, however often, however the approvals interleave (docs/deposits.md)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.core import testpoints
from civicvoucher.funds import approvals
from civicvoucher.funds.service import Deposit, fund_balance
from civicvoucher.ledger.models import Transfer
from civicvoucher.reconcile import verify
from tests.world import build_world, run_cli

MAKER = approvals.Person.operator("cli:maker")
ALICE, BOB = approvals.Person.operator("cli:alice"), approvals.Person.operator("cli:bob")


def _request(db, org: int, amount: int = 250_00, source: str = "fiscal", key: str = "r1"):
    return db.run(lambda s: approvals.request_deposit(s, org_id=org, amount_fen=amount,
                                                      source=source, idem_key=key, maker=MAKER))


def _balance(db, org: int) -> int:
    with db.session() as s:
        return fund_balance(s, org)


def _transfers(db, rid: int) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Transfer).where(
            Transfer.id == f"deposit:approval:{rid}")).scalar_one()


def test_a_request_moves_nothing_and_approval_moves_it_once(db):
    w = build_world(db)
    r = _request(db, w.union_a)
    assert isinstance(r, approvals.Requested) and r.request.status == "pending"
    assert _balance(db, w.union_a) == 0
    again = _request(db, w.union_a)
    assert again.replayed and again.request.id == r.request.id
    with pytest.raises(Exception, match="idempotency_key_reused"):
        _request(db, w.union_a, amount=1)
    with pytest.raises(approvals.SelfApproval):
        db.run(lambda s: approvals.approve(s, request_id=r.request.id, checker=MAKER))
    first = db.run(lambda s: approvals.approve(s, request_id=r.request.id, checker=ALICE))
    assert not first.replayed and first.balance_fen == 250_00
    for checker in (ALICE, BOB):
        d = db.run(lambda s, c=checker: approvals.approve(s, request_id=r.request.id, checker=c))
        assert d.replayed and d.request.checker == "cli:alice"
    assert _balance(db, w.union_a) == 250_00 and _transfers(db, r.request.id) == 1
    # small dues need nobody
    d = db.run(lambda s: approvals.request_deposit(s, org_id=w.union_a, amount_fen=100,
                                                   source="dues", idem_key="d", maker=MAKER))
    assert isinstance(d, Deposit) and d.balance_fen == 250_00 + 100
    with db.session() as s:
        assert verify(s) == []


def test_two_checkers_at_once_move_the_money_once(db):
    """Both start together (a barrier): whatever the order, one posts, the other replays."""
    w = build_world(db)
    rid = _request(db, w.union_a).request.id
    barrier = threading.Barrier(2)
    out: dict = {}

    def check(who):
        barrier.wait(10)
        try:
            out[who.identity] = db.run(lambda s: approvals.approve(s, request_id=rid, checker=who))
        except Exception as exc:  # pragma: no cover - reported below
            out[who.identity] = exc

    threads = [threading.Thread(target=check, args=(p,)) for p in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(d.replayed for d in out.values()) == [False, True], out
    assert _balance(db, w.union_a) == 250_00 and _transfers(db, rid) == 1


@pytest.mark.pg
def test_an_approval_that_read_pending_before_another_committed_moves_nothing(pg_db):
    """PostgreSQL: the late checker reads ``pending``, pauses (testpoint) while the other
    approves and commits, then goes on: its conditional UPDATE finds nothing pending, and it
    answers the first approval. (SQLite cannot interleave so: BEGIN IMMEDIATE.)"""
    db = pg_db
    w = build_world(db)
    rid = _request(db, w.union_a).request.id
    late, looked, committed = {}, threading.Event(), threading.Event()

    def pause():
        if threading.current_thread().name == "late" and not looked.is_set():
            looked.set()
            assert committed.wait(20)

    def run_late():
        late["d"] = db.run(lambda s: approvals.approve(s, request_id=rid, checker=BOB))

    with testpoints.hooked("deposit_approve.after_lookup", pause):
        t = threading.Thread(target=run_late, name="late")
        t.start()
        assert looked.wait(20)
        first = db.run(lambda s: approvals.approve(s, request_id=rid, checker=ALICE))
        committed.set()
        t.join(30)
    assert not first.replayed and late["d"].replayed
    assert late["d"].request.checker == "cli:alice"
    assert _balance(db, w.union_a) == 250_00 and _transfers(db, rid) == 1


def _entries(db, action: str) -> list[tuple[str, dict]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(AuditEntry.actor, AuditEntry.detail)
                                            .where(AuditEntry.action == action)
                                            .order_by(AuditEntry.seq))]


def test_the_cli_requests_and_another_operator_approves(db, monkeypatch):
    w = build_world(db)

    def cli(user: str, *args):
        monkeypatch.setenv("LOGNAME", user)
        return run_cli(db, monkeypatch, *args)

    for _ in range(2):  # the retry with its key is the same request, audited once
        r = cli("alice", "fund", "deposit", w.union_a, "2,000", "--source", "fiscal",
                "--key", "f1")
        assert r.exit_code == 0, r.output
        assert "needs a second person" in r.output and "#1" in r.output and "fiscal" in r.output
    assert _balance(db, w.union_a) == 0
    assert [a for a, _ in _entries(db, "fund.deposit.request")] == ["cli:alice"]
    listed = cli("bob", "fund", "pending")
    assert "#1 union A ¥2,000.00 fiscal (fiscal) requested by cli:alice" in listed.output
    own = cli("alice", "fund", "approve", "1")
    assert getattr(own.exception, "code", None) == "self_approval_refused"  # main.run: exit 2
    ok = cli("bob", "fund", "approve", "1")
    assert ok.exit_code == 0 and "approved #1" in ok.output, ok.output
    for user in ("bob", "carol"):
        again = cli(user, "fund", "approve", "1", "--key", "other")
        assert again.exit_code == 0 and "approved before" in again.output, again.output
    assert _balance(db, w.union_a) == 2_000_00
    [(actor, detail)] = _entries(db, "fund.deposit.approve")
    assert (actor, detail["maker"], detail["amount_fen"]) == ("cli:bob", "cli:alice", 2_000_00)
    # dues below the threshold go through at once, as before
    small = cli("alice", "fund", "deposit", w.union_a, "1000", "--key", "d1")
    assert small.exit_code == 0 and "deposited ¥1,000.00" in small.output
    # over the threshold: a request, which another operator rejects
    big = cli("alice", "fund", "deposit", w.union_a, "100,000.01", "--key", "d2")
    assert "over threshold" in big.output and "#2" in big.output
    no = cli("bob", "fund", "reject", "2", "--reason", "金额有误")
    assert no.exit_code == 0 and "rejected #2" in no.output
    late = cli("carol", "fund", "approve", "2")
    assert getattr(late.exception, "code", None) == "invalid_transition"
    assert _balance(db, w.union_a) == 2_000_00 + 1_000_00
    assert "no pending deposit requests" in cli("bob", "fund", "pending").output
    assert cli("bob", "audit", "verify").exit_code == 0
