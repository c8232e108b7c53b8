"""``civicvoucher maintenance`` prunes exactly what is no longer in force, in chunks, once.

Rows of every kind are written with times around a fixed NOW: some out of force for longer
than the grace (pruned), some out of force for less (kept), some in force (kept). After the
command, each row is checked by its key: the pruned ones are gone, every other row is exactly
as it was. A second run prunes nothing; the run is one audit entry and the chain verifies.
(These tests fail on the code before this change only because the command did not exist.)
"""

from __future__ import annotations

import calendar
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from civicvoucher.api import idempotency as idem
from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth import ratelimit
from civicvoucher.auth.models import ApiToken, IdempotencyRecord, RateBucket
from civicvoucher.auth.service import create_user
from civicvoucher.core import clock, testpoints
from civicvoucher.maintenance import Policy, run_maintenance
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.world import T0, build_world, fund, run_cli

NOW = T0 + timedelta(days=3)
H, M = timedelta(hours=1), timedelta(minutes=1)
B, K, T, V = (RateBucket.__table__, IdempotencyRecord.__table__, ApiToken.__table__,
              Voucher.__table__)


def epoch(t) -> int:
    return calendar.timegm(t.timetuple())


@pytest.fixture
def at_now(monkeypatch):
    monkeypatch.setattr(clock, "_now", lambda: NOW)


def world_with_vouchers(db, members: int = 5):
    w = build_world(db, members=(members, 1, 1))
    fund(w, w.union_a, 100_000)
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="i1", now=T0)
        assert r.issuance.status == "completed"
        user = create_user(s, username="admin", role="province-admin", org_id=w.province).user
        vouchers = list(s.execute(select(V.c.id).where(V.c.union_id == w.union_a)
                                  .order_by(V.c.id)).scalars())
    return user.id, vouchers


def bucket(key, *, window_start, locked_until=None, failures=0) -> dict:
    return dict(key=key, window_start=window_start, hits=3, failures=failures,
                locked_until=locked_until)


def idem_row(user_id, key, *, state, expires_at) -> dict:
    done = state == "done"
    return dict(user_id=user_id, key=key, request_hash="h" * 64, state=state,
                status_code=201 if done else None, content_type="application/json" if done
                else None, body=b"{}" if done else None, location=None,
                created_at=expires_at - idem.TTL, locked_at=expires_at - idem.TTL,
                claim_token=None if done else "t" * 32, expires_at=expires_at)


def token_row(user_id, name, *, expires_at=None, revoked_at=None) -> dict:
    return dict(user_id=user_id, kind="access" if expires_at else "api",
                token_hash=f"{name:0>64}", prefix=name[:12], name=name,
                created_at=NOW - 48 * H, expires_at=expires_at, revoked_at=revoked_at)


def seed(db, user_id: int, vouchers: list[int]) -> dict[str, set]:
    """Rows of each kind around NOW; returns the keys that must be pruned, by table."""
    buckets = {  # key: (row, pruned?)
        "login:user:gone": (bucket("login:user:gone", window_start=NOW - 25 * H), True),
        "login:user:lock-over": (bucket("login:user:lock-over", window_start=NOW - 25 * H,
                                        locked_until=NOW - 2 * H), True),
        "login:user:old-failures": (bucket("login:user:old-failures",
                                           window_start=NOW - 30 * H, failures=4), True),
        "login:user:lock-just-over": (bucket("login:user:lock-just-over",
                                             window_start=NOW - 25 * H,
                                             locked_until=NOW - 30 * M), False),
        "login:user:locked": (bucket("login:user:locked", window_start=NOW - 48 * H,
                                     locked_until=NOW + 10 * M), False),
        "login:ip:in-window": (bucket("login:ip:in-window", window_start=NOW - 30 *
                                      timedelta(seconds=1)), False),
        "code:user:idle-23h": (bucket("code:user:idle-23h", window_start=NOW - 23 * H), False),
    }
    keys = {  # key: (state, expires_at, pruned?)
        "done-expired": ("done", NOW - 2 * H, True),
        "done-in-grace": ("done", NOW - 30 * M, False),
        "done-young": ("done", NOW + H, False),
        "claim-expired-owner-gone": ("in_progress", NOW - 2 * H, True),
        "claim-expired-owner-alive": ("in_progress", NOW - 2 * H, False),
        "claim-young": ("in_progress", NOW + 23 * H, False),
    }
    tokens = {  # name: (expires_at, revoked_at, pruned?)
        "access-expired": (NOW - 2 * H, None, True),
        "access-in-grace": (NOW - 10 * M, None, False),
        "access-valid": (NOW + 10 * M, None, False),
        "api-valid": (None, None, False),
        "api-revoked": (None, NOW - 2 * H, True),
        "api-just-revoked": (None, NOW - 10 * M, False),
        "access-revoked": (NOW + 10 * M, NOW - 3 * H, True),
    }
    qr = {  # voucher id: (qr_used_exp, cleared?)
        vouchers[0]: (epoch(NOW - 2 * H), True),
        vouchers[1]: (epoch(NOW - 10 * M), False),
        vouchers[2]: (epoch(NOW + 20 * timedelta(seconds=1)), False),
        vouchers[3]: (None, False),
    }
    with db.session() as s:
        s.execute(B.insert(), [row for row, _ in buckets.values()])
        s.execute(K.insert(), [idem_row(user_id, k, state=st, expires_at=e)
                               for k, (st, e, _) in keys.items()])
        s.execute(T.insert(), [token_row(user_id, n, expires_at=e, revoked_at=r)
                               for n, (e, r, _) in tokens.items()])
        for vid, (exp, _) in qr.items():
            s.execute(update(V).where(V.c.id == vid).values(qr_used_exp=exp))
    return {"rate_bucket": {k for k, (_, p) in buckets.items() if p},
            "idempotency_key": {k for k, (*_, p) in keys.items() if p},
            "api_token": {n for n, (*_, p) in tokens.items() if p},
            "voucher.qr_used_exp": {v for v, (_, p) in qr.items() if p}}


def snapshot(db) -> dict[str, dict]:
    """Every row of the four tables by its natural key (the voucher's QR column by id)."""
    with db.session() as s:
        return {
            "rate_bucket": {r.key: tuple(r) for r in s.execute(select(B))},
            "idempotency_key": {r.key: tuple(r) for r in s.execute(select(K))},
            "api_token": {r.name: tuple(r) for r in s.execute(select(T))},
            "voucher.qr_used_exp": {r.id: r.qr_used_exp for r in s.execute(
                select(V.c.id, V.c.qr_used_exp))},
        }


def held_claim(db, user_id: int):
    """A live owner of ``claim-expired-owner-alive``: it holds the key's lock, as a request
    still running does."""
    lock = idem.locker_for(db).lock(user_id, "claim-expired-owner-alive")
    assert lock.acquire()
    return lock


def maintenance_entries(db) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == "maintenance.prune")
                              .order_by(AuditEntry.seq)).scalars())


def check_pruned_exactly(before: dict, after: dict, pruned: dict[str, set]) -> None:
    for table, rows in before.items():
        if table == "voucher.qr_used_exp":  # an UPDATE: the value goes, the voucher stays
            assert after[table].keys() == rows.keys()
            for vid, value in rows.items():
                want = None if vid in pruned[table] else value
                assert after[table][vid] == want, (table, vid, value, after[table][vid])
            continue
        assert pruned[table] <= rows.keys(), table
        for key, row in rows.items():
            if key in pruned[table]:
                assert key not in after[table], (table, key, "should have been pruned")
            else:
                assert after[table].get(key) == row, (table, key, "must be left untouched")
        assert after[table].keys() == rows.keys() - pruned[table], table


def test_maintenance_prunes_exactly_the_expired_rows_once(db, monkeypatch, at_now):
    user_id, vouchers = world_with_vouchers(db)
    pruned = seed(db, user_id, vouchers)
    lock = held_claim(db, user_id)
    try:
        before = snapshot(db)
        r = run_cli(db, monkeypatch, "maintenance", "--dry-run")
        assert r.exit_code == 0, r.output
        assert "would prune" in r.output
        assert snapshot(db) == before  # a dry run changes nothing
        assert maintenance_entries(db) == []  # and is not audited

        r = run_cli(db, monkeypatch, "maintenance")
        assert r.exit_code == 0, r.output
        after = snapshot(db)
        check_pruned_exactly(before, after, pruned)
        for table, keys in pruned.items():  # what it says, per table
            assert f"{table}" in r.output and f"pruned {len(keys)}" in \
                r.output.split(table, 1)[1].splitlines()[0], (table, r.output)
        assert "1 still held by a live request, kept" in r.output  # the claim whose owner is alive

        entries = maintenance_entries(db)
        assert len(entries) == 1
        assert entries[0].actor.startswith("cli:")
        assert entries[0].detail["pruned"] == {t: len(k) for t, k in pruned.items()}
        assert entries[0].detail["held"] == {"idempotency_key": 1}
        assert entries[0].detail["completed"] is True

        r = run_cli(db, monkeypatch, "maintenance")  # again: nothing left to prune
        assert r.exit_code == 0, r.output
        assert snapshot(db) == after
        entries = maintenance_entries(db)
        assert len(entries) == 2
        assert set(entries[1].detail["pruned"].values()) == {0}
    finally:
        lock.release()
    r = run_cli(db, monkeypatch, "audit", "verify")
    assert r.exit_code == 0, r.output

    # the owner has gone now (its lock is free): its expired claim goes with the next run
    report = run_maintenance(db, now=NOW)
    assert report.counts()["idempotency_key"] == 1
    assert "claim-expired-owner-alive" not in snapshot(db)["idempotency_key"]


def test_maintenance_works_in_chunks(db, at_now):
    """More rows of each kind than one chunk, with rows in force between them: every
    expired row goes, one transaction per chunk, and no row in force is touched."""
    user_id, vouchers = world_with_vouchers(db, members=12)
    rows_b, rows_k, rows_t = [], [], []
    for i in range(10):
        rows_b += [bucket(f"old:{i:02d}", window_start=NOW - 30 * H),
                   bucket(f"old:{i:02d}:live", window_start=NOW - 30 * H,
                          locked_until=NOW + H)]
        rows_k += [idem_row(user_id, f"k{i:02d}", state="done", expires_at=NOW - 2 * H),
                   idem_row(user_id, f"k{i:02d}-young", state="done", expires_at=NOW + H)]
        rows_t += [token_row(user_id, f"t{i:02d}", expires_at=NOW - 2 * H),
                   token_row(user_id, f"t{i:02d}-valid", expires_at=NOW + H)]
    with db.session() as s:
        s.execute(B.insert(), rows_b)
        s.execute(K.insert(), rows_k)
        s.execute(T.insert(), rows_t)
        for n, vid in enumerate(vouchers):
            s.execute(update(V).where(V.c.id == vid).values(
                qr_used_exp=epoch(NOW - 2 * H) if n % 6 else epoch(NOW + H)))
    cleared = [v for n, v in enumerate(vouchers) if n % 6]
    assert len(cleared) == 10
    before = snapshot(db)

    report = run_maintenance(db, policy=Policy(chunk=3), now=NOW)
    got = {r.table: (r.pruned, r.chunks) for r in report.results}
    assert got == {"rate_bucket": (10, 4), "idempotency_key": (10, 4), "api_token": (10, 4),
                   "voucher.qr_used_exp": (10, 4)}
    check_pruned_exactly(before, snapshot(db), {
        "rate_bucket": {f"old:{i:02d}" for i in range(10)},
        "idempotency_key": {f"k{i:02d}" for i in range(10)},
        "api_token": {f"t{i:02d}" for i in range(10)},
        "voucher.qr_used_exp": set(cleared)})
    assert report.analysed == ["api_token", "idempotency_key", "rate_bucket", "voucher"]
    assert run_maintenance(db, policy=Policy(chunk=3), now=NOW).total == 0


def test_a_bucket_renewed_between_the_look_and_the_delete_stays(pg_db, at_now):
    """PostgreSQL (READ COMMITTED: another transaction can commit between our SELECT and our
    DELETE): a login hits an idle bucket just after the job chose it; the DELETE repeats the
    condition, so the bucket that is in its window again is kept, with its new count."""
    db = pg_db
    with db.session() as s:
        s.execute(B.insert(), [bucket("login:ip:10.0.0.9", window_start=NOW - 30 * H),
                               bucket("login:ip:10.0.0.8", window_start=NOW - 30 * H)])
    renewed = []

    def a_login_arrives() -> None:
        if not renewed:
            renewed.append(ratelimit.hit(db, "login:ip:10.0.0.9", limit=60, window=M))

    with testpoints.hooked("maintenance.after_lookup", a_login_arrives):
        report = run_maintenance(db, now=NOW)
    assert renewed and renewed[0].hits == 1  # the login started a new window
    assert report.counts()["rate_bucket"] == 1
    with db.session() as s:
        left = {r.key: r.window_start for r in s.execute(select(B))}
    assert left == {"login:ip:10.0.0.9": NOW}


def test_policy_refuses_what_would_prune_live_state_or_break_a_chunk():
    with pytest.raises(ValueError, match="at least 15 minutes"):  # shorter than a lockout
        Policy(bucket_idle=timedelta(minutes=5))
    with pytest.raises(ValueError, match="negative"):
        Policy(grace=-M)
    for chunk in (0, 10_001):  # one IN (...) per chunk: SQLite takes 32,766 parameters
        with pytest.raises(ValueError, match="chunk"):
            Policy(chunk=chunk)
