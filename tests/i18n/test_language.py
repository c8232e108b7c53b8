"""The language plumbing: who decides the language, how a message is said in it, and that a
template can never reach into the objects it is given."""

from __future__ import annotations

import re

import pytest

from civicvoucher import i18n
from civicvoucher.errors import ImportRejected, NotFound, RowError, ValidationError
from civicvoucher.i18n import Msg, Term, Text, Yuan, localize, msg, nmsg

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("env", "lang"), [
    ({}, "zh"),
    ({"LANG": "C.UTF-8"}, "zh"),
    ({"LANG": "POSIX"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LC_ALL": "en_GB", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL before LANG, as in POSIX
    ({"LC_ALL": "C", "LANG": "en_US.UTF-8"}, "zh"),  # the first set variable decides
    ({"LANGUAGE": "fr:en", "LANG": "zh_CN"}, "en"),  # LANGUAGE lists: the first known wins
    ({"CIVICVOUCHER_LANG": "zh", "LANG": "en_US.UTF-8"}, "zh"),
    ({"CIVICVOUCHER_LANG": "english"}, "en"),
])
def test_language_from_environment(env, lang):
    assert i18n.language_from_env(env) == lang


@pytest.mark.parametrize(("header", "lang"), [
    (None, "zh"), ("", "zh"), ("*", "zh"), ("fr-FR", "zh"),
    ("en", "en"), ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("en;q=0.5, zh-CN;q=0.6", "zh"), ("zh;q=0, en", "en"), ("zh;q=0", "zh"),
    ("en;q=abc, zh-TW", "zh"), ("fr, en;q=0.1", "en"),
])
def test_language_from_accept_language(header, lang):
    assert i18n.language_from_header(header) == lang


def test_a_message_is_its_english_and_says_itself_in_chinese():
    m = msg("row {row}, column {field}", row=3, field="union")
    assert isinstance(m, str) and m == "row 3, column union"
    assert m.localized("zh") == "第 3 行，union 列"
    assert m.localized("en") == "row 3, column union"
    with i18n.language("zh"):
        assert localize(m) == "第 3 行，union 列"


def test_amounts_are_yuan_in_both_languages():
    m = msg("{a} of {b}", a=Yuan(8000), b=Yuan(15_000_00, compact=True))
    assert m == "¥80.00 of ¥15,000.00"
    # (no translation of this template: the English words stay, the amounts follow zh)
    assert m.localized("zh") == "¥80.00 of 1.5万"
    assert msg("{a}", a=Yuan(8_7000_0000_00, compact=True)).localized("zh") == "8.7亿"
    # compact only when exact: a message about money never rounds it
    assert msg("{a}", a=Yuan(12_345_67, compact=True)).localized("zh") == "¥12,345.67"
    assert msg("{a}", a=Yuan(4800_0000_00, compact=True)).localized("zh") == "4,800万"


def test_counts_inflect_in_english_only():
    assert nmsg("{n} voucher", "{n} vouchers", 1) == "1 voucher"
    assert nmsg("{n} voucher", "{n} vouchers", 12) == "12 vouchers"


def test_a_template_cannot_reach_into_its_parameters():
    # text that reached a template by mistake ("{a.__class__}") is shown, not evaluated
    assert msg("x {a.__class__.__mro__}", a=1) == "x {a.__class__.__mro__}"
    assert msg("x {a[0]}", a=[1]) == "x {a[0]}"
    assert msg("{missing} y", a=1) == "{missing} y"


def test_a_message_survives_pickling():
    import pickle

    m = msg("row {row}, column {field}", row=2, field="x")
    back = pickle.loads(pickle.dumps(m))
    assert back == m and isinstance(back, Msg) and back.localized("zh") == "第 2 行，x 列"


def test_terms_and_text_parameters():
    from civicvoucher.i18n import terms

    terms.register("test-colour", {"light_red": "浅红"})
    assert Term("light_red", "test-colour").localized("zh") == "浅红"
    assert Term("light_red", "test-colour").localized("en") == "light red"
    assert msg("{t}", t=Text(msg("row {row}", row=1))).localized("zh") == "第 1 行"


def test_errors_say_where_and_why_in_the_language():
    exc = ValidationError(msg("row {row}", row=9), field="amount", row=9)
    assert exc.where("zh") == "第 9 行，amount 列"
    assert exc.where("en") == "row 9, column amount"
    assert str(NotFound(msg("column {field}", field="x"))) == "not_found: column x"
    rejected = ImportRejected([RowError(4, "name", msg("column {field}", field="name")),
                               RowError(5, "name", "x")], total_rows=5)
    zh = rejected.localized("zh")
    assert "第 4 行" in zh and "未导入任何数据" in zh and not re.search(r"[a-z]{3,} [a-z]{3,}", zh)
    assert not CJK.search(rejected.localized("en"))


@pytest.fixture
def cli(monkeypatch, capsys):
    """``civicvoucher ARGS`` in this process, through the real entry point (``run``: it reads
    ``--lang`` off the line before Click parses), with no language in the environment."""
    from types import SimpleNamespace

    from civicvoucher.cli.main import run

    def call(*args, env_lang=None):
        for var in ("CIVICVOUCHER_LANG", "LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"):
            monkeypatch.delenv(var, raising=False)
        if env_lang:
            monkeypatch.setenv("CIVICVOUCHER_LANG", env_lang)
        monkeypatch.setenv("COLUMNS", "200")
        capsys.readouterr()
        try:
            run(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return call


def test_cli_help_and_parse_errors_speak_the_language(cli):
    zh = cli("--help")
    assert "显示本帮助后退出" in zh.stdout and "命令" in zh.stdout
    en = cli("--lang", "en", "--help")
    assert "Show this message and exit." in en.stdout
    assert not CJK.search(en.stdout.replace("消费券", "")), en.stdout  # the tagline names it
    # --lang anywhere on the line, even after the subcommand; Click's own errors translated
    bad = cli("fund", "deposit", "--lang", "zh")
    assert bad.returncode == 2 and "缺少参数" in bad.stderr, bad.stderr
    bad_en = cli("fund", "deposit", env_lang="en")
    assert "Missing argument" in bad_en.stderr, bad_en.stderr
    unknown = cli("fund", "deposit", "x", "y", "--bogus")
    assert "没有这个选项" in unknown.stderr, unknown.stderr


def test_cli_refuses_an_unknown_language(cli):
    out = cli("--lang", "fr", "--version")
    assert out.returncode == 0 or "zh" in out.stderr  # --lang fr: English fallback, no crash


def test_the_compiled_catalogue_is_kept_and_never_stale(tmp_path, monkeypatch):
    from civicvoucher.i18n import catalogue

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    catalogue.translations.cache_clear()
    try:
        assert catalogue.translations("zh").gettext("Sign out") == "退出登录"
        (kept,) = (tmp_path / "cache" / "civicvoucher").glob("*.mo")
        kept.write_bytes(b"not a catalogue")  # a damaged copy: compiled again, not trusted
        catalogue.translations.cache_clear()
        assert catalogue.translations("zh").gettext("Sign out") == "退出登录"
        # a .po file that changes changes the name: the old copy is never read for it
        first = catalogue._cache_file("zh")
        po = catalogue.po_files("zh")[0]
        stat = po.stat()
        import os

        os.utime(po, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        try:
            assert catalogue._cache_file("zh") != first
        finally:
            os.utime(po, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        # a cache folder that cannot be written: compiled in memory all the same
        monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")
        catalogue.translations.cache_clear()
        assert catalogue.translations("zh").gettext("Sign out") == "退出登录"
    finally:
        catalogue.translations.cache_clear()
