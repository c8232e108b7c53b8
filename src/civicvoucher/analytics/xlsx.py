"""``report.xlsx``: a workbook an official can forward as it is.

Chinese sheet names and headers (English in a second header row), money in yuan as numbers
with a number format (so Excel sums them), shares as percentages, a title row on every sheet
saying which program, what it covers, and when it was made (local time); for a simulated
sample, a red row saying loudly that the numbers are sample values. Header rows frozen,
columns sized, printable on A4 (landscape, fitted to the width, headers repeated). A first
sheet, 目录, lists the others with links.

Machine keys (``level = 'province'``) are left out: the CSV files keep every column exactly
(money in integer fen), for programs, not people.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Any

from civicvoucher.analytics import describe
from civicvoucher.analytics.tables import Column, Report, Table
from civicvoucher.core.money import FEN_PER_YUAN

# Sheet names (at most 31 characters, none of []:*?/\).
SHEETS = {
    "headline": "主要指标", "comparison": "与文章对照", "inconsistencies": "文章自身矛盾",
    "whatif": "情景对比", "expected_issued": "应发与实发", "issued_by_form": "按形式实发",
    "leverage": "拉动效应", "redemption_rate": "核销率", "breakage": "过期未用",
    "guarantee_groups": "财政保障分组", "tourism_cards": "旅游年卡",
    "daily_spending": "每日消费", "merchant_concentration": "商户集中度", "by_org": "按单位",
}
CONTENTS = "目录"
UNIT_ZH = {"fen": "元", "count": "个", "share": "%", "ratio": "倍", "text": "", "bool": ""}
YUAN = "#,##0.00"
FORMATS = {"count": "#,##0", "share": "0.0%", "ratio": "0.00"}
SIGNED_PCT = "+0.0%;-0.0%;0.0%"
SIGNED_YUAN = "+#,##0.00;-#,##0.00;0.00"
SIGNED_COUNT = "+#,##0;-#,##0;0"
POINTS = '+0.00" 个百分点";-0.00" 个百分点";0.00" 个百分点"'
_SIGNED = ("deviation", "difference", "delta")
_PCT = ("deviation_pct", "delta_pct")


def sheet_name(table: Table) -> str:
    name = SHEETS.get(table.name) or table.title_zh
    return "".join(ch for ch in name if ch not in "[]:*?/\\")[:31]


def _columns(table: Table) -> list[Column]:
    """The columns people read: not machine keys, except the row's unit (shown in Chinese)
    and the English label of a row."""
    return [c for c in table.columns if not c.code or c.key in ("unit", "label_en")]


def _header(c: Column) -> tuple[str, str]:
    if c.key == "unit":
        return "单位", "unit"
    if c.key == "label_en":
        return "英文名称", c.label_en
    if c.kind == "fen":
        return f"{c.label_zh}（元）", f"{c.label_en} (yuan)"
    if c.kind == "share" and c.key not in _PCT:
        return f"{c.label_zh}（%）", c.label_en
    return c.label_zh, c.label_en


def _yuan(fen: int) -> Decimal:
    """Exact yuan (Decimal, written to the file as its digits): 123456 fen → 1234.56."""
    return Decimal(int(fen)) / FEN_PER_YUAN


def _cell(c: Column, row: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, number format) of one cell."""
    v = row.get(c.key)
    if c.key == "unit":
        return UNIT_ZH.get(str(v), str(v)), None
    unit = row.get("unit", "text") if c.kind == "unit" else c.kind
    if v is None:
        return "—", None
    if c.key in _PCT:
        return float(v), SIGNED_PCT
    if unit == "fen":
        return _yuan(v), SIGNED_YUAN if c.key in _SIGNED else YUAN
    if unit == "share" and c.key in _SIGNED:
        return round(float(v) * 100, 6), POINTS
    if unit == "count":
        return int(v), SIGNED_COUNT if c.key in _SIGNED else FORMATS["count"]
    if unit == "share":
        return float(v), "0.00%" if c.key == "computed" else FORMATS["share"]
    if unit == "ratio":
        return float(v), "0.0000" if c.key in ("computed", *_SIGNED) else FORMATS["ratio"]
    if unit == "bool":
        return ("是" if v else "否"), None
    return str(v), None


def _width(text: str) -> int:
    """Display width: a CJK character is two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _shown(value: Any, number_format: str | None) -> str:
    """Roughly what Excel shows, for column widths."""
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.2f}" + ("%" if number_format and "%" in number_format else "")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _text(ws: Any, v: Any) -> Any:
    """Text starting with '=' stays text: a cell must never become a formula."""
    if isinstance(v, str) and v.startswith("="):
        from openpyxl.cell import Cell

        cell = Cell(ws, value=v)
        cell.data_type = "s"
        return cell
    return v


class _Styles:
    def __init__(self) -> None:
        from openpyxl.styles import Alignment, Font, PatternFill

        self.title = Font(bold=True, size=14)
        self.meta = Font(color="555555")
        self.warn = Font(bold=True, color="FFFFFF", size=12)
        self.warn_fill = PatternFill("solid", fgColor="C00000")
        self.head = Font(bold=True)
        self.head_fill = PatternFill("solid", fgColor="DCE6F1")
        self.head_en = Font(italic=True, color="555555", size=9)
        self.total = Font(bold=True)
        self.note = Font(color="555555", size=9)
        self.wrap = Alignment(wrap_text=True, vertical="top")
        self.left = Alignment(horizontal="left", vertical="top")
        self.link = Font(color="0563C1", underline="single")


def _preamble(ws: Any, report: Report, title: str, subtitle_en: str, width: int,
              st: _Styles) -> int:
    """Title, what it covers, the sample warning: returns the next free row."""
    ws.append([title])
    ws.cell(row=1, column=1).font = st.title
    ws.append([f"活动：{report.program_name}（{report.program_key}）｜范围：{describe.scope_zh(report)}"
               f"｜数据：{describe.data_zh(report)}｜生成时间：{describe.generated(report)}"])
    ws.cell(row=2, column=1).font = st.meta
    ws.append([f"{subtitle_en} · {report.program_key} · {describe.scope_en(report)} · "
               f"{describe.data_en(report)}"])
    ws.cell(row=3, column=1).font = st.meta
    row = 4
    if report.sample:
        ws.append([f"{describe.sample_warning_zh(report)}  {describe.sample_warning_en(report)}"])
        cell = ws.cell(row=row, column=1)
        cell.font, cell.fill, cell.alignment = st.warn, st.warn_fill, st.wrap
        if width > 1:
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=width)
        ws.row_dimensions[row].height = 48
        row += 1
    for n in report.notices:
        ws.append([f"注意：{n.zh}  {n.en}"])
        ws.cell(row=row, column=1).font = st.head
        row += 1
    return row


def _table_sheet(wb: Any, report: Report, table: Table, title: str, st: _Styles) -> None:
    ws = wb.create_sheet(sheet_name(table))
    cols = _columns(table)
    first = _preamble(ws, report, f"{title} — {table.title_zh}", table.title_en, len(cols), st)
    heads = [_header(c) for c in cols]
    ws.append([zh for zh, _ in heads])
    ws.append([en for _, en in heads])
    for i in range(1, len(cols) + 1):
        ws.cell(row=first, column=i).font = st.head
        ws.cell(row=first, column=i).fill = st.head_fill
        ws.cell(row=first, column=i).alignment = st.wrap
        ws.cell(row=first + 1, column=i).font = st.head_en
        ws.cell(row=first + 1, column=i).fill = st.head_fill
    widths = [max(_width(zh), _width(en)) for zh, en in heads]
    for r in table.rows:
        values = [_cell(c, r) for c in cols]
        ws.append([_text(ws, v) for v, _ in values])
        n = ws.max_row
        total = any(r.get(k) == "total" for k in ("level", "form", "group"))
        for i, (v, number_format) in enumerate(values, start=1):
            cell = ws.cell(row=n, column=i)
            if number_format:
                cell.number_format = number_format
            if total:
                cell.font = st.total
            widths[i - 1] = max(widths[i - 1], _width(_shown(v, number_format)))
    if not table.rows:
        ws.append(["无数据 no rows"])
    if table.note_zh:
        ws.append([])
        ws.append([f"说明：{table.note_zh}"])
        ws.cell(row=ws.max_row, column=1).font = st.note
        ws.append([f"Note: {table.note_en}"])
        ws.cell(row=ws.max_row, column=1).font = st.note
    from openpyxl.utils import get_column_letter

    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = min(max(w + 2, 8), 50)
    ws.freeze_panes = ws.cell(row=first + 2, column=1).coordinate
    ws.print_title_rows = f"{first}:{first + 1}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _contents_sheet(wb: Any, report: Report, tables: list[Table], title: str,
                    st: _Styles) -> None:
    from openpyxl.worksheet.hyperlink import Hyperlink

    ws = wb.create_sheet(CONTENTS)
    first = _preamble(ws, report, title, "Contents", 4, st)
    ws.append(["工作表", "内容", "Contents", "说明"])
    ws.append(["sheet", "content (zh)", "content (en)", "note"])
    for i in range(1, 5):
        ws.cell(row=first, column=i).font = st.head
        ws.cell(row=first, column=i).fill = st.head_fill
        ws.cell(row=first + 1, column=i).font = st.head_en
        ws.cell(row=first + 1, column=i).fill = st.head_fill
    for t in tables:
        name = sheet_name(t)
        ws.append([name, t.title_zh, t.title_en, t.note_zh])
        cell = ws.cell(row=ws.max_row, column=1)
        cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"'{name}'!A1")
        cell.font = st.link
        ws.cell(row=ws.max_row, column=4).alignment = st.wrap
    for letter, width in zip("ABCD", (16, 40, 44, 70), strict=True):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = ws.cell(row=first + 2, column=1).coordinate


def write_xlsx(path: Path, report: Report, tables: list[Table], *, title: str) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    st = _Styles()
    _contents_sheet(wb, report, tables, title, st)
    for t in tables:
        _table_sheet(wb, report, t, title, st)
    wb.save(path)
