"""Report outputs: one offline HTML page, a CSV per table, one XLSX workbook; a Rich summary.

The HTML inlines the vendored ECharts so it opens from a file or an e-mail with no network.
CSV is UTF-8 with BOM (Excel shows Chinese), written by ``core.tabular.write_table``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.table import Table as RichTable

from civicvoucher.analytics import charts, fmt
from civicvoucher.analytics.report import compare_reports
from civicvoucher.analytics.tables import Column, Report, Table, headline_table
from civicvoucher.core.tabular import write_table

# The figures shown as cards at the top of the page and in the terminal summary.
KEY_FIGURES = (
    "issued_fen_total", "shortfall_fen_total", "digital_share", "leverage_digital",
    "redemption_rate_digital", "tourism_cards",
)


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
    return Table("whatif", "情景对比（全省规模）", "What-if vs baseline (full size)", cols,
                 compare_reports(baseline, variant))


def _all_tables(report: Report, baseline: Report | None) -> list[Table]:
    tables = [headline_table(report), *report.tables.values()]
    if baseline is not None:
        tables.append(whatif_table(baseline, report))
    return tables


def _view(table: Table) -> dict[str, Any]:
    """A table as the template needs it: visible columns and formatted cells."""
    cols = [c for c in table.columns if not c.code]
    rows = []
    for r in table.rows:
        cells = []
        for c in cols:
            en = ""
            if c.key.endswith("_zh"):
                base = c.key[:-3]
                en = r.get(f"{base}_en") or (r.get(base) if base != "label" else "") or ""
            css = "num" if c.kind != "text" else ""
            if c.key in ("deviation_pct", "delta_pct"):
                css += " dev-" + fmt.deviation_class(r.get(c.key))
            if c.key == "verdict_zh":
                css += " verdict-" + str(r.get("verdict"))
            cells.append(dict(text=fmt.cell(c, r), en=str(en) if en != "" else "", css=css))
        total = any(r.get(k) == "total" for k in ("level", "form", "group"))
        rows.append(dict(cells=cells, total=total))
    return dict(name=table.name, title_zh=table.title_zh, title_en=table.title_en,
                note_zh=table.note_zh, note_en=table.note_en, columns=cols, rows=rows)


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '</' can close the tag."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(report: Report, *, baseline: Report | None = None, title: str) -> str:
    env = Environment(loader=PackageLoader("civicvoucher.analytics", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    cards = [
        dict(label_zh=h.label_zh, label_en=h.label_en, text=fmt.value(h.full, h.unit))
        for key in KEY_FIGURES if (h := report.headline.get(key)) is not None
    ]
    chart_list = charts.all_charts(report)
    order = ["comparison", "inconsistencies"]
    main = [report.table(n) for n in order if n in report.tables]
    rest = [headline_table(report)] + [t for n, t in report.tables.items() if n not in order]
    return env.get_template("report.html.j2").render(
        title=title, report=report, cards=cards, charts=chart_list,
        charts_json=_json_for_script({c["id"]: c["option"] for c in chart_list}),
        main_tables=[_view(t) for t in main], other_tables=[_view(t) for t in rest],
        whatif=_view(whatif_table(baseline, report)) if baseline is not None else None,
        scale_pct=f"{report.scale * 100:g}%", echarts=echarts_js(),
    )


def _header(c: Column) -> str:
    return f"{c.label_zh} ({c.key})"


def _xlsx_value(ws: Any, v: Any) -> Any:
    """Text starting with '=' stays text: a cell must never become a formula."""
    if isinstance(v, str) and v.startswith("="):
        from openpyxl.cell import Cell

        cell = Cell(ws, value=v)
        cell.data_type = "s"
        return cell
    return v


def _write_xlsx(path: Path, tables: list[Table]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    for t in tables:
        ws = wb.create_sheet(t.name[:31])
        ws.append([_header(c) for c in t.columns])
        for cell in ws[1]:
            cell.font = bold
        for r in t.rows:
            ws.append([_xlsx_value(ws, r.get(c.key)) for c in t.columns])
        for i, c in enumerate(t.columns, start=1):
            letter = ws.cell(row=1, column=i).column_letter
            ws.column_dimensions[letter].width = max(12, len(_header(c)) + 4)
            if c.kind == "fen":
                for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.number_format = "#,##0"
        ws.freeze_panes = "A2"
    wb.save(path)


def write_outputs(report: Report, out_dir: Path, *, baseline: Report | None = None,
                  title: str) -> dict[str, Path]:
    """Write report.html, <table>.csv for every table, and report.xlsx into ``out_dir``.

    Returns {"html": path, "xlsx": path, "csv:<table>": path, ...}. Money in the files is
    integer fen (exact); the page shows it as 8.7亿 / 4,800万.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    html = out_dir / "report.html"
    html.write_text(render_html(report, baseline=baseline, title=title), encoding="utf-8")
    paths["html"] = html
    tables = _all_tables(report, baseline)
    for t in tables:
        p = out_dir / f"{t.name}.csv"
        write_table(p, [_header(c) for c in t.columns],
                    ([r.get(c.key) for c in t.columns] for r in t.rows))
        paths[f"csv:{t.name}"] = p
    xlsx = out_dir / "report.xlsx"
    _write_xlsx(xlsx, tables)
    paths["xlsx"] = xlsx
    return paths


_STYLE = {"ok": "green", "warn": "yellow", "bad": "red", "none": "dim"}


def print_summary(report: Report, console: Console) -> None:
    """Headline numbers, the comparison with the article (deviations coloured), and where the
    article disagrees with itself."""
    console.rule(f"[bold]{report.program_name}[/] ({report.program_key}) · "
                 f"sample scale {report.scale:g}")
    heads = RichTable(title="主要指标 Headline (全省规模 full size)", show_lines=False)
    heads.add_column("指标 figure")
    heads.add_column("值 value", justify="right")
    for key in KEY_FIGURES:
        h = report.headline.get(key)
        if h is not None:
            heads.add_row(f"{h.label_zh} [dim]{h.label_en}[/]", fmt.value(h.full, h.unit))
    console.print(heads)

    comp = report.table("comparison")
    t = RichTable(title="与文章对照 Ours vs the article")
    for head, justify in (("指标 figure", "left"), ("本系统 ours", "right"),
                          ("文章 article", "right"), ("偏差 deviation", "right"),
                          ("偏差% dev %", "right")):
        t.add_column(head, justify=justify)  # type: ignore[arg-type]
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
