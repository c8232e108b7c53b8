"""A same-key retry gets the first result under any interleaving, for every keyed operation.

The race that matters: the retry looks its key up and finds nothing, then the first request
commits, then the retry acts on the state the first one left (the voucher is spent, the hold
is captured). Each test makes that interleaving happen every time: the retry pauses right
after its lookup (at a function it calls next, or at a ``core.testpoints`` point) until the
first request has committed.

PostgreSQL only: on SQLite every transaction starts with BEGIN IMMEDIATE, so nobody can commit
while the retry's transaction is open; the interleaving cannot happen there (the plain
duplicate tests in test_concurrency.py run on both).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from civicvoucher.core import testpoints
from civicvoucher.reconcile import verify
from civicvoucher.settlement import service as settlement
from civicvoucher.vouchers import issuance, lifecycle, redemption
from civicvoucher.vouchers.models import Voucher
from tests.world import T0, build_world, fund, program_spec

pytestmark = pytest.mark.pg
LATER = T0 + timedelta(hours=1)


@pytest.fixture
def db(pg_db):
    return pg_db


class Interleave:
    """Pause the retry (thread R) after its key lookup until the first request committed."""

    def __init__(self) -> None:
        self.retry_thread: int | None = None
        self.looked = threading.Event()
        self.committed = threading.Event()
        self.paused = 0

    def pause(self) -> None:
        if threading.get_ident() == self.retry_thread and not self.looked.is_set():
            self.paused += 1
            self.looked.set()
            assert self.committed.wait(20), "the first request never committed"

    def wrap(self, fn):
        def paused(*a, **kw):
            self.pause()
            return fn(*a, **kw)
        return paused

    def run(self, db, op):
        """Retry in a thread, first request here; both with the same key."""
        out: dict = {}

        def retry():
            self.retry_thread = threading.get_ident()
            try:
                out["retry"] = db.run(op)
            except Exception as exc:
                out["error"] = exc

        t = threading.Thread(target=retry)
        t.start()
        assert self.looked.wait(20), "the retry never reached its pause"
        first = db.run(op)
        self.committed.set()
        t.join(30)
        assert "error" not in out, f"the retry failed: {out.get('error')!r}"
        return first, out["retry"]


def _world(db, channels=("offline", "online")):
    w = build_world(db, program=program_spec(channels=channels))
    fund(w, w.union_a, 900)
    with db.session() as s:
        issuance.issue(s, union_id=w.union_a, program=w.program, idem_key="seed", now=T0)
        code = s.execute(select(Voucher.code).order_by(Voucher.id).limit(1)).scalar_one()
    return w, code


def _redeem(w, code, key, **kw):
    return lambda s: redemption.redeem(s, code=code, merchant_id=w.merchants["超市"],
                                       order_amount_fen=30000, idem_key=key, now=T0, **kw)


# Each case: (where the retry pauses, a setup returning the keyed operation, the result's id)
def case_redeem(db, monkeypatch, il):
    w, code = _world(db)
    monkeypatch.setattr(redemption, "find_voucher", il.wrap(redemption.find_voucher))
    return _redeem(w, code, "K"), lambda r: (r.redemption.id, r.replayed)


def case_hold(db, monkeypatch, il):
    w, code = _world(db)
    monkeypatch.setattr(redemption, "find_voucher", il.wrap(redemption.find_voucher))
    return (lambda s: redemption.redeem(s, code=code, merchant_id=w.merchants["超市"],
                                        order_amount_fen=30000, channel="online", hold=True,
                                        idem_key="K", now=T0),
            lambda r: (r.redemption.id, r.replayed))


def _held(db):
    w, code = _world(db)
    rid = db.run(lambda s: redemption.redeem(
        s, code=code, merchant_id=w.merchants["超市"], order_amount_fen=30000, channel="online",
        hold=True, idem_key="h", now=T0).redemption.id)
    return rid


def case_capture(db, monkeypatch, il):
    rid = _held(db)
    monkeypatch.setattr(redemption, "_resolve_hold", il.wrap(redemption._resolve_hold))
    return (lambda s: redemption.capture(s, redemption_id=rid, now=T0),
            lambda r: (r.id, r.status))


def case_void(db, monkeypatch, il):
    rid = _held(db)
    monkeypatch.setattr(redemption, "_resolve_hold", il.wrap(redemption._resolve_hold))
    return (lambda s: redemption.void(s, redemption_id=rid, now=T0),
            lambda r: (r.id, r.status))


def case_refund(db, monkeypatch, il):
    w, code = _world(db)
    rid = db.run(lambda s: _redeem(w, code, "r")(s).redemption.id)
    monkeypatch.setattr(redemption, "_get_redemption", il.wrap(redemption._get_redemption))
    return (lambda s: redemption.refund(s, redemption_id=rid, idem_key="K", now=T0),
            lambda r: (r.refund.id, r.refund.outcome))


def case_issue(db, monkeypatch, il):
    w = build_world(db)
    fund(w, w.union_a, 900)
    monkeypatch.setattr(issuance, "lock_program", il.wrap(issuance.lock_program))
    return (lambda s: issuance.issue(s, union_id=w.union_a, program=w.program, idem_key="K",
                                     now=T0),
            lambda r: (r.issuance.id, r.issuance.status))


def case_extend(db, monkeypatch, il):
    w, _ = _world(db)
    monkeypatch.setattr(lifecycle, "lock_program", il.wrap(lifecycle.lock_program))
    return (lambda s: lifecycle.extend(s, program=w.program, new_expires_at=T0 + timedelta(days=90),
                                       actor="省总工会", reason="延期", idem_key="K", now=T0),
            lambda r: (r.extension.id, r.extension.vouchers_extended))


def case_expire(db, monkeypatch, il):
    _world(db)
    monkeypatch.setattr(lifecycle, "void_expired_holds", il.wrap(lifecycle.void_expired_holds))
    return (lambda s: lifecycle.expire(s, as_of=LATER, idem_key="K", now=LATER),
            lambda r: (r.run.id, r.run.vouchers_expired))


def case_settle(db, monkeypatch, il):
    w, code = _world(db)
    db.run(_redeem(w, code, "r"))
    return (lambda s: settlement.settle(s, cutoff=LATER, idem_key="K", now=LATER),
            lambda r: (r.run.id, r.run.redemptions))


def case_deposit(db, monkeypatch, il):
    from civicvoucher.funds.service import deposit

    w = build_world(db)
    fund(w, w.county_a, 1000)
    fund(w, w.union_a, 1)  # its account exists: the retry's pause holds no insert lock on it
    return (lambda s: deposit(s, org_id=w.union_a, amount_fen=100_000, source="transfer",
                              from_org_id=w.county_a, idem_key="K"),
            lambda r: (r.transfer_id, r.amount_fen))


CASES = {name.removeprefix("case_"): fn for name, fn in dict(globals()).items()
         if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_retry_that_loses_the_race_gets_the_first_result(db, monkeypatch, name):
    il = Interleave()
    op, ident = CASES[name](db, monkeypatch, il)
    point = {"deposit": "deposit", "settle": "settle"}.get(name)
    with testpoints.hooked(f"{point}.after_lookup", il.pause) if point else _nothing():
        first, retry = il.run(db, op)
    assert il.paused == 1
    assert ident(retry)[0] == ident(first)[0]
    assert getattr(first, "replayed", False) is False or name in ("capture", "void")
    if hasattr(retry, "replayed"):
        assert retry.replayed is True
    with db.session() as s:
        assert verify(s) == []


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
