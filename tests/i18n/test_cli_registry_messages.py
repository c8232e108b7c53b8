"""The registry commands (org / member / merchant) in both languages, their ``--key`` (a retry
prints the first result and writes nothing twice), and the member import's reject file (the
user's own headers, ID numbers masked, rows counted, not errors)."""

from __future__ import annotations

import csv
import re

import pytest
from sqlalchemy import func, select

from civicvoucher import i18n
from civicvoucher.audit.models import AuditEntry
from civicvoucher.cli import registry
from civicvoucher.core.tabular import write_table
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from tests.integration.test_imports import HEADER, rows
from tests.world import build_world, run_cli

CJK = re.compile(r"[\u4e00-\u9fff]")
SENTENCE = re.compile(r"[A-Za-z]{3,} [A-Za-z]{3,}")


@pytest.fixture(autouse=True)
def _no_language_from_an_earlier_run(monkeypatch):
    """``main.run`` keeps the --lang it read in a module global; run_cli (no run()) must not
    inherit the one of the help test before it."""
    from civicvoucher.cli import main

    monkeypatch.setattr(main, "_argv_language", None)


def _audits(db, action: str) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action == action)).scalar()


def _count(db, model) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


def _body(output: str) -> str:
    """The command's answer without the progress bar and the printed fresh key."""
    return "\n".join(line for line in output.splitlines()
                     if "━" not in line and "idempotency key" not in line)


# --- --help in each language -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["org", "merchant"])
def test_import_help_is_in_one_language_and_the_catalogue_matches_the_notes(kind):
    summary = registry.IMPORT_SUMMARIES[kind]
    en, zh = registry.import_help(kind, summary), registry.import_help(kind, summary, "zh")
    assert i18n.gettext(en, "zh") == zh  # the catalogue's Chinese is the notes' Chinese
    for _canonical, _head, note in registry.template_columns(kind):
        assert note.en in en and note.zh not in en
        assert note.zh in zh and note.en not in zh
    assert "(required)" not in en and "(required)" not in zh


@pytest.mark.parametrize("path", [("org", "import"), ("member", "import"),
                                  ("merchant", "status"), ("voucher", "list"), ("report",)])
def test_help_of_the_commands_follows_the_language(path, capsys, monkeypatch):
    from civicvoucher.cli.main import run

    monkeypatch.setenv("COLUMNS", "200")
    texts = {}
    for lang in ("zh", "en"):
        with pytest.raises(SystemExit) as done:
            run(["--lang", lang, *path, "--help"])
        assert done.value.code == 0
        texts[lang] = capsys.readouterr().out
    if path != ("org", "import"):  # the import help's column headers are Chinese data
        # accepted input words (未使用/已使用, 填写说明 the sheet's name) are data, not prose
        en = re.sub(r"[\u4e00-\u9fff]+(?:/[\u4e00-\u9fff]+)+|填写说明", "", texts["en"])
        assert not CJK.search(en), texts["en"]
    assert CJK.search(texts["zh"])
    if "--key" in texts["en"]:
        assert "幂等键" in texts["zh"]


# --- output in each language -------------------------------------------------------------

@pytest.mark.zh
def test_member_import_speaks_chinese_by_default(db, monkeypatch, tmp_path):
    monkeypatch.delenv(i18n.ENV, raising=False)
    w = build_world(db, members=(0, 0, 0))
    path = tmp_path / "roster.csv"
    write_table(path, HEADER, rows(w.union_uscc["A"], 3))
    monkeypatch.setenv(i18n.ENV, "zh")
    r = run_cli(db, monkeypatch, "member", "import", path, "--key", "m-zh")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if "导入" in x and "行" in x)
    assert "已导入 3 名" in line and "共 3 行，退回 0 行" in line
    assert not SENTENCE.search(line), line


def test_merchant_status_words_in_each_language(db, monkeypatch):
    w = build_world(db)
    shop = next(iter(w.merchants.values()))
    monkeypatch.setenv(i18n.ENV, "en")
    r = run_cli(db, monkeypatch, "merchant", "status", str(shop), "suspended")
    assert r.exit_code == 0, r.output
    assert ": suspended" in r.output and not CJK.search(_body(r.output).split(":")[-1])
    monkeypatch.setenv(i18n.ENV, "zh")
    r = run_cli(db, monkeypatch, "merchant", "status", str(shop), "active")
    assert r.exit_code == 0, r.output
    assert "超市: 正常" in _body(r.output), r.output


def test_an_unknown_merchant_status_filter_in_both_languages():
    from civicvoucher.errors import ValidationError

    with pytest.raises(ValidationError) as exc:
        registry.merchant_list(status="bogus", county=None, category=None, name=None,
                               limit=10, after=None, file=None)
    zh, en = exc.value.localized("zh"), exc.value.localized("en")
    assert CJK.search(zh) and not SENTENCE.search(zh.replace("'bogus'", "")), zh
    assert not CJK.search(en.replace("待审核, 正常 or 暂停", "")), en


# --- --key: a retry replays, writes nothing twice ----------------------------------------

def test_org_import_retried_with_its_key_prints_the_first_result_once(db, monkeypatch,
                                                                      tmp_path):
    path = tmp_path / "orgs.csv"
    assert run_cli(db, monkeypatch, "org", "template", path).exit_code == 0
    first = run_cli(db, monkeypatch, "org", "import", path, "--key", "orgs-1")
    assert first.exit_code == 0, first.output
    orgs = _count(db, Org)
    again = run_cli(db, monkeypatch, "org", "import", path, "--key", "orgs-1")
    assert again.exit_code == 0, again.output  # not "exists already"
    assert "imported 4 organisations" in again.output and "replayed" in again.output
    assert _body(first.output) in _body(again.output)
    assert (_count(db, Org), _audits(db, "org.import")) == (orgs, 1)
    other = tmp_path / "other.csv"
    other.write_bytes(path.read_bytes() + b"\n")
    r = run_cli(db, monkeypatch, "org", "import", other, "--key", "orgs-1")
    assert r.exit_code != 0 and isinstance(r.exception, Exception)
    assert getattr(r.exception, "code", None) == "idempotency_key_reused"


def test_merchant_import_and_status_retried_with_their_keys(db, monkeypatch, tmp_path):
    build_world(db)
    path = tmp_path / "merchants.csv"
    assert run_cli(db, monkeypatch, "merchant", "template", path).exit_code == 0
    before = _count(db, Merchant)
    outs = [run_cli(db, monkeypatch, "merchant", "import", path, "--key", "shops-1")
            for _ in range(2)]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    assert "registered 2 merchants" in outs[1].output
    assert _body(outs[0].output) in _body(outs[1].output)
    assert (_count(db, Merchant), _audits(db, "merchant.import")) == (before + 2, 1)
    shop = max(int(x) for x in re.findall(r"│ (\d+) ", outs[0].output))
    for _ in range(2):
        r = run_cli(db, monkeypatch, "merchant", "status", str(shop), "active", "--key", "st-1")
        assert r.exit_code == 0, r.output
    r = run_cli(db, monkeypatch, "merchant", "status", str(shop), "suspended", "--key", "st-1")
    assert getattr(r.exception, "code", None) == "idempotency_key_reused"
    assert _audits(db, "merchant.status") == 1


def test_member_import_retried_with_its_key_is_audited_once(db, monkeypatch, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    path = tmp_path / "roster.csv"
    write_table(path, HEADER, rows(w.union_uscc["A"], 3))
    outs = [run_cli(db, monkeypatch, "member", "import", path, "--key", "m-1")
            for _ in range(2)]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    assert "3 imported" in outs[1].output and "3 imported" in outs[0].output
    assert (_count(db, Member), _audits(db, "member.import")) == (3, 1)


# --- the reject file ---------------------------------------------------------------------

def test_reject_file_keeps_the_users_headers_masks_id_numbers_and_counts_rows(
        db, monkeypatch, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    data = rows(w.union_uscc["A"], 4)
    bad_id = data[1][1]
    data[1][1] = bad_id[:-1] + ("0" if bad_id[-1] != "0" else "1")  # a wrong check digit
    data[1][4] = "未知状态"                                           # and a bad status
    header = ["姓名", "公民身份号码", "手机号", "工会代码", "会员状态"]  # the user's own words
    path, reject = tmp_path / "roster.csv", tmp_path / "bad.csv"
    write_table(path, header, data)
    r = run_cli(db, monkeypatch, "member", "import", path, "--reject-file", reject)
    assert r.exit_code == 0, r.output
    assert "1 rejected of 4 rows" in r.output  # one row, though it has two errors
    with reject.open(encoding="utf-8-sig") as fh:
        got = list(csv.reader(fh))
    assert got[0][:5] == header and got[0][5:] == ["row", "error"]
    assert len(got) == 2 and got[1][5] == "3"
    assert data[1][1] not in "".join(got[1]) and got[1][1] == data[1][1][:3] + "*" * 11 \
        + data[1][1][-4:]
    assert "公民身份号码" in got[1][6] and "会员状态" in got[1][6]
