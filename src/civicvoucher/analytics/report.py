"""The policy report: every figure computed by SQL from the transaction tables.

    report = compute_report("sqlite:////tmp/cv.db", program_key="shanxi-2020", org="140100")
    report.table("leverage").rows        # list of dicts, columns in table.column_order
    report.headline["leverage_digital"]  # Headline(value, full = value / scale)

One function for every door: the demo, ``civicvoucher report`` and ``GET /reports/programs/..``
all call ``compute_report``, so they print the same tables. What is not in the transaction
tables comes from the database's own record of a simulated sample (``provenance``): the
sampling scale, the published figures to compare with and the county guarantee shares; a
caller may pass them explicitly instead (tests do). A real program has neither: scale 1, no
comparison with an article, no guarantee groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from civicvoucher.analytics import duck, issuance, provenance, spending
from civicvoucher.analytics import published as pub
from civicvoucher.analytics.issuance import GUARANTEE_GROUPS
from civicvoucher.analytics.tables import (
    LEVEL_LABEL,
    LEVELS,
    Headline,
    Notice,
    Report,
    Scope,
    Table,
    ratio,
    scale_up,
)
from civicvoucher.core import clock
from civicvoucher.errors import CivicVoucherError, ValidationError
from civicvoucher.i18n import Term, msg

# progress(name, total) -> tick(n=1): the demo's and the CLI's progress bars
Progress = Callable[[str, int], Callable[..., None]]
BREAKDOWN_LEVELS = ("city", "county", "union")
_ORDER = ("province", "city", "county", "union")
_SCOPE_WORD = {"province": ("全省", "province-wide"), "city": ("全市", "city-wide"),
               "county": ("全县", "county-wide"), "union": ("本工会", "this union")}
_STEPS = len(duck._STAGE) + 12


class ReportSourceUnavailable(CivicVoucherError):
    """The database could not be read for the report (down, or not a civicvoucher database)."""

    code = "database_unavailable"
    http_status = 503


def compute_report(
    db_url: str,
    *,
    program_key: str | int | None = None,
    scale: float | None = None,
    published: Mapping[str, Any] | None = None,
    guarantee_by_county: Mapping[str, float] | None = None,
    org: str | int | None = None,
    level: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Read the database at ``db_url`` (SQLAlchemy URL) through DuckDB and build the report.

    ``program_key``: key or id (may be omitted when the database holds one program).
    ``org``: an organisation (id, division code or USCC) whose subtree the report covers;
    every figure is then the subtree's own. ``level``: add a table with one row per
    organisation of that level inside the subtree (rows add up to the total).
    ``scale``, ``published``, ``guarantee_by_county``: default to the database's record of a
    simulated sample (see ``provenance``), else 1, none, none.
    """
    if scale is not None and not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    if level is not None and level not in BREAKDOWN_LEVELS:
        raise ValidationError(msg("level must be one of {levels}, got {level}",
                                  levels=list(BREAKDOWN_LEVELS), level=level), field="level")
    tick = progress("report", _STEPS) if progress else (lambda n=1: None)
    generated = clock.now()
    try:
        with duck.open_source(db_url) as src:
            program = duck.find_program(src, program_key)
            root = duck.find_org(src, org) if org is not None else None
            if root is not None and level is not None and \
                    _ORDER.index(level) <= _ORDER.index(root.level):
                raise ValidationError(msg("level {level} is not below {name} ({root_level})",
                                          level=Term(level, "org_level"), name=root.name,
                                          root_level=Term(root.level, "org_level")),
                                      field="level")
            sample = _sample(src, program.key)
            if sample is not None and (published is None or guarantee_by_county is None):
                figures = provenance.scenario_figures(sample)
                if figures is not None:
                    published = figures[0] if published is None else published
                    if guarantee_by_county is None:
                        guarantee_by_county = figures[1]
            if scale is None:
                scale = sample.scale if sample is not None else 1.0
            duck.stage(src, program, root_path=root.path if root else "/", tick=tick)
            con = src.con
            scope = _scope(con, root)
            report = _compute(con, scope, scale=scale, published=published,
                              guarantee=guarantee_by_county, level=level,
                              root_path=root.path if root else "/", tick=tick)
    except (duckdb.IOException, duckdb.CatalogException) as exc:
        raise ReportSourceUnavailable(msg("cannot read the database for the report ({error})",
                                          error=str(exc).splitlines()[0]),
                                      retry_after=2) from exc
    return Report(
        program_key=program.key, program_name=program.name, scale=scale,
        tables=report[0], headline=report[1], program_id=program.id, scope=scope,
        notices=report[2], scenario=sample.scenario if sample else None,
        overrides=dict(sample.overrides) if sample else {}, generated_at=generated)


def _sample(src: duck.Source, program_key: str) -> provenance.Sample | None:
    try:
        text = duck.read_setting(src, provenance.setting_name(program_key))
    except duckdb.CatalogException:  # a database from before deployment_setting existed
        return None
    return provenance.Sample.from_json(text) if text else None


def _scope(con: duckdb.DuckDBPyConnection, root: duck.OrgInfo | None) -> Scope:
    if root is None:
        provinces = con.execute("SELECT count(*) FROM orgs WHERE level = 'province'").fetchone()
        if provinces[0] == 1:
            zh, en = _SCOPE_WORD["province"]
            return Scope(word_zh=zh, word_en=en)
        return Scope()
    zh, en = _SCOPE_WORD.get(root.level, ("合计", "total"))
    return Scope(org_id=root.id, name_zh=root.name, name_en=root.name, level=root.level,
                 code=root.code, word_zh=zh, word_en=en)


def _levels(con: duckdb.DuckDBPyConnection, scope: Scope) -> tuple[str, ...]:
    """The levels a report shows: those at or below its root (a city report has no
    province row); for a union, the level of its parent federation."""
    if scope.level is None or scope.level == "province":
        return LEVELS
    if scope.level == "union":
        row = con.execute("SELECT level FROM unions LIMIT 1").fetchone()
        return (row[0],) if row else ()
    return LEVELS[LEVELS.index(scope.level):]


def _compute(con, scope: Scope, *, scale: float, published: Mapping[str, Any] | None,
             guarantee: Mapping[str, float] | None, level: str | None, root_path: str,
             tick: Callable[..., None]):
    issuance.prepare(con)
    spending.prepare(con)
    tick()
    levels = issuance.by_level(con, _levels(con, scope))
    tables = [issuance.expected_issued_table(levels), issuance.issued_by_form_table(levels)]
    tick(2)
    for make in (spending.leverage_table, spending.redemption_rate_table,
                 spending.breakage_table):
        tables.append(make(con))
        tick()
    if guarantee:
        if scope.org_id is not None:  # only the subtree's own counties
            inside = {r[0] for r in con.execute(
                "SELECT code FROM orgs WHERE level = 'county' AND starts_with(path, ?)",
                [root_path]).fetchall()}
            if scope.level == "union":
                inside = {r[0] for r in con.execute("SELECT parent_code FROM unions")
                          .fetchall()}
            guarantee = {c: g for c, g in guarantee.items() if c in inside}
        tables.append(issuance.guarantee_table(con, guarantee))
    tick()
    if issuance.has_tourism(con):
        tables.append(issuance.tourism_table(con))
    tick()
    tables.append(spending.daily_table(con))
    tick()
    tables.append(spending.concentration_table(con))
    tick()
    if level is not None:
        tables.append(issuance.by_org_table(con, level, root_path))
    tick()
    by_name = {t.name: t for t in tables}
    headline = _headlines(by_name, scale, scope)
    # The published figures are a province's: compared for the whole program, or for a
    # province federation's subtree (an API caller's), never for a city or a county.
    if published and scope.level in (None, "province"):
        by_name["comparison"] = pub.comparison_table(headline, published)
        by_name["inconsistencies"] = pub.consistency_table(published)
    tick(2)
    return by_name, headline, _notices(by_name)


def _notices(t: Mapping[str, Table]) -> tuple[Notice, ...]:
    """What the reader must know first: an empty program gives zeros, not a report that
    looks broken (every ratio with nothing to divide by is '—')."""
    total = _find(t["expected_issued"], level="total") or {}
    out = []
    if not total.get("members"):
        out.append(Notice("no_members", "范围内没有在册会员。",
                          "No active members in this scope."))
    if not total.get("issued_fen"):
        out.append(Notice("nothing_issued",
                          "尚未发放任何券：发放、核销与拉动效应的数字均为零或暂无。",
                          "Nothing has been issued yet: issuance, redemption and leverage "
                          "figures are zero or not available."))
    elif not sum(r["redemptions"] for r in t["daily_spending"].rows):
        out.append(Notice("no_redemptions",
                          "尚无核销：拉动效应、核销率、每日消费曲线与商户集中度暂无数据。",
                          "No redemptions yet: leverage, redemption rate, the daily curve and "
                          "merchant concentration are not available."))
    return tuple(out)


def _find(table: Table, **match: Any) -> dict[str, Any] | None:
    rows = [r for r in table.rows if all(r.get(k) == v for k, v in match.items())]
    return rows[0] if len(rows) == 1 else None


def _headlines(t: Mapping[str, Table], scale: float, scope: Scope) -> dict[str, Headline]:
    """The figures a reader looks for first, each with its value at full size. Levels the
    report does not cover (above its root) have no headline; nor do tables it lacks."""
    out: dict[str, Headline] = {}

    def add(key: str, zh: str, en: str, unit: str, value: Any, scaled: bool = True) -> None:
        full = value
        if scaled and value is not None and unit in ("fen", "count"):
            full = scale_up(int(value), scale)
        out[key] = Headline(key, zh, en, unit, value, full)

    exp, form = t["expected_issued"], t["issued_by_form"]
    shown = {r["level"] for r in exp.rows}
    for lv in (*LEVELS, "total"):
        if lv not in shown:
            continue
        zh, en = (scope.word_zh, scope.word_en) if lv == "total" else LEVEL_LABEL[lv]
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

    if "tourism_cards" in t:
        tour = _find(t["tourism_cards"], level="total") or {}
        add("tourism_cards", "旅游年卡发放张数", "tourism cards issued", "count",
            tour.get("cards", 0))
        add("tourism_fen", "旅游年卡面值", "tourism cards, face value", "fen",
            tour.get("value_fen", 0))

    conc = _find(t["merchant_concentration"], top_pct=10) or {}
    add("merchants_with_redemptions", "有核销的商户数", "merchants with any redemption",
        "count", conc.get("merchants", 0), scaled=False)
    add("top10_merchant_share", "前10%商户核销占比", "share of the top 10% of merchants",
        "share", conc.get("share"))

    for key, slug, zh, _ in GUARANTEE_GROUPS if "guarantee_groups" in t else ():
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
