"""The article's published figures: beside ours, and checked against themselves.

``published`` is the ``[published]`` section of a scenario file (amounts in whole yuan). The
article rounds to 0.1亿 or 0.01亿 and its tables do not all add up; ``consistency_table``
computes each identity the figures should satisfy and says whether it holds exactly, holds
after rounding to the precision the article used for the figure, or does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from civicvoucher.analytics.issuance import GUARANTEE_GROUPS
from civicvoucher.analytics.tables import LEVEL_LABEL, LEVELS, Column, Headline, Table
from civicvoucher.core.money import FEN_PER_YUAN, format_cn

_AMOUNT_SETS = {
    "expected_yuan": ("应发额", "expected"),
    "issued_digital_yuan": ("数字券实发", "issued digital"),
    "issued_paper_yuan": ("纸质券实发", "issued paper"),
    "issued_total_yuan": ("实发合计", "issued total"),
    "shortfall_yuan": ("缺口", "shortfall"),
}
_PARTS = (*LEVELS, "total")


def _get(published: Mapping[str, Any], *path: str) -> Any:
    node: Any = published
    for p in path:
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def _headline_key(set_name: str, level: str) -> str:
    base = {"expected_yuan": "expected_fen", "issued_digital_yuan": "issued_digital_fen",
            "issued_paper_yuan": "issued_paper_fen", "issued_total_yuan": "issued_fen",
            "shortfall_yuan": "shortfall_fen"}[set_name]
    return f"{base}_{level}"


def _over_cap_note(published: Mapping[str, Any], level: str) -> str:
    """Why a level's per-form figures cannot both be met, when the article's own digital +
    paper exceed what its members could be issued (province: 0.48 + 2.3 > 90万 x 300)."""
    digital = _get(published, "issued_digital_yuan", level)
    paper = _get(published, "issued_paper_yuan", level)
    members = _get(published, "members", level)
    per = _get(published, "voucher_yuan_per_member")
    if None in (digital, paper, members, per) or digital + paper <= members * per:
        return ""
    both = format_cn((digital + paper) * FEN_PER_YUAN)
    cap = format_cn(members * per * FEN_PER_YUAN)
    return (f"文章数字券+纸质券={both}，超过会员数×面值上限{cap}，两者不能同时达到；本系统按在册会员发放 / "
            f"the article's digital + paper ({both}) exceed members x face value ({cap}): "
            "both cannot hold; we issue to the members registered")


def comparisons(published: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(headline key, published value in our units, note) for every figure the article gives."""
    out: list[tuple[str, Any, str]] = []
    for level in _PARTS:
        v = _get(published, "members", level)
        if v is not None:
            out.append((f"members_{level}", int(v), ""))
    for set_name in _AMOUNT_SETS:
        for level in _PARTS:
            v = _get(published, set_name, level)
            if v is not None:
                note = (_over_cap_note(published, level)
                        if set_name in ("issued_digital_yuan", "issued_paper_yuan") else "")
                out.append((_headline_key(set_name, level), int(v) * FEN_PER_YUAN, note))
    simple = [
        ("digital_share", ("digital_share",), 1, ""),
        ("paper_share", ("paper_share",), 1, ""),
        ("digital_redeemed_fen", ("issued_digital_yuan", "total"), FEN_PER_YUAN,
         "文章以数字券发放额作为使用额 / the article takes all digital vouchers as spent"),
        ("digital_order_fen", ("digital_spending_driven_yuan",), FEN_PER_YUAN, ""),
        ("leverage_digital", ("leverage",), 1, ""),
        ("tourism_cards", ("tourism_cards",), 1, "文章：近17万张 / the article: almost 170,000"),
    ]
    for key, path, factor, note in simple:
        v = _get(published, *path)
        if v is not None:
            out.append((key, int(v) * factor if factor != 1 else v, note))
    slugs = {key: slug for key, slug, _, _ in GUARANTEE_GROUPS}
    for group, n in (_get(published, "guarantee_groups") or {}).items():
        if group in slugs:
            out.append((f"guarantee_counties_{slugs[group]}", int(n), ""))
    return out


def comparison_table(headline: Mapping[str, Headline], published: Mapping[str, Any]) -> Table:
    """Every headline figure at full size beside the article's, with absolute and % deviation."""
    rows = []
    for key, pub, note in comparisons(published):
        h = headline.get(key)
        if h is None:
            continue
        ours = h.full
        dev = None if ours is None else ours - pub
        if h.unit in ("fen", "count") and dev is not None:
            dev = int(dev)
        pct = None if dev is None or not pub else dev / pub
        rows.append(dict(key=key, label_zh=h.label_zh, label_en=h.label_en, unit=h.unit,
                         ours=ours, published=pub, deviation=dev, deviation_pct=pct, note=note))
    cols = (
        Column("key", "指标代码", "key", code=True),
        Column("label_zh", "指标", "figure"),
        Column("label_en", "Figure", "figure (en)", code=True),
        Column("unit", "单位", "unit", code=True),
        Column("ours", "本系统（全省规模）", "ours, at full size", "unit"),
        Column("published", "文章公布", "published", "unit"),
        Column("deviation", "偏差", "deviation", "unit"),
        Column("deviation_pct", "偏差%", "deviation %", "share"),
        Column("note", "说明", "note"),
    )
    return Table(
        "comparison", "与文章公布数字对照", "Ours (scaled to full size) vs the article", cols, rows,
        note_zh="样本数字按抽样比例放大到全省规模后与文章对照；比率不放大。",
        note_en="Sample figures are divided by the sampling scale; ratios are not scaled.",
    )


# ------------------------------------------------------------------ the article vs itself


def precision(value: int, *, cap: int) -> int:
    """The rounding unit a published integer implies: 2.7亿 → 0.1亿; 0.48亿 → 0.01亿.

    The largest power of ten dividing ``value``, at most ``cap`` (0 is taken at ``cap``).
    """
    if value == 0:
        return cap
    unit = 1
    while unit < cap and value % (unit * 10) == 0:
        unit *= 10
    return unit


def _round_to(value: Decimal, unit: Decimal) -> Decimal:
    return (value / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP) * unit


def _decimals_unit(x: float) -> Decimal:
    """0.172 → 0.001; 1.27 → 0.01 (the precision a ratio was published with)."""
    exp = Decimal(str(x)).normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(int(exp), 0))


@dataclass(frozen=True)
class Check:
    """One identity: ``computed`` (from other published figures) ``relation`` ``stated``.

    Amounts are in yuan here, as published; ``unit`` says how to show them.
    """

    name: str
    label_zh: str
    label_en: str
    unit: str  # fen | count | share | ratio
    computed: Decimal
    relation: str  # "eq" or "le"
    stated: Decimal
    precision: Decimal  # rounding unit the article used for ``stated``

    @property
    def verdict(self) -> str:
        if self.relation == "le":
            return "consistent" if self.computed <= self.stated else "exceeds"
        if self.computed == self.stated:
            return "consistent"
        rounded = _round_to(self.computed, self.precision)
        return "rounding" if rounded == self.stated else "inconsistent"

    def row(self) -> dict[str, Any]:
        factor = FEN_PER_YUAN if self.unit == "fen" else 1
        c, s = self.computed * factor, self.stated * factor
        return dict(check=self.name, label_zh=self.label_zh, label_en=self.label_en,
                    unit=self.unit, computed=_plain(c, self.unit), relation=self.relation,
                    relation_sym=RELATION_SYMBOL[self.relation],
                    stated=_plain(s, self.unit), difference=_plain(c - s, self.unit),
                    verdict=self.verdict, verdict_zh=VERDICT_LABEL[self.verdict])


RELATION_SYMBOL = {"eq": "＝", "le": "≤"}  # full-width '＝': a cell starting '=' is a formula
VERDICT_LABEL = {
    "consistent": "相符",
    "rounding": "舍入后相符",
    "inconsistent": "不符",
    "exceeds": "超过上限",
}
_COARSEST = 10_000_000  # amounts are stated to 0.1亿 (10,000,000 yuan) at the coarsest
_COUNT_COARSEST = 10_000  # member counts to 1万


def _int_check(P: Mapping[str, Any], name: str, zh: str, en: str, unit: str,
               terms: list[tuple[tuple[str, ...], int]], target: tuple[str, ...] | Decimal,
               relation: str = "eq") -> Check | None:
    """sum(sign x published[term]) relation published[target] (or a fixed bound)."""
    vals = [_get(P, *path) for path, _ in terms]
    stated = target if isinstance(target, Decimal) else _get(P, *target)
    if any(v is None for v in vals) or stated is None:
        return None
    computed = Decimal(sum(int(v) * sign for v, (_, sign) in zip(vals, terms, strict=True)))
    cap = _COARSEST if unit == "fen" else _COUNT_COARSEST
    return Check(name, zh, en, unit, computed, relation, Decimal(int(stated)),
                 Decimal(precision(int(stated), cap=cap)))


def consistency_checks(published: Mapping[str, Any]) -> list[Check]:
    """Identities the article's figures should satisfy, each computed from ``published``."""
    P = published
    found: list[Check | None] = []
    per = _get(P, "voucher_yuan_per_member")
    for lv in _PARTS:
        lzh = LEVEL_LABEL[lv][0]
        dp = [(("issued_digital_yuan", lv), 1), (("issued_paper_yuan", lv), 1)]
        found.append(_int_check(P, f"digital_plus_paper_{lv}", f"{lzh}：数字券 + 纸质券 = 实发合计",
                                f"{lv}: digital + paper = issued total", "fen", dp,
                                ("issued_total_yuan", lv)))
        members = _get(P, "members", lv)
        if per is not None and members is not None:
            cap = Decimal(int(members) * int(per))
            found.append(_int_check(
                P, f"digital_plus_paper_within_max_{lv}", f"{lzh}：数字券 + 纸质券 ≤ 会员数 × 面值",
                f"{lv}: digital + paper <= members x face value", "fen", dp, cap, "le"))
            found.append(_int_check(
                P, f"issued_total_within_max_{lv}", f"{lzh}：实发合计 ≤ 会员数 × 面值",
                f"{lv}: issued total <= members x face value", "fen",
                [(("issued_total_yuan", lv), 1)], cap, "le"))
            exp = _get(P, "expected_yuan", lv)
            if exp is not None:
                found.append(Check(
                    f"expected_is_members_x_face_{lv}", f"{lzh}：应发额 = 会员数 × 面值",
                    f"{lv}: expected = members x face value", "fen", cap, "eq",
                    Decimal(int(exp)), Decimal(precision(int(exp), cap=_COARSEST))))
        found.append(_int_check(
            P, f"shortfall_is_expected_minus_issued_{lv}", f"{lzh}：缺口 = 应发额 − 实发合计",
            f"{lv}: shortfall = expected - issued", "fen",
            [(("expected_yuan", lv), 1), (("issued_total_yuan", lv), -1)],
            ("shortfall_yuan", lv)))
    for set_name, (zh, en) in {"members": ("会员数", "members"), **_AMOUNT_SETS}.items():
        found.append(_int_check(
            P, f"levels_sum_{set_name}", f"省级 + 市级 + 县级 = 合计（{zh}）",
            f"province + city + county = total ({en})",
            "count" if set_name == "members" else "fen",
            [((set_name, lv), 1) for lv in LEVELS], (set_name, "total")))
    found.extend(_ratio_checks(P))
    return [c for c in found if c is not None]


def consistency_table(published: Mapping[str, Any]) -> Table:
    cols = (
        Column("check", "检查代码", "check", code=True),
        Column("label_zh", "检查项", "check (zh)"),
        Column("label_en", "Check", "check (en)", code=True),
        Column("unit", "单位", "unit", code=True),
        Column("computed", "由文章数字算出", "computed from the article", "unit"),
        Column("relation", "关系代码", "relation key", code=True),
        Column("relation_sym", "关系", "relation"),
        Column("stated", "文章所写", "stated in the article", "unit"),
        Column("difference", "差额", "difference", "unit"),
        Column("verdict", "结论代码", "verdict key", code=True),
        Column("verdict_zh", "结论", "verdict"),
    )
    return Table(
        "inconsistencies", "文章数字的自身矛盾", "The article's own inconsistencies", cols,
        [c.row() for c in consistency_checks(published)],
        note_zh="“舍入后相符”：算出的数按文章写该数时的精度（如0.1亿）四舍五入后等于文章所写。",
        note_en="'rounding': the computed value, rounded to the precision the article states the"
        " figure with (e.g. 0.1亿), equals the stated figure.",
    )


def _ratio_checks(P: Mapping[str, Any]) -> list[Check]:
    out = []
    total = _get(P, "issued_total_yuan", "total")
    digital = _get(P, "issued_digital_yuan", "total")
    for key, part, zh, en in (
        ("digital_share", "issued_digital_yuan", "数字化占比 = 数字券 ÷ 实发合计",
         "digital share = digital / issued total"),
        ("paper_share", "issued_paper_yuan", "纸质占比 = 纸质券 ÷ 实发合计",
         "paper share = paper / issued total"),
    ):
        num, stated = _get(P, part, "total"), _get(P, key)
        if None not in (num, total, stated) and total:
            out.append(Check(f"{key}_from_amounts", zh, en, "share",
                             Decimal(int(num)) / Decimal(int(total)), "eq",
                             Decimal(str(stated)), _decimals_unit(stated)))
    spend, lev = _get(P, "digital_spending_driven_yuan"), _get(P, "leverage")
    if None not in (spend, digital, lev) and digital:
        out.append(Check("leverage_from_amounts", "拉动效应 = 带动消费额 ÷ 数字券",
                         "leverage = spending driven / digital vouchers", "ratio",
                         Decimal(int(spend)) / Decimal(int(digital)), "eq", Decimal(str(lev)),
                         _decimals_unit(lev)))
    return out


def _plain(value: Decimal, unit: str) -> int | float:
    """Decimal → int for fen and counts, float for ratios (display and CSV)."""
    return int(value) if unit in ("fen", "count") else float(value)
