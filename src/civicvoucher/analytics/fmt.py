"""Values for people: money through ``core.money.format_cn`` (8.7亿, 4,800万), shares as
17.2%, ratios as 1.27, a missing value as '—' (never as 0)."""

from __future__ import annotations

from typing import Any

from civicvoucher.analytics.tables import Column
from civicvoucher.core.money import format_cn

MISSING = "—"


def value(v: Any, unit: str) -> str:
    """One value of ``unit`` (fen | count | share | ratio | text | bool) as text."""
    if v is None:
        return MISSING
    if unit == "fen":
        return format_cn(int(v))
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
