"""The catalogue is complete: every marked message, every --help text and Typer's own words
have their Chinese, with the same placeholders; no error is raised with text no catalogue can
hold. A message added without its translation fails here."""

from __future__ import annotations

from civicvoucher.i18n import check


def test_every_message_has_its_chinese():
    problems = check.problems("zh")
    assert not problems, "\n".join(problems[:40])


def test_no_error_is_raised_with_untranslatable_text():
    found = check.unmarked_raises()
    assert not found, "\n".join(found[:40])


def test_the_check_sees_messages_help_and_library_words():
    # a check that found nothing would pass vacuously
    wanted = check.wanted()
    where = {w.where.split(":")[0] for w in wanted}
    assert len(wanted) > 800
    assert "cli" in where and "click/typer" in where and "vouchers/rules.py" in where


def test_placeholders_are_compared():
    assert check.placeholders("{a} of {b:,} {{x}}") == {"a", "b"}
    assert check.placeholders("[default: {}]") == {""}
