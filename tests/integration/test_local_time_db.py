"""Issue 8 items 10 and 7 through the real services and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest

from civicvoucher.core import clock
from civicvoucher.errors import VoucherNotRedeemable
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.redemption import redeem
from tests.world import build_world, fund, program_spec, run_cli

ZONE_ENV = "CIVICVOUCHER_TIMEZONE"


@pytest.fixture(autouse=True)
def _beijing(monkeypatch):
    monkeypatch.delenv(ZONE_ENV, raising=False)
    yield
    clock.set_clock(None)


def test_a_program_ending_0100_beijing_stops_at_1700_utc(db):
    """'2026-12-02T01:00' in the program file is Beijing time: 2026-12-01T17:00Z."""
    w = build_world(db, members=(2, 0, 0), program=program_spec(
        valid_from="2026-11-01T00:00:00", expires_at="2026-12-02T01:00:00"))
    fund(w, w.union_a, 600)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=datetime(2026, 11, 2))
    from sqlalchemy import select

    from civicvoucher.vouchers.models import Voucher

    with db.session() as s:
        first, second = s.execute(select(Voucher.code).order_by(Voucher.id)).scalars().all()
        assert {v.expires_at for v in s.execute(select(Voucher)).scalars()} == {
            datetime(2026, 12, 1, 17)}
    merchant = w.merchants["超市"]
    with db.session() as s:
        r = redeem(s, code=first, merchant_id=merchant, order_amount_fen=30000, idem_key="r1",
                   now=datetime(2026, 12, 1, 16, 59))
        assert r.redemption.status == "posted"
    with db.session() as s, pytest.raises(VoucherNotRedeemable) as exc:
        redeem(s, code=second, merchant_id=merchant, order_amount_fen=30000, idem_key="r2",
               now=datetime(2026, 12, 1, 17))
    assert exc.value.code == "voucher_expired"
    assert exc.value.message == "expired at 2026-12-02 01:00 +08:00"  # as the program said


def _cli(db, monkeypatch, *args: str):
    return run_cli(db, monkeypatch, *args)


def _out(result) -> str:
    return " ".join(result.output.split())


def _ok(result):
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["settle", "expire"])
def test_a_keyed_rerun_without_a_time_replays(db, monkeypatch, command):
    """Item 7: `settle --key K` (or `expire --key K`) run again later, with no --cutoff /
    --as-of, is the same request: it replays instead of idempotency_key_reused. (On the old
    CLI the second run raised IdempotencyConflict: the defaulted "now" had moved.)"""
    build_world(db, members=(1, 0, 0))
    clock.set_clock(lambda: datetime(2020, 5, 4, 2))
    first = _ok(_cli(db, monkeypatch, command, "--key", "K"))
    assert "replayed" not in first.output
    clock.set_clock(lambda: datetime(2020, 5, 4, 3))  # an hour later: "now" moved
    again = _ok(_cli(db, monkeypatch, command, "--key", "K"))
    assert "(replayed)" in again.output


def test_cli_shows_times_in_beijing_time(db, monkeypatch):
    build_world(db, members=(1, 0, 0))
    clock.set_clock(lambda: datetime(2020, 5, 4, 2))
    r = _cli(db, monkeypatch, "settle", "--cutoff", "2020-05-03", "--key", "S1")  # through the 3rd
    assert r.exit_code == 0, (r.output, r.exception)
    assert "up to 2020-05-04 00:00 +08:00" in _out(r)
    from sqlalchemy import select

    from civicvoucher.settlement.models import SettlementRun

    with db.session() as s:  # stored as naive UTC
        assert s.execute(select(SettlementRun.cutoff)).scalar_one() == datetime(2020, 5, 3, 16)
    r = _cli(db, monkeypatch, "extend", "p2020", "--until", "2020-07-31", "--by", "省总工会",
             "--reason", "延期", "--key", "E1")
    assert r.exit_code == 0, (r.output, r.exception)
    assert "to 2020-08-01 00:00 +08:00 (exclusive)" in _out(r)


def test_an_extension_to_an_earlier_deadline_is_refused(db, monkeypatch):
    build_world(db, members=(1, 0, 0))
    clock.set_clock(lambda: datetime(2020, 5, 4, 2))
    r = _cli(db, monkeypatch, "extend", "p2020", "--until", "2020-06-30", "--by", "省总工会",
             "--reason", "提前", "--key", "E0")
    err = r.exception  # in-process the command's error is raised, not printed
    assert getattr(err, "code", None) == "extension_not_later", (r.output, err)
    assert "2020-07-11 00:00 +08:00" in str(err)
