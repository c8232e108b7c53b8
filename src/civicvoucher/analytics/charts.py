"""ECharts options for the report page, built from the report's tables (JSON-ready dicts).

Money on the charts is shown at full size (sample value / scale), in 亿元 or 万元, so it reads
beside the article's figures; floats here are for drawing only, never for sums.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from civicvoucher.analytics.tables import LEVEL_LABEL, LEVELS, Report
from civicvoucher.core.money import WAN, YI

FONT = "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif"
DIGITAL, PAPER, EXPECTED, ARTICLE = "#2f6fdf", "#e0a030", "#b8c4d6", "#d0463c"


def _full(fen: int | None, scale: float, unit: int) -> float | None:
    """fen at sample size → full size in 亿 (unit=YI) or 万 (unit=WAN), 4 decimals."""
    if fen is None:
        return None
    q = Decimal(fen) / Decimal(str(scale)) / unit
    return float(q.quantize(Decimal("0.0001")))


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


def _published(report: Report, key: str) -> Any:
    for row in report.table("comparison").rows:
        if row["key"] == key:
            return row["published"]
    return None


def issued_by_level(report: Report) -> dict[str, Any]:
    rows = {r["level"]: r for r in report.table("issued_by_form").rows}
    expected = {r["level"]: r for r in report.table("expected_issued").rows}
    s = report.scale
    cats = [LEVEL_LABEL[lv][0] for lv in LEVELS]
    article = [_published(report, f"issued_fen_{lv}") for lv in LEVELS]
    series = [
        {"name": "数字券 digital", "type": "bar", "stack": "issued", "color": DIGITAL,
         "data": [_full(rows.get(lv, {}).get("digital_fen", 0), s, YI) for lv in LEVELS]},
        {"name": "纸质券 paper", "type": "bar", "stack": "issued", "color": PAPER,
         "data": [_full(rows.get(lv, {}).get("paper_fen", 0), s, YI) for lv in LEVELS]},
        {"name": "应发 expected", "type": "bar", "color": EXPECTED,
         "data": [_full(expected.get(lv, {}).get("expected_fen", 0), s, YI) for lv in LEVELS]},
    ]
    if any(a is not None for a in article):
        series.append({
            "name": "文章实发 article", "type": "scatter", "symbol": "diamond", "symbolSize": 14,
            "color": ARTICLE, "z": 10,
            "data": [None if a is None else float(Decimal(a) / YI) for a in article]})
    return _base(
        xAxis={"type": "category", "data": cats},
        yAxis=_axis("亿元（全省规模） 100 million yuan, full size"),
        series=series,
    )


def daily_spending(report: Report) -> dict[str, Any]:
    rows = report.table("daily_spending").rows
    s = report.scale
    return _base(
        xAxis={"type": "category", "data": [r["day"] for r in rows]},
        yAxis=[_axis("万元/日（全省规模） 10k yuan a day"),
               _axis("累计抵扣 亿元 cumulative", right=True, splitLine={"show": False})],
        dataZoom=[{"type": "inside"}],
        series=[
            {"name": "消费额 spending", "type": "line", "showSymbol": False, "color": DIGITAL,
             "areaStyle": {"opacity": 0.15},
             "data": [_full(r["order_fen"], s, WAN) for r in rows]},
            {"name": "券抵扣 voucher value", "type": "line", "showSymbol": False,
             "color": PAPER, "data": [_full(r["voucher_fen"], s, WAN) for r in rows]},
            {"name": "累计抵扣 cumulative", "type": "line", "showSymbol": False, "yAxisIndex": 1,
             "color": "#888", "lineStyle": {"type": "dashed"},
             "data": [_full(r["cumulative_voucher_fen"], s, YI) for r in rows]},
        ],
    )


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
    return _base(
        xAxis={"type": "category", "data": [labels[g] for g in groups],
               "axisLabel": {"interval": 0}},
        yAxis=_axis("拉动效应 leverage (×)", min=0),
        series=series,
    )


def issue_rate_by_guarantee(report: Report) -> dict[str, Any]:
    rows = [r for r in report.table("guarantee_groups").rows if r["group"] != "total"]
    return _base(
        xAxis={"type": "category", "axisLabel": {"interval": 0},
               "data": [f"{r['group_zh']}\n({r['counties']}县)" for r in rows]},
        yAxis=_axis("发放率 % issued / expected", min=0),
        series=[{"name": "发放率 issued / expected", "type": "bar", "color": DIGITAL,
                 "label": {"show": True, "position": "top"},
                 "data": [_round(None if r["issue_rate"] is None else r["issue_rate"] * 100, 1)
                          for r in rows]}],
    )


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


def all_charts(report: Report) -> list[dict[str, Any]]:
    """[{id, title_zh, title_en, option}] in page order."""
    return [dict(id=cid, title_zh=zh, title_en=en, option=fn(report))
            for cid, zh, en, fn in CHARTS]
