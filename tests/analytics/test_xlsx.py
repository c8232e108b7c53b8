"""report.xlsx opened as an official opens it (openpyxl): Chinese sheet names and headers with
English beneath, money as yuan numbers with a number format, shares as percentages, a title
row naming program, scope and date, header rows frozen, and, for a sample, a loud row."""

from __future__ import annotations

from decimal import Decimal

import pytest
from openpyxl import load_workbook

from civicvoucher.analytics.render import write_outputs
from tests.analytics.world import build_report_world

SHEETS = {"comparison": "与文章对照", "inconsistencies": "文章自身矛盾", "headline": "主要指标",
          "expected_issued": "应发与实发"}
CONTENTS = "目录"


@pytest.fixture
def world_url(sqlite_db):
    build_report_world(sqlite_db)
    return sqlite_db.url


def header_row(ws) -> int:
    """The Chinese header row: the row after the title rows (the frozen pane is 2 below)."""
    return int(ws.freeze_panes[1:]) - 2


def cells(ws, row: int) -> list:
    return [c.value for c in ws[row]]


def column(ws, header: str) -> int:
    row = cells(ws, header_row(ws))
    return row.index(header) + 1


def test_money_is_yuan_with_a_number_format_and_sheets_are_chinese(world_url, make_report,
                                                                    tmp_path):
    report = make_report(world_url, scale=1)
    wb = load_workbook(write_outputs(report, tmp_path, title="山西 2020 报告")["xlsx"])
    assert wb.sheetnames[0] == CONTENTS
    assert wb.sheetnames[1:4] == [SHEETS["comparison"], SHEETS["inconsistencies"],
                                  SHEETS["headline"]]
    assert all(not name.isascii() for name in wb.sheetnames)
    ws = wb[SHEETS["expected_issued"]]
    h = header_row(ws)
    assert ws.freeze_panes == f"A{h + 2}"
    assert cells(ws, h) == ["层级", "在册会员", "应发额（元）", "实发额（元）", "缺口（元）",
                            "发放率（%）"]
    assert cells(ws, h + 1) == ["level", "active members", "expected (yuan)", "issued (yuan)",
                                "shortfall (yuan)", "issued / expected"]
    total = cells(ws, h + 5)  # province, city, county, total
    assert total[0] == "合计"
    expected = ws.cell(row=h + 5, column=column(ws, "应发额（元）"))
    assert expected.value == 3300 and expected.number_format == "#,##0.00"  # 330,000 fen
    rate = ws.cell(row=h + 5, column=column(ws, "发放率（%）"))
    assert rate.value == pytest.approx(240000 / 330000) and rate.number_format == "0.0%"
    members = ws.cell(row=h + 5, column=column(ws, "在册会员"))
    assert members.value == 11 and members.number_format == "#,##0"
    # the title rows: which program, what scope, when (local time)
    assert ws["A1"].value == "山西 2020 报告 — 应发与实发（按层级）"
    assert "活动：program p2020（p2020）" in ws["A2"].value
    assert "范围：全部单位" in ws["A2"].value and "实际数据" in ws["A2"].value
    assert "+08:00 (Asia/Shanghai)" in ws["A2"].value
    assert not any("样本" in str(v) for row in ws.iter_rows(values_only=True) for v in row)
    # each column wide enough for its header
    assert ws.column_dimensions["C"].width >= len("应发额（元）") * 2
    # money in fen stays exact in yuan: 1 fen is 0.01
    head = wb[SHEETS["headline"]]
    values = {r[0]: r for r in head.iter_rows(min_row=header_row(head) + 2, values_only=True)}
    assert values["全省实发合计"][2:4] == ("元", 2400)
    assert values["数字化占比"][2] == "%"


def test_a_sample_says_so_on_every_sheet(world_url, make_report, tmp_path):
    report = make_report(world_url, scale=0.01)
    wb = load_workbook(write_outputs(report, tmp_path, title="山西 2020 报告")["xlsx"])
    for ws in wb.worksheets:
        warning = next(v for (v,) in ws.iter_rows(min_row=1, max_row=6, max_col=1,
                                                 values_only=True) if v and "⚠" in str(v))
        assert "样本值，不是实际数字" in warning and "少报 100 倍" in warning
        assert "SAMPLE VALUES" in warning
    ws = wb[SHEETS["headline"]]
    h = header_row(ws)
    assert cells(ws, h)[:5] == ["指标", "英文名称", "单位", "样本值", "全规模"]
    row = next(r for r in ws.iter_rows(min_row=h + 2) if r[0].value == "全省实发合计")
    assert (row[3].value, row[4].value) == (2400, 240000)  # sample, and x 100
    assert row[4].number_format == "#,##0.00"
    warn = ws.cell(row=h - 1, column=1)
    assert warn.font.color.rgb.endswith("FFFFFF") and warn.fill.fgColor.rgb.endswith("C00000")


def test_cells_are_numbers_never_formulas_and_deviations_are_signed(world_url, make_report,
                                                                    tmp_path):
    report = make_report(world_url)
    wb = load_workbook(write_outputs(report, tmp_path, title="山西 2020 报告")["xlsx"])
    ws = wb[SHEETS["comparison"]]
    h = header_row(ws)
    heads = cells(ws, h)
    assert heads[:3] == ["指标", "英文名称", "单位"]
    rows = list(ws.iter_rows(min_row=h + 2, max_row=h + 1 + len(report.table("comparison").rows)))
    by_label = {r[0].value: r for r in rows}
    share = by_label["数字化占比"]
    dev = share[heads.index("偏差")]
    assert dev.number_format.endswith('" 个百分点"')
    pct = share[heads.index("偏差%")]
    assert pct.number_format == "+0.0%;-0.0%;0.0%"
    money = by_label["全省实发合计"][heads.index("本系统（全省规模）")]
    assert isinstance(money.value, int | float | Decimal) and money.number_format == "#,##0.00"
    for sheet in wb.worksheets:
        for row in sheet.iter_rows():
            for c in row:
                assert c.data_type != "f", (sheet.title, c.coordinate, c.value)
    contents = wb[CONTENTS]
    links = [c.hyperlink.location for c in contents["A"] if c.hyperlink is not None]
    assert links == [f"'{name}'!A1" for name in wb.sheetnames[1:]]
