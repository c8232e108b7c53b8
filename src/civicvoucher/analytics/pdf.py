"""``report.pdf``: the policy report as an official prints it or forwards it, on A4.

The same report as the HTML page and the workbook (``compute_report`` → ``render.all_tables``),
laid out with ReportLab in its built-in CJK font (STSong-Light, a CID font every PDF reader
has: nothing is embedded, no font file is needed). On the first page: the title (program and
the organisation a subtree report covers), what it covers, where its data came from, when it
was made (in the deployment's zone), for a simulated sample a red box saying its tables are
sample values, the notices, and the key figures at full size. Then every table, each column of
amounts in one unit named in its header (元, 万元 or 亿元: ``analytics.view``, as on the page),
shares as 17.2%, ratios as 1.27, a missing value as '—'. A table longer than a page repeats
its header row on every page; a table too wide for a portrait page gets a landscape one.
Every page says which program and which page it is (第 3 页，共 7 页).

Chinese by default; ``lang="en"`` gives the English words (organisation and program names
stay as they are, amounts keep 万/亿 as officials write them).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from civicvoucher.analytics import describe, fmt
from civicvoucher.analytics.tables import Report, Table
from civicvoucher.analytics.view import cell_text, head_label, table_view

FONT = "STSong-Light"
LANGS = ("zh", "en")
# The key figures on the first page (at full size), as the HTML page's cards.
KEY_FIGURES = (
    "issued_fen_total", "expected_fen_total", "shortfall_fen_total", "issue_rate_total",
    "digital_share", "leverage_digital", "redemption_rate_digital", "breakage_fen",
    "tourism_cards",
)
WIDE = 8  # columns beyond this take a landscape page
# Characters STSong-Light has no glyph for, and what is drawn instead.
_GLYPHS = str.maketrans({"⚠": "", "·": "・", "−": "-", "✗": "×", "✓": "√"})

_W = {
    "zh": dict(title="{name}：政策报告", title_org="{name} · {org}：政策报告",
               program="活动", scope="范围", data="数据", made="生成时间",
               key="要点（全规模）", key_plain="要点", sample_mark="（样本值）",
               notice="注意：", note="说明：", none="无数据", page="第 {n} 页，共 {total} 页",
               sep="："),
    "en": dict(title="{name}: policy report", title_org="{name} · {org}: policy report",
               program="Program", scope="Scope", data="Data", made="Generated",
               key="At a glance (full size)", key_plain="At a glance",
               sample_mark=" (sample values)", notice="Note: ", note="Note: ",
               none="no rows", page="page {n} of {total}", sep=": "),
}
_NO_SAMPLE_MARK = ("comparison", "inconsistencies", "whatif", "headline")


def _safe(text: Any) -> str:
    """Text for a Paragraph: no glyph the font lacks, and ReportLab's markup escaped."""
    s = str(text).translate(_GLYPHS).strip()
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def title_of(report: Report, lang: str = "zh") -> str:
    """The report's title in ``lang``: the same words as ``describe.default_title``."""
    if lang == "zh":
        return describe.default_title(report)
    w = _W["en"]
    if report.scope.org_id is not None:
        return w["title_org"].format(name=report.program_name, org=report.scope.name_en)
    return w["title"].format(name=report.program_name)


class _Styles:
    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle

        base = dict(fontName=FONT, wordWrap="CJK")
        self.title = ParagraphStyle("title", fontSize=17, leading=22, spaceAfter=6, **base)
        self.meta = ParagraphStyle("meta", fontSize=9, leading=13,
                                   textColor=colors.HexColor("#444444"), **base)
        self.warn = ParagraphStyle("warn", fontSize=10.5, leading=15, textColor=colors.white,
                                   backColor=colors.HexColor("#C00000"), borderPadding=6,
                                   spaceBefore=8, spaceAfter=10, **base)
        self.notice = ParagraphStyle("notice", fontSize=10, leading=14, spaceAfter=4,
                                     textColor=colors.HexColor("#7A4B00"), **base)
        self.h2 = ParagraphStyle("h2", fontSize=12.5, leading=17, spaceBefore=12,
                                 spaceAfter=5, **base)
        self.h2_en = ParagraphStyle("h2en", fontSize=8.5, leading=11,
                                    textColor=colors.HexColor("#555555"), **base)
        self.note = ParagraphStyle("note", fontSize=8, leading=11, spaceBefore=3,
                                   textColor=colors.HexColor("#555555"), **base)
        self.cell = ParagraphStyle("cell", fontSize=8, leading=10, **base)
        self.cell_num = ParagraphStyle("celln", fontSize=8, leading=10, alignment=2, **base)
        self.head = ParagraphStyle("head", fontSize=8, leading=10,
                                   textColor=colors.HexColor("#1F2D3D"), **base)
        self.head_num = ParagraphStyle("headn", parent=self.head, alignment=2)
        self.fig_label = ParagraphStyle("figl", fontSize=8.5, leading=11,
                                        textColor=colors.HexColor("#444444"), **base)
        self.fig_value = ParagraphStyle("figv", fontSize=13, leading=16, **base)


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _width(text: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(text.translate(_GLYPHS), FONT, size)


def _col_widths(heads: list[str], rows: list[list[str]], text_cols: set[int],
                avail: float) -> list[float]:
    """Each column as wide as its widest cell and its header; when that is wider than
    ``avail``, text columns are capped (they wrap) and long headers wrap onto two lines, and
    what is still too wide is scaled down."""
    pad = 8
    body = [max((_width(r[i], 8) for r in rows[:400]), default=0) for i in range(len(heads))]
    head = [_width(h, 8) for h in heads]
    natural = [max(b, h, 22) + pad for b, h in zip(body, head, strict=True)]
    if sum(natural) <= avail:
        return natural
    out = []
    for i, (b, h) in enumerate(zip(body, head, strict=True)):
        if i in text_cols:
            b = min(b, avail * 0.32)
        out.append(max(b, h / 2 if h > 60 else h, 22) + pad)
    total = sum(out)
    return [w * avail / total for w in out] if total > avail else out


class _NumberedCanvas:
    """A canvas that knows the page count when it saves: every page's footer says
    '第 n 页，共 N 页' (the standard two-pass trick: keep each page's state, draw the footers
    at the end)."""

    @staticmethod
    def make(footer_left: str, page_words: str):
        from reportlab.lib import colors
        from reportlab.pdfgen.canvas import Canvas

        class NumberedCanvas(Canvas):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                self._pages: list[dict] = []

            def showPage(self):
                self._pages.append(dict(self.__dict__))
                self._startPage()

            def save(self):
                total = len(self._pages)
                for state in self._pages:
                    self.__dict__.update(state)
                    w, _h = self._pagesize
                    self.setFont(FONT, 7.5)
                    self.setFillColor(colors.HexColor("#666666"))
                    self.drawString(36, 22, footer_left.translate(_GLYPHS))
                    self.drawRightString(w - 36, 22, page_words.format(
                        n=self._pageNumber, total=total))
                    super().showPage()
                super().save()

        return NumberedCanvas


def _table_flowables(table: Table, report: Report, lang: str, st: _Styles,
                     avail: float) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, TableStyle
    from reportlab.platypus import Table as PdfTable

    w = _W[lang]
    v = table_view(table)
    heads = v["columns"]
    title = v["title_zh"] if lang == "zh" else v["title_en"]
    mark = w["sample_mark"] if report.sample and table.name not in _NO_SAMPLE_MARK else ""
    out: list = []
    heading = [Paragraph(_safe(title + mark), st.h2)]
    if lang == "zh":
        heading.append(Paragraph(_safe(v["title_en"]), st.h2_en))
    head_text = [head_label(h, lang) for h in heads]
    body = [[cell_text(c, h, lang) for c, h in zip(r["cells"], heads, strict=True)]
            for r in v["rows"]]
    if not body:
        out.append(KeepTogether([*heading, Paragraph(_safe(w["none"]), st.note)]))
        return out
    text_cols = {i for i, h in enumerate(heads) if not h["num"]}
    widths = _col_widths(head_text, body, text_cols, avail)
    data = [[Paragraph(_safe(t), st.head_num if h["num"] else st.head)
             for t, h in zip(head_text, heads, strict=True)]]
    for row in body:
        data.append([Paragraph(_safe(t), st.cell) if i in text_cols else t.translate(_GLYPHS)
                     for i, t in enumerate(row)])
    style = [
        ("FONT", (0, 0), (-1, -1), FONT, 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DCE6F1")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor("#8EA9C8")),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#D0D0D0")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for i, h in enumerate(heads):
        if h["num"]:
            style.append(("ALIGN", (i, 1), (i, -1), "RIGHT"))
    for n, r in enumerate(v["rows"], start=1):
        if r["total"]:
            style.append(("BACKGROUND", (0, n), (-1, n), colors.HexColor("#F2F2F2")))
            style.append(("LINEABOVE", (0, n), (-1, n), 0.6, colors.HexColor("#777777")))
    t = PdfTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    t.setStyle(TableStyle(style))
    # the heading stays with the table's first rows; the rest may run over pages
    out.append(KeepTogether([*heading, Spacer(1, 2)]) if len(body) > 12 else
               KeepTogether([*heading, t]))
    if len(body) > 12:
        out.append(t)
    note = v["note_zh"] if lang == "zh" else v["note_en"]
    if note:
        out.append(Paragraph(_safe(w["note"] + note), st.note))
    return out


def _key_figures(report: Report, lang: str, st: _Styles, avail: float) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, TableStyle
    from reportlab.platypus import Table as PdfTable

    figs = [h for k in KEY_FIGURES if (h := report.headline.get(k)) is not None]
    if not figs:
        return []
    cells = [[Paragraph(_safe(h.label_zh if lang == "zh" else h.label_en), st.fig_label),
              Paragraph(_safe(fmt.value(h.full, h.unit)), st.fig_value)] for h in figs]
    per_row = 3
    grid = []
    for i in range(0, len(cells), per_row):
        chunk = cells[i:i + per_row]
        chunk += [["", ""]] * (per_row - len(chunk))
        grid.append([c for pair in chunk for c in pair[:1]])
        grid.append([c for pair in chunk for c in pair[1:]])
    t = PdfTable(grid, colWidths=[avail / per_row] * per_row, hAlign="LEFT")
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#C8D3E0")),
             ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]
    for r in range(0, len(grid), 2):
        style.append(("LINEABOVE", (0, r), (-1, r), 0.3, colors.HexColor("#C8D3E0")))
    t.setStyle(TableStyle(style))
    w = _W[lang]
    return [Paragraph(_safe(w["key"] if report.sample else w["key_plain"]), st.h2), t]


def _front(report: Report, title: str, lang: str, st: _Styles) -> list:
    from reportlab.platypus import Paragraph

    w = _W[lang]
    sep = w["sep"]
    if lang == "zh":
        scope, data = describe.scope_zh(report), describe.data_zh(report)
    else:
        scope, data = describe.scope_en(report), describe.data_en(report)
    out = [Paragraph(_safe(title), st.title)]
    for label, value in ((w["program"], f"{report.program_name}（{report.program_key}）"
                          if lang == "zh" else f"{report.program_name} ({report.program_key})"),
                         (w["scope"], scope), (w["data"], data),
                         (w["made"], describe.generated(report))):
        out.append(Paragraph(_safe(f"{label}{sep}{value}"), st.meta))
    if report.sample:
        warning = describe.sample_warning_zh(report) if lang == "zh" else \
            describe.sample_warning_en(report)
        out.append(Paragraph(_safe(warning), st.warn))
    for n in report.notices:
        out.append(Paragraph(_safe(w["notice"] + (n.zh if lang == "zh" else n.en)),
                             st.notice))
    return out


def pdf_bytes(report: Report, tables: Iterable[Table], *, title: str | None = None,
              lang: str = "zh") -> bytes:
    """The PDF of ``report`` with ``tables`` (``render.all_tables(report)``), in ``lang``."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        NextPageTemplate,
        PageBreak,
        PageTemplate,
    )

    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    _register_font()
    st = _Styles()
    title = title or title_of(report, lang)
    buf = io.BytesIO()
    margin = 36
    doc = BaseDocTemplate(buf, pagesize=A4, leftMargin=margin, rightMargin=margin,
                          topMargin=margin, bottomMargin=margin + 10, title=title,
                          author="civicvoucher", subject=report.program_key,
                          lang="zh-CN" if lang == "zh" else "en")
    pw, ph = A4
    lw, lh = landscape(A4)
    doc.addPageTemplates([
        PageTemplate("portrait", [Frame(margin, margin + 10, pw - 2 * margin,
                                        ph - 2 * margin - 10, id="p")], pagesize=A4),
        PageTemplate("landscape", [Frame(margin, margin + 10, lw - 2 * margin,
                                         lh - 2 * margin - 10, id="l")],
                     pagesize=landscape(A4)),
    ])
    story: list = _front(report, title, lang, st)
    story += _key_figures(report, lang, st, pw - 2 * margin)
    orientation = "portrait"
    for t in tables:
        wide = len([c for c in t.columns if not c.code]) > WIDE
        want = "landscape" if wide else "portrait"
        if want != orientation:
            story += [NextPageTemplate(want), PageBreak()]
            orientation = want
        avail = (lw if wide else pw) - 2 * margin
        story += _table_flowables(t, report, lang, st, avail)
    footer = f"{report.program_name}（{report.program_key}）{'  ' + describe.generated(report)}"
    doc.build(story, canvasmaker=_NumberedCanvas.make(footer, _W[lang]["page"]))
    return buf.getvalue()


def write_pdf(path: Path, report: Report, tables: Iterable[Table], *, title: str | None = None,
              lang: str = "zh") -> Path:
    path = Path(path)
    path.write_bytes(pdf_bytes(report, tables, title=title, lang=lang))
    return path
