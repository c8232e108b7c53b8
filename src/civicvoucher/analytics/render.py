"""Report outputs: one offline HTML page, a CSV per table, one XLSX workbook, one PDF (A4, for
printing and forwarding: ``pdf``); a Rich summary.

The HTML inlines the vendored ECharts so it opens from a file or an e-mail with no network; it
reads on a phone (charts fit the screen, tables become one card per row), and prints on A4
(no chart split across pages). Each column of amounts is in one unit (元, 万元 or 亿元, named
in its header). CSV is UTF-8 with BOM (Excel shows Chinese), money in exact integer fen,
written by ``core.tabular.write_table``; the workbook is for people (``xlsx``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from civicvoucher.analytics import charts, describe, fmt
from civicvoucher.analytics.pdf import write_pdf
from civicvoucher.analytics.report import compare_reports
from civicvoucher.analytics.tables import Column, Report, Table, headline_table
from civicvoucher.analytics.view import table_view as _view
from civicvoucher.analytics.xlsx import write_xlsx
from civicvoucher.core.tabular import write_table

# The figures shown as cards at the top of the page and in the terminal summary.
KEY_FIGURES = (
    "issued_fen_total", "shortfall_fen_total", "digital_share", "leverage_digital",
    "redemption_rate_digital", "breakage_fen", "tourism_cards",
)
# Tables at the top of the page, in this order (when present); the rest follow.
FIRST = ("comparison", "inconsistencies")


def echarts_js() -> str:
    """The vendored ECharts build, read from the installed package."""
    path = resources.files("civicvoucher") / "web/static/vendor/echarts/echarts.min.js"
    return path.read_text(encoding="utf-8")


def whatif_table(baseline: Report, variant: Report) -> Table:
    """``compare_reports`` as a table (full-size figures)."""
    cols = (
        Column("key", "指标代码", "key", code=True),
        Column("label_zh", "指标", "figure"),
        Column("label_en", "Figure", "figure (en)", code=True),
        Column("unit", "单位", "unit", code=True),
        Column("baseline", "基准", "baseline", "unit"),
        Column("variant", "情景", "what-if", "unit"),
        Column("delta", "变化", "change", "unit"),
        Column("delta_pct", "变化%", "change %", "share"),
    )
    return Table("whatif", "情景与基准对比（全规模）", "What-if vs baseline (full size)", cols,
                 compare_reports(baseline, variant))


def all_tables(report: Report, baseline: Report | None = None) -> list[Table]:
    """Every table of the report in reading order: the what-if comparison, the comparison
    with the article, the headline figures, then the rest."""
    tables = [whatif_table(baseline, report)] if baseline is not None else []
    tables += [report.table(n) for n in FIRST if n in report.tables]
    tables.append(headline_table(report))
    tables += [t for n, t in report.tables.items() if n not in FIRST]
    return tables


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '</' can close the tag."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(report: Report, *, baseline: Report | None = None,
                title: str | None = None) -> str:
    env = Environment(loader=PackageLoader("civicvoucher.analytics", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    cards = [
        dict(label_zh=h.label_zh, label_en=h.label_en, text=fmt.value(h.full, h.unit))
        for key in KEY_FIGURES if (h := report.headline.get(key)) is not None
    ]
    chart_list = charts.all_charts(report)
    tables = [_view(t) for t in all_tables(report, baseline)]
    return env.get_template("report.html.j2").render(
        title=title or describe.default_title(report), report=report, cards=cards,
        charts=chart_list,
        charts_json=_json_for_script({c["id"]: c["option"] for c in chart_list}),
        tables=tables, d=describe, echarts=echarts_js(),
    )


def _csv_header(c: Column) -> str:
    return f"{c.label_zh} ({c.key})"


def write_outputs(report: Report, out_dir: Path, *, baseline: Report | None = None,
                  title: str | None = None, pdf: bool = True,
                  pdf_lang: str = "zh") -> dict[str, Path]:
    """Write report.html, <table>.csv for every table, report.xlsx and (unless ``pdf`` is
    false) report.pdf (in ``pdf_lang``) into ``out_dir``.

    Returns {"html": path, "xlsx": path, "pdf": path, "csv:<table>": path, ...}. Money in the CSV files is
    integer fen (exact); the workbook has yuan with number formats; the page shows one unit
    per column.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or describe.default_title(report)
    paths: dict[str, Path] = {}
    html = out_dir / "report.html"
    html.write_text(render_html(report, baseline=baseline, title=title), encoding="utf-8")
    paths["html"] = html
    tables = all_tables(report, baseline)
    for t in tables:
        p = out_dir / f"{t.name}.csv"
        write_table(p, [_csv_header(c) for c in t.columns],
                    ([r.get(c.key) for c in t.columns] for r in t.rows))
        paths[f"csv:{t.name}"] = p
    xlsx = out_dir / "report.xlsx"
    write_xlsx(xlsx, report, tables, title=title)
    paths["xlsx"] = xlsx
    if pdf:
        paths["pdf"] = write_pdf(out_dir / "report.pdf", report, tables,
                                 title=title if pdf_lang == "zh" else None, lang=pdf_lang)
    return paths


_STYLE = {"ok": "green", "warn": "yellow", "bad": "red", "none": "dim"}


SUMMARY_FIGURES = (
    "members_total", "expected_fen_total", "issued_fen_total", "shortfall_fen_total",
    "issue_rate_total", "digital_share", "digital_redeemed_fen", "leverage_digital",
    "redemption_rate_digital", "redemption_rate_paper", "breakage_fen", "tourism_cards",
)
BY_ORG_ROWS = 30  # more rows than this are in the files, not the terminal


def print_summary(report: Report, console: Console) -> None:
    """A short Chinese summary: what the report covers, the sample warning, notices, the key
    figures (amounts as officials read them: ¥1,234.56, 1.5万, 8.7亿), issuance by level,
    the per-organisation rows, and, when there is an article to compare with, the comparison
    (deviations coloured) and where the article disagrees with itself."""
    console.rule(f"[bold]{escape(report.program_name)}[/]（{escape(report.program_key)}）· "
                 f"{escape(describe.scope_zh(report))} · {escape(describe.data_zh(report))}")
    if report.sample:
        console.print(f"[bold red]{escape(describe.sample_warning_zh(report))}[/]")
    for n in report.notices:
        console.print(f"[bold yellow]注意：{escape(n.zh)}[/] [dim]{escape(n.en)}[/]")
    heads = RichTable(title="主要指标 [dim]Headline figures[/]")
    heads.add_column("指标 [dim]figure[/]")
    if report.sample:
        heads.add_column("样本值 [dim]sample[/]", justify="right")
    heads.add_column("全规模 [dim]full size[/]" if report.sample else "数值 [dim]value[/]",
                     justify="right")
    for key in SUMMARY_FIGURES:
        h = report.headline.get(key)
        if h is None:
            continue
        cells = [f"{h.label_zh} [dim]{h.label_en}[/]"]
        if report.sample:
            cells.append(fmt.value(h.value, h.unit))
        cells.append(fmt.value(h.full, h.unit))
        heads.add_row(*cells)
    console.print(heads)
    _print_rows(console, report.table("expected_issued"), "level_zh", sample=report.sample)
    if "by_org" in report.tables:
        _print_rows(console, report.table("by_org"), "name", limit=BY_ORG_ROWS,
                    sample=report.sample)
    if report.has_comparison:
        _print_comparison(report, console)


def _print_rows(console: Console, table: Table, label: str, *, limit: int | None = None,
                sample: bool = False) -> None:
    """Issuance columns of a table by level or by organisation."""
    keys = ("members", "expected_fen", "issued_fen", "shortfall_fen", "issue_rate")
    cols = {c.key: c for c in table.columns}
    mark = "[bold red]（样本值）[/]" if sample else ""
    t = RichTable(title=f"{table.title_zh}{mark} [dim]{table.title_en}[/]")
    # Chinese headers only (the English is in the files), so the numbers keep their width
    # on an 80-column terminal and a long name wraps instead of ending in "…"
    t.add_column(cols[label].label_zh, overflow="fold", min_width=10)
    for k in keys:
        t.add_column(cols[k].label_zh, justify="right", no_wrap=True)
    rows = table.rows
    shown = rows if limit is None or len(rows) <= limit else rows[:limit - 1] + rows[-1:]
    for r in shown:
        style = "bold" if r.get("group") == "total" or r.get("level") == "total" else None
        t.add_row(escape(str(r[label])), *(fmt.cell(cols[k], r) for k in keys), style=style)
    console.print(t)
    if len(shown) < len(rows):
        console.print(f"[dim]（另有 {len(rows) - len(shown)} 行，见 report.xlsx / "
                      f"{len(rows) - len(shown)} more rows in report.xlsx）[/]")


def _print_comparison(report: Report, console: Console) -> None:
    comp = report.table("comparison")
    t = RichTable(title="与文章对照（全规模） [dim]Ours at full size vs the article[/]")
    for head, justify in (("指标 figure", "left"), ("本系统 ours", "right"),
                          ("文章 article", "right"), ("偏差 deviation", "right"),
                          ("偏差% dev %", "right")):
        t.add_column(head, justify=justify, overflow="fold",  # type: ignore[arg-type]
                     no_wrap=justify == "right")
    cols = {c.key: c for c in comp.columns}
    for r in comp.rows:
        style = _STYLE[fmt.deviation_class(r["deviation_pct"])]
        t.add_row(r["label_zh"], fmt.cell(cols["ours"], r), fmt.cell(cols["published"], r),
                  fmt.cell(cols["deviation"], r),
                  f"[{style}]{fmt.cell(cols['deviation_pct'], r)}[/]")
    console.print(t)

    bad = [r for r in report.table("inconsistencies").rows
           if r["verdict"] in ("inconsistent", "exceeds")]
    if bad:
        icols = {c.key: c for c in report.table("inconsistencies").columns}
        console.print("[bold]文章数字的自身矛盾 The article's own inconsistencies[/]")
        for r in bad:
            console.print(
                f"  [red]✗[/] {r['label_zh']}: {fmt.cell(icols['computed'], r)} "
                f"{r['relation_sym']} {fmt.cell(icols['stated'], r)} "
                f"(差 {fmt.cell(icols['difference'], r)}, {r['verdict_zh']})", highlight=False)
