"""The program template is a valid program file, and examples/program.toml is its text."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

from civicvoucher.programs.spec import load_program_spec, parse_program_spec
from civicvoucher.programs.template import program_template

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.toml"


def test_the_template_parses_and_spans_the_days_asked():
    spec = parse_program_spec(tomllib.loads(program_template(start=date(2027, 1, 1), days=90)))
    (p,) = spec.products
    assert (spec.key, p.denominations_fen, p.threshold_fen) == ("my-program", [10000] * 3, 0)
    # 2027-01-01 00:00 to the end of 2027-03-31, Beijing time, stored as UTC
    assert (p.valid_from.isoformat(), p.expires_at.isoformat()) == (
        "2026-12-31T16:00:00", "2027-03-31T16:00:00")


def test_every_key_of_the_file_is_explained_in_chinese_and_english():
    lines = program_template(start=date(2027, 1, 1)).splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            comments = []
            j = i - 1
            while j >= 0 and lines[j].startswith("#"):
                comments.append(lines[j])
                j -= 1
            text = " ".join(comments)
            assert any("\u4e00" <= ch <= "\u9fff" for ch in text), line
            assert any(ch.isascii() and ch.isalpha() for ch in text), line


def test_the_example_file_is_the_template_text():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text == program_template(start=date(2027, 1, 1), days=90, key="xiaodian-2027",
                                    name="小店区2027年职工消费券")
    assert load_program_spec(EXAMPLE).key == "xiaodian-2027"
