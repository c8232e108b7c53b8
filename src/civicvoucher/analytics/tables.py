"""The report's shape: named tables (rows of plain values plus column order) and headlines.

Values stay raw (money as integer fen, ratios as floats) so CSV/XLSX keep full precision and
tests compare exact numbers; formatting for people happens only when rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# Column kinds: how a renderer formats a value. "unit" means: look at the row's "unit" cell.
KINDS = frozenset({"text", "fen", "count", "ratio", "share", "unit", "bool"})

LEVELS = ("province", "city", "county")
LEVEL_LABEL = {
    "province": ("省级", "province"),
    "city": ("市级", "city"),
    "county": ("县级", "county"),
    "total": ("合计", "total"),
}
FORM_LABEL = {"digital": ("数字券（云闪付）", "digital"), "paper": ("纸质券", "paper")}


def level_order(level: str) -> tuple[int, str]:
    """Province, city, county, then anything unexpected, then the total row."""
    if level == "total":
        return (len(LEVELS) + 1, level)
    return (LEVELS.index(level), level) if level in LEVELS else (len(LEVELS), level)


@dataclass(frozen=True)
class Column:
    key: str
    label_zh: str
    label_en: str
    kind: str = "text"
    code: bool = False  # a machine key: written to CSV/XLSX, not shown on the page

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")


@dataclass(frozen=True)
class Table:
    """One named table: ``rows`` are dicts keyed by ``columns[i].key``, in display order."""

    name: str
    title_zh: str
    title_en: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    note_zh: str = ""
    note_en: str = ""

    @property
    def column_order(self) -> list[str]:
        return [c.key for c in self.columns]

    def row(self, **match: Any) -> dict[str, Any]:
        """The one row whose cells equal ``match`` (e.g. ``row(level="county")``)."""
        found = [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]
        if len(found) != 1:
            raise KeyError(f"{self.name}: {len(found)} rows match {match}")
        return found[0]


@dataclass(frozen=True)
class Headline:
    """One headline figure at sample size; ``full`` is it scaled to the whole province."""

    key: str
    label_zh: str
    label_en: str
    unit: str  # fen | count | ratio | share
    value: int | float | None
    full: int | float | None


@dataclass(frozen=True)
class Scope:
    """What a report covers: the whole program, or one organisation's subtree."""

    org_id: int | None = None  # None: every union of the program
    name_zh: str = "全部单位"
    name_en: str = "all organisations"
    level: str | None = None  # the root's level: province | city | county | union
    code: str | None = None  # its division code or USCC
    word_zh: str = "合计"  # the total's label: 全省, 全市, 全县, 本单位, 合计
    word_en: str = "all levels"


@dataclass(frozen=True)
class Notice:
    """Something a reader must know before reading the numbers (no issuance yet, ...)."""

    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class Report:
    """A program's report. ``scale`` < 1 means the rows are a simulated sample: every table
    holds sample values, and ``Headline.full`` is the value at full size (value / scale)."""

    program_key: str
    program_name: str
    scale: float
    tables: dict[str, Table]
    headline: dict[str, Headline] = field(default_factory=dict)
    program_id: int = 0
    scope: Scope = field(default_factory=Scope)
    notices: tuple[Notice, ...] = ()
    scenario: str | None = None  # the simulated scenario, for a sample
    overrides: dict[str, str] = field(default_factory=dict)  # its what-if settings
    # when it was computed (naive UTC); not part of what the report *is*
    generated_at: datetime | None = field(default=None, compare=False)

    def table(self, name: str) -> Table:
        return self.tables[name]

    @property
    def sample(self) -> bool:
        """True for a simulated sample: its tables must never be read as real figures."""
        return self.scale < 1

    @property
    def has_comparison(self) -> bool:
        return "comparison" in self.tables


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when there is nothing to divide by (shown as '—', never as 0)."""
    if num is None or not den:
        return None
    return num / den


def scale_up(value: int, scale: float) -> int:
    """A sample count or fen amount at full size: value / scale, rounded half up to an int.

    Decimal keeps it exact: ``scale`` such as 0.01 is read as the decimal the caller wrote.
    """
    q = Decimal(value) / Decimal(str(scale))
    return int(q.to_integral_value(rounding=ROUND_HALF_UP))


def headline_table(report: Report) -> Table:
    """The headline figures as a table (for CSV/XLSX and the page). A sample has two value
    columns: the sample's own, and at full size (value / scale)."""
    cols = [
        Column("key", "指标代码", "key", code=True),
        Column("label_zh", "指标", "figure (zh)"),
        Column("label_en", "Figure", "figure (en)", code=True),
        Column("unit", "单位", "unit", code=True),
        Column("value", "样本值" if report.sample else "数值",
               "sample value" if report.sample else "value", "unit"),
    ]
    if report.sample:
        cols.append(Column("full", "全规模", "at full size", "unit"))
    rows = [
        dict(key=h.key, label_zh=h.label_zh, label_en=h.label_en, unit=h.unit, value=h.value,
             full=h.full)
        for h in report.headline.values()
    ]
    return Table("headline", "主要指标", "Headline figures", tuple(cols), rows)
