"""The operations commands speak zh-CN by default and English on request (issue 10 item 6),
name their operator (``--as``), and read a run's cut alike (``settle``/``expire``)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select

from civicvoucher import i18n
from civicvoucher.core import clock
from civicvoucher.errors import ValidationError
from tests.world import T0, build_world, run_cli

CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{3,} [A-Za-z]{3,}")


def zh_ok(text: str, *allowed: str) -> None:
    """Chinese, with no English sentence once the expected codes/names are taken out."""
    for a in allowed:
        text = text.replace(a, "")
    assert CJK.search(text), text
    assert not ENGLISH_SENTENCE.search(text), text


def en_ok(text: str) -> None:
    assert not CJK.search(text), text


@pytest.fixture(autouse=True)
def _beijing(monkeypatch):
    monkeypatch.delenv("CIVICVOUCHER_TIMEZONE", raising=False)
    monkeypatch.delenv("CIVICVOUCHER_OPERATOR", raising=False)
    yield
    clock.set_clock(None)


def test_a_bad_time_is_said_in_both_languages():
    from civicvoucher.cli.common import parse_cutoff, parse_when

    with pytest.raises(ValidationError) as exc:
        parse_when("soon", "as_of")
    with i18n.language("zh"):
        zh_ok(exc.value.localized(), "Asia/Shanghai")
    with i18n.language("en"):
        en_ok(exc.value.localized())
        assert "not a date or time" in exc.value.localized()
    clock.set_clock(lambda: datetime(2020, 5, 4, 2))  # 10:00 on 4 May in Beijing
    with pytest.raises(ValidationError) as exc:
        parse_cutoff("2020-05-04", "cutoff")  # through the end of today: not over yet
    assert exc.value.code == "cutoff_in_future" and exc.value.field == "cutoff"
    with i18n.language("zh"):
        zh_ok(exc.value.localized())
        assert "2020-05-05 00:00 +08:00" in exc.value.localized()
    with i18n.language("en"):
        en_ok(exc.value.localized())


def test_settle_and_expire_read_a_cut_alike():
    """One parser: a bare date is through the end of that local day (as an official reads
    "as of 31 July", and as extend --until reads it); a time is the cut itself."""
    from civicvoucher.cli.common import parse_cutoff

    clock.set_clock(lambda: datetime(2020, 9, 1))
    assert parse_cutoff("2020-07-31", "as_of") == datetime(2020, 7, 31, 16)  # 8-01 00:00 +08
    assert parse_cutoff("2020-07-31T18:00", "cutoff") == datetime(2020, 7, 31, 10)
    assert parse_cutoff("2020-07-31T18:00Z", "cutoff") == datetime(2020, 7, 31, 18)
    assert parse_cutoff(None, "cutoff") is None  # now, fixed by the key's first run


@pytest.mark.zh
def test_the_idempotency_hint_is_chinese_by_default(capsys):
    from civicvoucher.cli.common import key_or_new

    k = key_or_new(None, "issue")
    err = capsys.readouterr().err
    assert k in err
    zh_ok(err, k, "--key")


@pytest.mark.zh
def test_help_of_the_operations_is_chinese():
    from civicvoucher.cli.main import command

    cmd = command("zh")
    for name in ("issue", "expire", "settle", "capture", "void", "extend", "maintenance"):
        zh_ok(cmd.commands[name].help, "CIVICVOUCHER_TIMEZONE")
        for p in cmd.commands[name].params:
            if p.help:
                assert CJK.search(p.help), (name, p.name, p.help)
    en = command("en")
    en_ok(en.commands["settle"].help)


@pytest.mark.zh
def test_issue_and_deposit_speak_chinese_with_yuan(db, monkeypatch):
    w = build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)
    d = run_cli(db, monkeypatch, "fund", "deposit", str(w.union_a), "5,000", "--key", "d1")
    assert d.exit_code == 0, d.output
    zh_ok(d.output)
    assert "¥5,000.00" in d.output
    r = run_cli(db, monkeypatch, "issue", str(w.union_a), w.program, "--key", "i1")
    assert r.exit_code == 0, r.output
    zh_ok(r.output)
    assert "已完成" in r.output and "¥900.00" in r.output, r.output
    again = run_cli(db, monkeypatch, "issue", str(w.union_a), w.program, "--key", "i1")
    assert "重复请求" in again.output, again.output


def test_issue_in_english_with_yuan(db, monkeypatch):
    w = build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)
    assert run_cli(db, monkeypatch, "fund", "deposit", str(w.union_a), "5000",
                   "--key", "d1").exit_code == 0
    r = run_cli(db, monkeypatch, "issue", str(w.union_a), w.program, "--key", "i1")
    assert r.exit_code == 0, r.output
    en_ok(r.output)
    assert "completed: 3/3 members, 3 vouchers, ¥900.00" in " ".join(r.output.split())


def test_the_operator_is_named_with_as(db, monkeypatch):
    """`--as NAME` (or CIVICVOUCHER_OPERATOR) is who the audit log names; the OS login stays
    in the entry."""
    from civicvoucher.audit.models import AuditEntry
    from civicvoucher.cli.common import os_user

    w = build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)
    r = run_cli(db, monkeypatch, "fund", "deposit", str(w.union_a), "1000", "--key", "d1",
                "--as", "李明")
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("CIVICVOUCHER_OPERATOR", "王芳")
    r = run_cli(db, monkeypatch, "issue", str(w.union_a), w.program, "--key", "i1")
    assert r.exit_code == 0, r.output
    with db.session() as s:
        got = {a: (actor, (detail or {}).get("os_user")) for a, actor, detail in s.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail))}
    assert got["fund.deposit"] == ("cli:李明", os_user())
    assert got["issuance.create"] == ("cli:王芳", os_user())


def test_capture_and_void_take_a_key_and_an_operator(db, monkeypatch):
    w = build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)
    for args in (("capture", "999", "--key", "c1", "--as", "李明"),
                 ("void", "999", "--key", "v1", "--as", "李明")):
        r = run_cli(db, monkeypatch, *args)
        assert "No such option" not in r.output, r.output
        # no such redemption: the command ran (an error of ours, not Click's parse failure)
        assert getattr(r.exception, "code", None) == "redemption_not_found", r.output
    del w


@pytest.mark.parametrize("command,option", [("settle", "--cutoff"), ("expire", "--as-of"),
                                            ("settle", "--as-of"), ("expire", "--cutoff")])
def test_settle_and_expire_take_the_same_dates(db, monkeypatch, command, option):
    from civicvoucher.settlement.models import SettlementRun
    from civicvoucher.vouchers.models import ExpiryRun

    build_world(db, members=(1, 0, 0))
    clock.set_clock(lambda: datetime(2020, 5, 4, 2))  # 10:00 on 4 May, Beijing
    r = run_cli(db, monkeypatch, command, option, "2020-05-03", "--key", "K")
    assert r.exit_code == 0, (r.output, r.exception)
    assert "2020-05-04 00:00 +08:00" in " ".join(r.output.split())
    table = SettlementRun.cutoff if command == "settle" else ExpiryRun.as_of
    with db.session() as s:
        assert s.execute(select(table)).scalar_one() == datetime(2020, 5, 3, 16)
    late = run_cli(db, monkeypatch, command, option, "2020-05-04", "--key", "K2")
    assert getattr(late.exception, "code", None) == "cutoff_in_future", late.output
