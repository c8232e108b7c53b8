"""Issue 8 item 8, CLI side: yuan as people type them, and nothing loose becomes money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from civicvoucher.cli.common import parse_yuan
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.errors import ValidationError


@pytest.mark.parametrize("text, fen", [
    ("300", 30000), ("12.5", 1250), ("12.50", 1250), ("1,234.56", 123456), ("¥0.10", 10),
    ("300元", 30000), (" 7 ", 700), ("0.01", 1), ("1,000,000", 100_000_000),
])
def test_amounts_as_people_write_them(text, fen):
    assert yuan_to_fen(text) == fen
    assert parse_yuan(text, "amount") == fen


@pytest.mark.parametrize("text, reason", [
    ("1.005", "more than two decimals"),
    ("1.500", "more than two decimals"),  # even a trailing zero: fen have two decimals
    ("1e3", "no exponent"), ("1E2", "no exponent"), ("NaN", "NaN"), ("nan", "NaN"),
    ("Infinity", "infinity"), ("inf", "infinity"), ("-5", "no sign"), ("+5", "no sign"),
    ("1 000", "write it like"), ("１００", "write it like"), ("", "write it like"),
    (".5", "write it like"), ("5.", "write it like"), ("0x10", "write it like"),
    ("1,23", "groups of three"), ("12,34.00", "groups of three"), ("1_000", "write it like"),
    ("99999999999999", "too large"),
])
def test_loose_amounts_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        yuan_to_fen(text)
    with pytest.raises(ValidationError, match=reason) as exc:
        parse_yuan(text, "order")
    assert exc.value.field == "order" and str(exc.value).startswith("invalid_input: column order: ")


def test_non_text_amounts():
    assert yuan_to_fen(3) == 300 and yuan_to_fen(Decimal("12.5")) == 1250
    for bad in (0.1, True):
        with pytest.raises(TypeError):
            yuan_to_fen(bad)
    for bad in (Decimal("NaN"), Decimal("Infinity"), Decimal("1.005")):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)
