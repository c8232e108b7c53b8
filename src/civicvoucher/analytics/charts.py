"""ECharts options for the report page, built from the report's tables (JSON-ready dicts).

Money on the charts is at full size (sample value / scale; a real program's own values), in
one unit per axis chosen by its largest value (亿元, 万元 or 元), so it reads beside the
article's figures; floats here are for drawing only, never for sums.

Each option is ``{"baseOption": ..., "media": [...]}``: ECharts applies the narrow variant
(shorter axis names, a scrolling legend, smaller labels) when the chart is under 520 px wide,
on a phone, and re-applies it on every resize.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from civicvoucher.analytics import fmt
from civicvoucher.analytics.tables import LEVEL_LABEL, Report

FONT = "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif"
DIGITAL, PAPER, EXPECTED, ARTICLE = "#2f6fdf", "#e0a030", "#b8c4d6", "#d0463c"
NARROW = 520  # px: below this a chart takes its narrow variant


def _full(fen: int | None, scale: float, unit: fmt.MoneyUnit) -> float | None:
    """fen at sample size → full size in ``unit``, 4 decimals."""
    if fen is None:
        return None
    q = Decimal(fen) / Decimal(str(scale)) / unit.fen
    return float(q.quantize(Decimal("0.0001")))


def _unit(fens: list[int | None], scale: float) -> fmt.MoneyUnit:
    """The axis unit for these sample amounts at full size."""
    return fmt.money_unit(None if f is None else int(Decimal(f) / Decimal(str(scale)))
                          for f in fens)


def _size(report: Report) -> tuple[str, str]:
    return ("（全规模）", ", full size") if report.sample else ("", "")


def _base(**kw: Any) -> dict[str, Any]:
    return {
        "animation": False,
        "textStyle": {"fontFamily": FONT},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 20, "right": 30, "top": 70, "bottom": 20, "containLabel": True},
        **kw,
    }


def _axis(name: str, *, right: bool = False, **kw: Any) -> dict[str, Any]:
    """A value axis whose name grows inward from the axis, so it is never clipped."""
    return {"type": "value", "name": name,
            "nameTextStyle": {"align": "right" if right else "left"}, **kw}


def _responsive(base: dict[str, Any], *, y_short: list[str],
                small_categories: bool = False) -> dict[str, Any]:
    """``base`` with its narrow variant (short axis names, a scrolling legend, tighter grid)
    and, as ECharts needs to go back when the chart grows again (a phone turned sideways),
    the default variant restating what the narrow one changes."""
    axes = base["yAxis"] if isinstance(base["yAxis"], list) else [base["yAxis"]]
    narrow: dict[str, Any] = {
        "legend": {"type": "scroll", "itemGap": 6, "textStyle": {"fontSize": 11}},
        "grid": {"left": 6, "right": 10, "top": 64, "bottom": 8},
        "yAxis": [{"name": n, "nameTextStyle": {"fontSize": 11}} for n in y_short],
    }
    wide: dict[str, Any] = {
        "legend": {"type": "plain", "itemGap": 10, "textStyle": {"fontSize": 12}},
        "grid": dict(base["grid"]),
        "yAxis": [{"name": a["name"], "nameTextStyle": {"fontSize": 12}} for a in axes],
    }
    if small_categories:
        narrow["xAxis"] = {"axisLabel": {"fontSize": 10, "width": 64, "overflow": "break"}}
        wide["xAxis"] = {"axisLabel": {"fontSize": 12, "width": 200, "overflow": "none"}}
    if _empty(base):
        base = {**base, "graphic": [{"type": "text", "left": "center", "top": "middle",
                                     "style": {"text": "暂无数据  no data", "fontSize": 16,
                                               "fill": "#888"}}]}
    return {"baseOption": base,
            "media": [{"option": wide}, {"query": {"maxWidth": NARROW}, "option": narrow}]}


def _empty(option: dict[str, Any]) -> bool:
    """No series has a value other than nothing or zero."""
    return not any(v not in (None, 0, 0.0) for s in option.get("series", [])
                   for v in s.get("data", []))


def _published(report: Report, key: str) -> Any:
    if not report.has_comparison:
        return None
    for row in report.table("comparison").rows:
        if row["key"] == key:
            return row["published"]
    return None


def issued_by_level(report: Report) -> dict[str, Any]:
    rows = {r["level"]: r for r in report.table("issued_by_form").rows}
    expected = {r["level"]: r for r in report.table("expected_issued").rows}
    levels = [lv for lv in expected if lv != "total"]
    s = report.scale
    unit = _unit([expected[lv]["expected_fen"] for lv in levels]
                 + [rows.get(lv, {}).get("issued_fen", 0) for lv in levels], s)
    cats = [LEVEL_LABEL.get(lv, (lv,))[0] for lv in levels]
    article = [_published(report, f"issued_fen_{lv}") for lv in levels]
    series = [
        {"name": "数字券 digital", "type": "bar", "stack": "issued", "color": DIGITAL,
         "data": [_full(rows.get(lv, {}).get("digital_fen", 0), s, unit) for lv in levels]},
        {"name": "纸质券 paper", "type": "bar", "stack": "issued", "color": PAPER,
         "data": [_full(rows.get(lv, {}).get("paper_fen", 0), s, unit) for lv in levels]},
        {"name": "应发 expected", "type": "bar", "color": EXPECTED,
         "data": [_full(expected.get(lv, {}).get("expected_fen", 0), s, unit)
                  for lv in levels]},
    ]
    if any(a is not None for a in article):
        series.append({
            "name": "文章实发 article", "type": "scatter", "symbol": "diamond", "symbolSize": 14,
            "color": ARTICLE, "z": 10,
            "data": [None if a is None else float(Decimal(a) / unit.fen) for a in article]})
    zh, en = _size(report)
    return _responsive(_base(
        xAxis={"type": "category", "data": cats},
        yAxis=_axis(f"{unit.zh}{zh} {unit.en}{en}"),
        series=series,
    ), y_short=[unit.zh])


def daily_spending(report: Report) -> dict[str, Any]:
    rows = report.table("daily_spending").rows
    s = report.scale
    per_day = _unit([r["order_fen"] for r in rows], s)
    cumulative = _unit([r["cumulative_voucher_fen"] for r in rows], s)
    zh, en = _size(report)
    return _responsive(_base(
        xAxis={"type": "category", "data": [r["day"] for r in rows]},
        yAxis=[_axis(f"{per_day.zh}/日{zh} {per_day.en} a day{en}"),
               _axis(f"累计抵扣 {cumulative.zh} cumulative", right=True,
                     splitLine={"show": False})],
        dataZoom=[{"type": "inside"}],
        series=[
            {"name": "消费额 spending", "type": "line", "showSymbol": False, "color": DIGITAL,
             "areaStyle": {"opacity": 0.15},
             "data": [_full(r["order_fen"], s, per_day) for r in rows]},
            {"name": "券抵扣 voucher value", "type": "line", "showSymbol": False,
             "color": PAPER, "data": [_full(r["voucher_fen"], s, per_day) for r in rows]},
            {"name": "累计抵扣 cumulative", "type": "line", "showSymbol": False, "yAxisIndex": 1,
             "color": "#888", "lineStyle": {"type": "dashed"},
             "data": [_full(r["cumulative_voucher_fen"], s, cumulative) for r in rows]},
        ],
    ), y_short=[f"{per_day.zh}/日", f"累计 {cumulative.zh}"])


def leverage_by_category(report: Report) -> dict[str, Any]:
    rows = [r for r in report.table("leverage").rows if r["dimension"] == "category"]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    labels = {r["group"]: r["group_zh"] for r in rows}
    series = []
    for form, name, color in (("digital", "数字券 digital", DIGITAL),
                              ("paper", "纸质券 paper", PAPER)):
        mine = {r["group"]: r["leverage"] for r in rows if r["form"] == form}
        if mine:
            series.append({"name": name, "type": "bar", "color": color,
                           "data": [_round(mine.get(g)) for g in groups]})
    article = _published(report, "leverage_digital")
    if series and article is not None:
        series[0]["markLine"] = {
            "symbol": "none", "lineStyle": {"color": ARTICLE},
            "label": {"formatter": f"文章 article {article}", "position": "insideEndTop"},
            "data": [{"yAxis": article}]}
    return _responsive(_base(
        xAxis={"type": "category", "data": [labels[g] for g in groups],
               "axisLabel": {"interval": 0}},
        yAxis=_axis("拉动效应 leverage (×)", min=0),
        series=series,
    ), y_short=["拉动效应 (×)"], small_categories=True)


def issue_rate_by_guarantee(report: Report) -> dict[str, Any]:
    rows = [r for r in report.table("guarantee_groups").rows if r["group"] != "total"]
    return _responsive(_base(
        xAxis={"type": "category", "axisLabel": {"interval": 0},
               "data": [f"{r['group_zh']}\n({r['counties']}县)" for r in rows]},
        yAxis=_axis("发放率 % issued / expected", min=0),
        series=[{"name": "发放率 issued / expected", "type": "bar", "color": DIGITAL,
                 "label": {"show": True, "position": "top"},
                 "data": [_round(None if r["issue_rate"] is None else r["issue_rate"] * 100, 1)
                          for r in rows]}],
    ), y_short=["发放率 %"], small_categories=True)


def _round(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(v, digits)


CHARTS = (
    ("chart-issued", "实发与应发（按层级）", "Issued vs expected by level", issued_by_level),
    ("chart-daily", "每日消费曲线", "Daily spending", daily_spending),
    ("chart-leverage", "拉动效应（按商户类别）", "Leverage by merchant category",
     leverage_by_category),
    ("chart-guarantee", "县级发放率（按财政保障比例）", "County issuance by fiscal guarantee",
     issue_rate_by_guarantee),
)


# the table a chart needs: without it (no guarantee shares for a real program), no chart
NEEDS = {"chart-guarantee": "guarantee_groups"}
MONEY = {"chart-issued", "chart-daily"}  # charts of amounts (at full size for a sample)


def all_charts(report: Report) -> list[dict[str, Any]]:
    """[{id, title_zh, title_en, money, option}] in page order."""
    return [dict(id=cid, title_zh=zh, title_en=en, money=cid in MONEY, option=fn(report))
            for cid, zh, en, fn in CHARTS if NEEDS.get(cid, "") in ("", *report.tables)]
