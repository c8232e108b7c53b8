"""Values for people: money as officials read it (¥1,234.56 below 1万, then 1.5万, 4,800万,
8.7亿), shares as 17.2%, ratios as 1.27, a missing value as '—' (never as 0).

A column of amounts is shown in one unit (元, 万元 or 亿元, named in its header, chosen by its
largest value), so a reader comparing rows never compares 600元 with 1万: ``money_unit`` and
``in_unit``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from civicvoucher.analytics.tables import Column
from civicvoucher.core.money import FEN_PER_YUAN, WAN, YI, format_yuan

MISSING = "—"


def _trimmed(q: Decimal) -> str:
    """1,234.50 → 1,234.5; 4,800.00 → 4,800."""
    text = f"{q:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(amount: int) -> str:
    """¥1,234.56 below 1万 yuan; 1.5万 / 4,800万 / 859.37万 below 1亿; 8.7亿 / 2.78亿 above
    (at most two decimals, trailing zeros dropped, rounded half up)."""
    a = abs(int(amount))
    if a < WAN:
        return format_yuan(int(amount))
    sign = "-" if amount < 0 else ""
    unit, word = (YI, "亿") if a >= YI else (WAN, "万")
    q = (Decimal(a) / unit).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{sign}{_trimmed(q)}{word}"


@dataclass(frozen=True)
class MoneyUnit:
    """The one unit of a column of amounts."""

    zh: str  # 元 | 万元 | 亿元
    en: str
    fen: int  # fen per unit
    decimals: int


YUAN = MoneyUnit("元", "yuan", FEN_PER_YUAN, 2)
WAN_YUAN = MoneyUnit("万元", "10,000 yuan", WAN, 2)
YI_YUAN = MoneyUnit("亿元", "100 million yuan", YI, 2)


def money_unit(values: Iterable[int | None]) -> MoneyUnit:
    """亿元 when the largest amount is at least 1亿, 万元 from 1万, else 元 (whole yuan when
    every amount is, else with fen)."""
    found = [abs(int(v)) for v in values if v is not None]
    top = max(found, default=0)
    if top >= YI:
        return YI_YUAN
    if top >= WAN:
        return WAN_YUAN
    if all(v % FEN_PER_YUAN == 0 for v in found):
        return MoneyUnit("元", "yuan", FEN_PER_YUAN, 0)
    return YUAN


def in_unit(amount: int | None, unit: MoneyUnit) -> str:
    """An amount as a plain number in ``unit``: 0.03 (万元), 1,234.56, 8.70."""
    if amount is None:
        return MISSING
    q = (Decimal(int(amount)) / unit.fen).quantize(Decimal(1).scaleb(-unit.decimals),
                                                   rounding=ROUND_HALF_UP)
    return f"{q:,f}"


def value(v: Any, unit: str) -> str:
    """One value of ``unit`` (fen | count | share | ratio | text | bool) as text."""
    if v is None:
        return MISSING
    if unit == "fen":
        return money(int(v))
    if unit == "count":
        return f"{int(v):,}"
    if unit == "share":
        return f"{v * 100:.1f}%"
    if unit == "ratio":
        return f"{v:.2f}"
    if unit == "bool":
        return "是" if v else "否"
    return str(v)


def signed(v: Any, unit: str) -> str:
    """A deviation: '+0.3亿', '-1,200', '+2.1 pp' (percentage points for shares)."""
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    if unit == "share":
        text = f"{abs(v) * 100:.2f} pp"
    elif unit == "ratio":
        text = f"{abs(v):.4f}" if abs(v) < 0.1 else f"{abs(v):.2f}"
    else:
        text = value(abs(v), unit)
    return ("-" if v < 0 else "+") + text


def cell(column: Column, row: dict[str, Any]) -> str:
    """The text of ``row[column.key]``; kind 'unit' takes the unit from the row."""
    unit = row.get("unit", "text") if column.kind == "unit" else column.kind
    v = row.get(column.key)
    if column.key in ("deviation", "difference", "delta"):
        return signed(v, unit)
    if column.key in ("deviation_pct", "delta_pct"):
        return MISSING if v is None else f"{v * 100:+.1f}%"
    if column.key == "computed" and v is not None and unit in ("share", "ratio"):
        # a value computed from rounded figures: show the digits the rounding hides
        return f"{v * 100:.2f}%" if unit == "share" else f"{v:.4f}"
    return value(v, unit)


def deviation_class(pct: float | None) -> str:
    """'ok' within 5%, 'warn' within 20%, 'bad' beyond, 'none' when unknown."""
    if pct is None:
        return "none"
    a = abs(pct)
    return "ok" if a <= 0.05 else "warn" if a <= 0.20 else "bad"
