"""The words around a report's numbers, the same on the page, in the workbook, in the terminal
and in the API: its title, what it covers, when it was made, and, for a simulated sample, the
warning that its tables are not real figures (an official copying a 1% sample's 859万
under-reports by 100 times)."""

from __future__ import annotations

from decimal import Decimal

from civicvoucher.analytics.tables import Report
from civicvoucher.core import clock


def default_title(report: Report) -> str:
    """'<program name>：政策报告', with the organisation of a subtree and, for a what-if run,
    what was changed, in words: '… · 情景：各县（区）财政保障工会经费 100%'."""
    where = f" · {report.scope.name_zh}" if report.scope.org_id is not None else ""
    whatif = f" · 情景：{whatif_zh(report.overrides)}" if report.overrides else ""
    return f"{report.program_name}{where}：政策报告{whatif}"


def scale_pct(scale: float) -> str:
    """0.01 → '1%', 0.002 → '0.2%'."""
    return f"{Decimal(str(scale)) * 100:f}".rstrip("0").rstrip(".") + "%"


def factor(scale: float) -> str:
    """How many times the full size is: 0.01 → '100', 0.003 → '333.33'."""
    q = (Decimal(1) / Decimal(str(scale))).quantize(Decimal("0.01"))
    return f"{q:,f}".rstrip("0").rstrip(".")


def scope_zh(report: Report) -> str:
    s = report.scope
    if s.org_id is None:
        return "全部单位"
    return f"{s.name_zh}（{s.code}）及下属单位" if s.code else f"{s.name_zh}及下属单位"


def scope_en(report: Report) -> str:
    s = report.scope
    if s.org_id is None:
        return "all organisations"
    return f"{s.name_en} ({s.code}) and everything under it" if s.code else \
        f"{s.name_en} and everything under it"


def data_zh(report: Report) -> str:
    if not report.sample:
        return "实际数据"
    whatif = f"，情景：{whatif_zh(report.overrides)}" if report.overrides else ""
    return f"模拟样本（{report.scenario or '情景'}，样本比例 {scale_pct(report.scale)}{whatif}）"


def data_en(report: Report) -> str:
    if not report.sample:
        return "real data"
    whatif = f", what-if: {whatif_en(report.overrides)}" if report.overrides else ""
    return (f"simulated sample ({report.scenario or 'scenario'}, scale "
            f"{scale_pct(report.scale)}{whatif})")


def generated(report: Report) -> str:
    """'2024-05-01 10:00 +08:00 (Asia/Shanghai)': local time, with the zone named."""
    return f"{clock.format_local(report.generated_at)} ({clock.zone().key})"


def sample_warning_zh(report: Report) -> str:
    if not report.sample:
        return ""
    f = factor(report.scale)
    return (f"⚠ 样本值，不是实际数字：本报告的数据是按 {scale_pct(report.scale)} 抽样模拟的样本，"
            f"表中金额、人数、张数都是样本值，直接引用会少报 {f} 倍。全规模 = 样本值 × {f}"
            "（“主要指标”的“全规模”一列、顶部卡片、图表和文章对照已按全规模显示）。")


def sample_warning_en(report: Report) -> str:
    if not report.sample:
        return ""
    f = factor(report.scale)
    return (f"SAMPLE VALUES, NOT REAL FIGURES: this report is a {scale_pct(report.scale)} "
            f"simulated sample; amounts and counts in the tables are sample values, {f} times "
            f"too small. Full size = sample value x {f} (the headline table's full-size column, "
            "the cards, the charts and the comparison with the article are at full size).")


# What-if settings of the demo's scenario (``scenarios.model.KNOBS``), as a reader says them.
_KNOBS = {
    "county_guarantee": ("各县（区）财政保障工会经费 {pct}", "counties' budgets guarantee {pct} of "
                         "union funds"),
    "digital_share": ("各级数字券占比 {pct}", "digital share {pct} at every level"),
    "enterprise_funded": ("有能力出资的企业工会占比 {pct}", "enterprise unions able to fund: {pct}"),
}


def _pct(text: str) -> str:
    try:
        return f"{Decimal(text) * 100:f}".rstrip("0").rstrip(".") + "%"
    except ArithmeticError:
        return text


def whatif_zh(overrides: dict[str, str]) -> str:
    """'各县（区）财政保障工会经费 100%；各级数字券占比 80%' (other settings as key = value)."""
    return "；".join(_KNOBS[k][0].format(pct=_pct(v)) if k in _KNOBS else f"{k} = {v}"
                    for k, v in overrides.items())


def whatif_en(overrides: dict[str, str]) -> str:
    return "; ".join(_KNOBS[k][1].format(pct=_pct(v)) if k in _KNOBS else f"{k} = {v}"
                     for k, v in overrides.items())
