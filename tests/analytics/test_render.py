"""Report files: offline HTML, UTF-8-with-BOM CSV per table, one XLSX; the terminal summary."""

from __future__ import annotations

import csv
import dataclasses
import io
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook
from rich.console import Console

from civicvoucher.analytics import fmt
from civicvoucher.analytics.render import print_summary, render_html, write_outputs
from civicvoucher.analytics.tables import Column
from tests.analytics.world import build_report_world


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [f"{tag} {k}={v}" for k, v in attrs
                      if k in ("src", "href") and v and not v.startswith("#")]


def external_refs(html: str) -> list[str]:
    """Every src= / href= of a tag but links within the page (script bodies are not parsed
    as HTML)."""
    parser = _Refs()
    parser.feed(html)
    return parser.refs


@pytest.fixture
def report(sqlite_db, make_report):
    build_report_world(sqlite_db)
    return make_report(sqlite_db.url)


def test_write_outputs_writes_every_table_three_ways(report, tmp_path):
    from civicvoucher.analytics.render import all_tables
    from civicvoucher.analytics.xlsx import CONTENTS, sheet_name

    paths = write_outputs(report, tmp_path / "out", title="山西 2020 报告")
    names = [t.name for t in all_tables(report)]
    assert set(names) == {"headline", *report.tables}
    assert sorted(k for k in paths if k.startswith("csv:")) == sorted(f"csv:{n}" for n in names)
    raw = paths["csv:expected_issued"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["层级代码 (level)", "层级 (level_zh)", "在册会员 (members)"]
    assert rows[-1][0] == "total" and rows[-1][3] == "330000"  # exact fen, not 3,300元
    wb = load_workbook(paths["xlsx"], read_only=True)
    assert wb.sheetnames == [CONTENTS, *(sheet_name(t) for t in all_tables(report))]
    sheet = wb[sheet_name(report.table("inconsistencies"))]
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert sum(1 for row in values if row[0] in {r["label_zh"] for r in
                                                 report.table("inconsistencies").rows}) == len(
        report.table("inconsistencies").rows)
    assert all(not (isinstance(v, str) and v.startswith("=")) for row in values for v in row)


def test_html_is_self_contained(report, tmp_path):
    html = write_outputs(report, tmp_path, title="报告")["html"].read_text(encoding="utf-8")
    assert "echarts.init" in html and len(html) > 1_000_000  # ECharts is inlined
    assert external_refs(html) == []
    for chart_id in ("chart-issued", "chart-daily", "chart-leverage", "chart-guarantee"):
        assert f'id="{chart_id}"' in html
    assert "文章数字的自身矛盾" in html and "own inconsistencies" in html
    assert "情景与基准对比" not in html


def test_what_if_section_appears_with_a_baseline(report, tmp_path):
    paths = write_outputs(report, tmp_path, baseline=report, title="情景")
    assert "情景与基准对比" in paths["html"].read_text(encoding="utf-8")
    assert "csv:whatif" in paths
    rows = list(csv.reader(io.StringIO(paths["csv:whatif"].read_text(encoding="utf-8-sig"))))
    assert len(rows) == len(report.headline) + 1


def test_page_shows_money_the_way_officials_read_it(report):
    html = render_html(report, title="t")
    assert "2.78亿" in html  # the article's province digital + paper
    assert "240万" in html  # our sample's total issued (240,000 fen), at full size on a card


class _Cells(HTMLParser):
    """Header and cell texts of one table of the page, by its section id."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section, self.inside, self.cell = section, False, None
        self.heads: list[str] = []
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.inside = a.get("id") == self.section
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = [tag, ""]
        elif self.inside and tag in ("small", "span") and self.cell is not None:
            self.cell.append("skip")

    def handle_endtag(self, tag):
        if self.cell is not None and tag in ("td", "th"):
            (self.heads if self.cell[0] == "th" else self.rows[-1]).append(self.cell[1].strip())
            self.cell = None
        elif self.cell is not None and tag in ("small", "span") and self.cell[-1] == "skip":
            self.cell.pop()

    def handle_data(self, data):
        if self.cell is not None and self.cell[-1] != "skip":
            self.cell[1] += data


def test_every_column_of_amounts_is_in_one_unit(report):
    """A daily table whose days run from 5,000 yuan to 200万 yuan: one unit (万元) for the
    column, named in its header, never 5,000元 above 200万."""
    daily = report.table("daily_spending")
    rows = [dict(daily.rows[0], voucher_fen=500_000, order_fen=700_000),
            dict(daily.rows[1], voucher_fen=200_000_000, order_fen=250_010_000)]
    changed = dataclasses.replace(report, tables={
        **report.tables, "daily_spending": dataclasses.replace(daily, rows=rows)})
    cells = _Cells("table-daily_spending")
    cells.feed(render_html(changed, title="t"))
    heads = cells.heads
    assert heads[2:4] == ["券抵扣额（万元）", "消费额（万元）"]
    assert [r[2:4] for r in cells.rows if r] == [["0.50", "0.70"], ["200.00", "250.01"]]
    for row in cells.rows:
        for text in row[1:]:
            assert not any(u in text for u in ("元", "万", "亿")), row


def test_summary_colours_deviations_and_lists_the_articles_contradictions(report):
    console = Console(record=True, width=160, color_system="truecolor")
    print_summary(report, console)
    styled = console.export_text(styles=True, clear=False)
    out = console.export_text()
    assert "与文章对照" in out and "数字券拉动效应" in out
    assert "2.78亿 ＝ 2.7亿" in out  # province digital + paper vs the stated total
    lines = {line.split("│")[1].strip(): line for line in styled.splitlines()
             if line.count("│") > 3}
    assert "\x1b[32m+5.0%" in lines["数字券拉动效应"]  # leverage 1.33 vs 1.27: within 5%
    assert "\x1b[31m-99.7%" in lines["全省实发合计"]


def test_formatting():
    assert fmt.value(87_000_000_000, "fen") == "8.7亿"
    assert fmt.value(4_800_000_000, "fen") == "4,800万"
    assert fmt.value(0.172, "share") == "17.2%"
    assert fmt.value(None, "ratio") == "—"
    assert fmt.signed(-800_000_000, "fen") == "-800万"
    assert fmt.signed(0.0041, "share") == "+0.41 pp"
    assert fmt.cell(Column("deviation_pct", "", "", "share"), {"deviation_pct": -0.05}) == "-5.0%"
    assert fmt.deviation_class(0.04) == "ok" and fmt.deviation_class(-0.5) == "bad"
