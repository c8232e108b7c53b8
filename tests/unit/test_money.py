"""Money is integer fen: floats are refused, totals survive splitting, amounts read like
officials write them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicvoucher.core.money import allocate, fen, format_cn, format_yuan, yuan_to_fen


@pytest.mark.parametrize("bad", [1.5, 0.1 + 0.2, float("nan"), True, "300", Decimal("3")])
def test_the_money_type_refuses_anything_but_int(bad):
    with pytest.raises(TypeError):
        fen(bad)


def test_yuan_are_parsed_exactly_and_floats_refused():
    assert yuan_to_fen("300") == 30000
    assert yuan_to_fen("1,234.56") == 123456
    assert yuan_to_fen("¥0.10") == 10
    assert yuan_to_fen(Decimal("12.5")) == 1250
    with pytest.raises(TypeError):
        yuan_to_fen(0.1)
    with pytest.raises(ValueError):
        yuan_to_fen("1.005")  # fen have two decimals; a third is an error, not a rounding
    with pytest.raises(ValueError):
        yuan_to_fen("三百")


@pytest.mark.parametrize(("fen_", "text"), [
    (870_000_000 * 100, "8.7亿"), (48_000_000 * 100, "4,800万"), (150_000_000 * 100, "1.5亿"),
    (278_000_000 * 100, "2.78亿"), (30000, "300元"), (123456, "1,234.56元"), (0, "0元"),
    (-24_800_000 * 100, "-2,480万"), (2_328_000_000 * 100, "23.28亿"),
])
def test_amounts_read_the_way_officials_write_them(fen_, text):
    assert format_cn(fen_) == text


def test_exact_yuan_for_receipts():
    assert format_yuan(123456) == "¥1,234.56"
    assert format_yuan(-5) == "-¥0.05"


@given(total=st.integers(-10**12, 10**12),
       weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=30).filter(any))
def test_allocate_keeps_the_total_and_the_proportions(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    wsum = sum(weights)
    for p, w in zip(parts, weights, strict=True):
        assert abs(p - total * w / wsum) < 1 + 1e-9 * abs(total)
