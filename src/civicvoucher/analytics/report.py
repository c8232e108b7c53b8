"""The policy report: every figure computed by SQL from the transaction tables.

    report = compute_report("sqlite:////tmp/shanxi.db", scale=0.01, published=pub,
                            guarantee_by_county={"140105": 1.0, ...})
    report.table("leverage").rows        # list of dicts, columns in table.column_order
    report.headline["leverage_digital"]  # Headline(value at sample size, full = value / scale)

Nothing here reads the scenario's targets: only ``published`` (to compare against) and the
county guarantee shares (to group counties) come from outside the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from civicvoucher.analytics import duck, issuance, spending
from civicvoucher.analytics import published as pub
from civicvoucher.analytics.issuance import GUARANTEE_GROUPS
from civicvoucher.analytics.tables import (
    LEVEL_LABEL,
    LEVELS,
    Headline,
    Report,
    Table,
    ratio,
    scale_up,
)


def compute_report(
    db_url: str,
    *,
    scale: float,
    published: dict,
    guarantee_by_county: dict[str, float],
    program_key: str | None = None,
) -> Report:
    """Read the database at ``db_url`` (SQLAlchemy URL) through DuckDB and build the report.

    ``scale`` is the sampling fraction of the simulated population (0.01 = 1%); figures at
    full size are value / scale. ``program_key`` may be omitted when the database holds one.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    with duck.open_source(db_url) as src:
        program = duck.find_program(src, program_key)
        duck.stage(src, program)
        con = src.con
        issuance.prepare(con)
        spending.prepare(con)
        levels = issuance.by_level(con)
        tables = [
            issuance.expected_issued_table(levels),
            issuance.issued_by_form_table(levels),
            spending.leverage_table(con),
            spending.redemption_rate_table(con),
            spending.breakage_table(con),
            issuance.guarantee_table(con, guarantee_by_county),
            issuance.tourism_table(con),
            spending.daily_table(con),
            spending.concentration_table(con),
        ]
    by_name = {t.name: t for t in tables}
    headline = _headlines(by_name, scale)
    by_name["comparison"] = pub.comparison_table(headline, published)
    by_name["inconsistencies"] = pub.consistency_table(published)
    return Report(program_key=program.key, program_name=program.name, scale=scale,
                  tables=by_name, headline=headline)


def _find(table: Table, **match: Any) -> dict[str, Any] | None:
    rows = [r for r in table.rows if all(r.get(k) == v for k, v in match.items())]
    return rows[0] if len(rows) == 1 else None


def _headlines(t: Mapping[str, Table], scale: float) -> dict[str, Headline]:
    out: dict[str, Headline] = {}

    def add(key: str, zh: str, en: str, unit: str, value: Any, scaled: bool = True) -> None:
        full = value
        if scaled and value is not None and unit in ("fen", "count"):
            full = scale_up(int(value), scale)
        out[key] = Headline(key, zh, en, unit, value, full)

    exp, form = t["expected_issued"], t["issued_by_form"]
    for lv in (*LEVELS, "total"):
        zh, en = ("全省", "all levels") if lv == "total" else LEVEL_LABEL[lv]
        e = _find(exp, level=lv) or {}
        f = _find(form, level=lv) or {}
        add(f"members_{lv}", f"{zh}在册会员", f"active members, {en}", "count", e.get("members", 0))
        add(f"expected_fen_{lv}", f"{zh}应发额", f"expected, {en}", "fen",
            e.get("expected_fen", 0))
        add(f"issued_digital_fen_{lv}", f"{zh}数字券实发", f"issued digital, {en}", "fen",
            f.get("digital_fen", 0))
        add(f"issued_paper_fen_{lv}", f"{zh}纸质券实发", f"issued paper, {en}", "fen",
            f.get("paper_fen", 0))
        add(f"issued_fen_{lv}", f"{zh}实发合计", f"issued total, {en}", "fen",
            e.get("issued_fen", 0))
        add(f"shortfall_fen_{lv}", f"{zh}缺口", f"shortfall, {en}", "fen",
            e.get("shortfall_fen", 0))
        add(f"issue_rate_{lv}", f"{zh}发放率", f"issued / expected, {en}", "share",
            e.get("issue_rate"))
    total = _find(form, level="total") or {}
    add("digital_share", "数字化占比", "digital share of issued value", "share",
        total.get("digital_share"))
    add("paper_share", "纸质占比", "paper share of issued value", "share",
        ratio(total.get("paper_fen"), total.get("issued_fen")))

    lev = t["leverage"]
    for form_key, zh in (("digital", "数字券"), ("paper", "纸质券")):
        row = _find(lev, form=form_key, dimension="overall") or {}
        add(f"{form_key}_redeemed_fen", f"{zh}核销额", f"{form_key} vouchers spent", "fen",
            row.get("voucher_fen", 0))
        add(f"{form_key}_order_fen", f"{zh}带动消费额", f"spending with {form_key} vouchers",
            "fen", row.get("order_fen", 0))
        add(f"leverage_{form_key}", f"{zh}拉动效应", f"leverage, {form_key}", "ratio",
            row.get("leverage"))
        rate = _find(t["redemption_rate"], form=form_key) or {}
        add(f"redemption_rate_{form_key}", f"{zh}核销率", f"redemption rate, {form_key}",
            "share", rate.get("redemption_rate"))

    brk = t["breakage"]
    add("breakage_fen", "过期未用（券状态）", "breakage (voucher status)", "fen",
        brk.row(measure="vouchers_total")["amount_fen"])
    add("breakage_ledger_fen", "过期未用（账本）", "breakage (ledger)", "fen",
        brk.row(measure="ledger_total")["amount_fen"])

    tour = _find(t["tourism_cards"], level="total") or {}
    add("tourism_cards", "旅游年卡发放张数", "tourism cards issued", "count", tour.get("cards", 0))
    add("tourism_fen", "旅游年卡面值", "tourism cards, face value", "fen",
        tour.get("value_fen", 0))

    conc = _find(t["merchant_concentration"], top_pct=10) or {}
    add("merchants_with_redemptions", "有核销的商户数", "merchants with any redemption",
        "count", conc.get("merchants", 0), scaled=False)
    add("top10_merchant_share", "前10%商户核销占比", "share of the top 10% of merchants",
        "share", conc.get("share"))

    for key, slug, zh, _ in GUARANTEE_GROUPS:
        g = _find(t["guarantee_groups"], group=key) or {}
        add(f"guarantee_counties_{slug}", f"财政保障{zh}的县数", f"counties guaranteed {key}",
            "count", g.get("counties", 0), scaled=False)
        add(f"issue_rate_guarantee_{slug}", f"财政保障{zh}的县：发放率",
            f"issuance rate, counties guaranteed {key}", "share", g.get("issue_rate"))
    return out


def compare_reports(baseline: Report, variant: Report) -> list[dict]:
    """Headline deltas of a what-if run against the baseline, at full size.

    One dict per headline present in both: key, labels, unit, baseline, variant, delta and
    delta_pct (None where a side is missing or the baseline is zero).
    """
    rows = []
    for key, b in baseline.headline.items():
        v = variant.headline.get(key)
        if v is None:
            continue
        delta = None if b.full is None or v.full is None else v.full - b.full
        rows.append(dict(key=key, label_zh=b.label_zh, label_en=b.label_en, unit=b.unit,
                         baseline=b.full, variant=v.full, delta=delta,
                         delta_pct=ratio(delta, b.full) if delta is not None else None))
    return rows
