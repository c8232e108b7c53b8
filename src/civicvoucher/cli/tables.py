"""The one way the command line shows a list and exports it: a Rich table on screen, or a
CSV / XLSX file that can be forwarded as it is.

A list is a ``Sheet``: a title, ``Column``s (Chinese header, English header, kind) and rows of
raw values: money in fen, instants in naive UTC, as the services return them. The column's
kind decides how each door shows a value, so no command formats money or time itself:

========  ==========================  ======================  ===============================
kind      screen                      CSV                     XLSX
========  ==========================  ======================  ===============================
fen       ¥1,234.56                   ¥1,234.56               yuan, a number, ``¥#,##0.00``
instant   2020-07-11 00:00 +08:00     2020-07-11 00:00        local date-time cell
day       2020-07-10                  2020-07-10              date cell (or local date-time)
count     1,234                       1234                    a number, ``#,##0``
id        1234                        1234                    a number
text      as is                       as is                   a text cell
image     —                           a file beside the CSV   the picture, in its cell
========  ==========================  ======================  ===============================

Instants are shown in the deployment's zone (``CIVICVOUCHER_TIMEZONE``, default
Asia/Shanghai); a ``day`` is a local date already (``vouchers.listing.validity_days``).
Files carry two header rows, Chinese then English; an XLSX also a title row above them,
frozen panes and repeated print titles below them, column widths, and one worksheet per
sheet. A CSV (UTF-8 with BOM, so Excel shows the Chinese) holds one sheet: several go to one
file each beside ``path``. Text a spreadsheet would run as a formula is neutralised as the
import templates and reject files do (``core.tabular``).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from civicvoucher import i18n
from civicvoucher.cli.common import audit, console, database
from civicvoucher.core import clock
from civicvoucher.core.money import FEN_PER_YUAN, format_yuan
from civicvoucher.core.tabular import _formula_like, _printable
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import _, localize, msg

MISSING = "—"
KINDS = ("text", "id", "count", "fen", "instant", "day", "image")
YUAN_FORMAT = '"¥"#,##0.00'
_XLSX_FORMATS = {"fen": YUAN_FORMAT, "count": "#,##0", "id": "0", "instant": "yyyy-mm-dd hh:mm",
                 "day": "yyyy-mm-dd"}
_SHEET_JUNK = re.compile(r"[\[\]:*?/\\]")
_FILE_JUNK = re.compile(r'[\\/:*?"<>|\s]+')
IMAGE_ROW_HEIGHT = 90  # points: a QR image of ~110 px fits


@dataclass(frozen=True)
class Column:
    zh: str
    en: str
    kind: str = "text"
    width: int | None = None  # characters; default from the headers

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column kind must be one of {KINDS}, not {self.kind!r}")  # a bug


def named(labels, code: object) -> str:
    """A code (a status, a category, a channel, a level) as the reader's language names it:
    its Chinese label from the domain's table in zh, the code (with spaces) in en."""
    if code is None:
        return ""
    if i18n.current() == i18n.EN:
        return str(code).replace("_", " ")
    for k, v in labels.items():
        if str(k) == str(code):
            return v
    return str(code)


def heading(c: Column) -> str:
    """A column's header on screen: in the reader's language (files carry both)."""
    return c.zh if i18n.current() == i18n.ZH else c.en


@dataclass(frozen=True)
class Image:
    """A picture for an ``image`` column: embedded in XLSX, a file beside a CSV."""

    name: str  # file name, e.g. '1234.png'
    png: bytes


@dataclass
class Sheet:
    name: str  # the worksheet's name, or the CSV file's suffix
    columns: Sequence[Column]
    rows: Iterable[Sequence[object]]
    title: str = ""


def text(value: object, kind: str) -> str:
    """A value as people read it on screen (and in CSV, apart from counts and images)."""
    if value is None:
        return MISSING
    if isinstance(value, Image):
        return value.name
    if kind == "fen":
        return format_yuan(int(value))  # type: ignore[call-overload]
    if kind == "count":
        return f"{int(value):,}"  # type: ignore[call-overload]
    if kind == "instant":
        return clock.format_local(value)  # type: ignore[arg-type]
    if kind == "day":
        if isinstance(value, datetime):
            return value.isoformat(sep=" ", timespec="minutes")
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


def show(sheet: Sheet, *, limit: int | None = None) -> int:
    """Print ``sheet`` as a Rich table (at most ``limit`` rows); returns the rows shown."""
    cols = [c for c in sheet.columns if c.kind != "image"]
    keep = [i for i, c in enumerate(sheet.columns) if c.kind != "image"]
    t = RichTable(*[escape(heading(c)) for c in cols],
                  title=escape(sheet.title) if sheet.title else None, title_justify="left")
    for c, col in zip(cols, t.columns, strict=True):
        col.overflow = "fold"  # a long cell wraps, never loses characters to an ellipsis
        if c.kind in ("fen", "count", "id"):
            col.justify = "right"
            col.no_wrap = True  # ids and amounts are read whole
    rows = list(sheet.rows)[:limit] if limit is not None else list(sheet.rows)
    cells = [[escape(text(row[i], cols[j].kind)) for j, i in enumerate(keep)] for row in rows]
    if len(cols) * NARROWEST > console.width:  # too narrow for a table: one block per row
        if sheet.title:
            console.print(f"[bold]{escape(sheet.title)}[/bold]")
        colon = "：" if i18n.current() == i18n.ZH else ": "
        for line in cells:
            console.print("")
            for c, value in zip(cols, line, strict=True):
                console.print(f"  {escape(heading(c))}{colon}{value}")
        return len(cells)
    for line in cells:
        t.add_row(*line)
    console.print(t)
    return len(cells)


NARROWEST = 7  # a column narrower than this is unreadable: below it, rows print as blocks


def check_target(path: Path) -> Path:
    """``path`` if it names a .csv or .xlsx file; checked before an export is audited."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise ValidationError(msg("{file}: use a .csv or .xlsx file", file=path.name),
                              field="file")
    return path


def export(path: Path, sheets: Sequence[Sheet]) -> list[Path]:
    """Write ``sheets`` to ``path`` (.xlsx: one workbook; .csv: one file per sheet, named
    ``<stem>-<sheet>.csv`` when there are several); returns the files written."""
    path = check_target(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        _write_xlsx(path, sheets)
        return [path]
    if len(sheets) == 1:
        _write_csv(path, sheets[0])
        return [path]
    out, used = [], set()
    for sheet in sheets:
        name = _unique(_FILE_JUNK.sub("_", sheet.name).strip("_") or "sheet", used, 80)
        target = path.with_name(f"{path.stem}-{name}.csv")
        _write_csv(target, sheet)
        out.append(target)
    return out


def _safe(value: object) -> object:
    value = _printable(value)
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def _write_csv(path: Path, sheet: Sheet) -> None:
    images = path.with_name(f"{path.stem}-images")
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c.zh for c in sheet.columns])
        w.writerow([c.en for c in sheet.columns])
        for row in sheet.rows:
            cells = []
            for c, v in zip(sheet.columns, row, strict=True):
                if c.kind == "image" and isinstance(v, Image):
                    images.mkdir(exist_ok=True)
                    (images / v.name).write_bytes(v.png)
                    cells.append(f"{images.name}/{v.name}")
                elif c.kind in ("count", "id") and v is not None:
                    cells.append(str(v))
                else:
                    cells.append(_safe(text(v, c.kind)))
            w.writerow(cells)


def _unique(name: str, used: set[str], limit: int) -> str:
    base, n = name[:limit], 1
    candidate = base
    while candidate.casefold() in used:
        n += 1
        tail = f"-{n}"
        candidate = base[: limit - len(tail)] + tail
    used.add(candidate.casefold())
    return candidate


def _width(text_: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text_)


def _xlsx_value(v: object, kind: str) -> object:
    if v is None:
        return None
    if kind == "fen":
        return Decimal(int(v)) / FEN_PER_YUAN  # type: ignore[call-overload]
    if kind == "instant":
        return clock.to_local(v).replace(tzinfo=None)  # type: ignore[arg-type]
    if kind in ("count", "id", "day"):
        return v
    return _printable(str(v))


def _write_xlsx(path: Path, sheets: Sequence[Sheet]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.drawing.image import Image as XlImage
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    used: set[str] = set()
    bold, grey = Font(bold=True), Font(italic=True, color="666666")
    for sheet in sheets:
        ws = wb.create_sheet(_unique(_SHEET_JUNK.sub("_", sheet.name).strip("'") or "Sheet",
                                     used, 31))
        cols = list(sheet.columns)
        for i, c in enumerate(cols, start=1):
            wide = c.width or max(_width(c.zh), _width(c.en), 8) + 2
            if c.kind == "fen":
                wide = max(wide, 14)
            elif c.kind in ("instant", "day"):
                wide = max(wide, 17 if c.kind == "instant" else 12)
            elif c.kind == "image":
                wide = max(wide, 17)
            ws.column_dimensions[get_column_letter(i)].width = wide
        ws.freeze_panes = "A4"  # before the first row: a write-only sheet writes its view then
        ws.print_title_rows = "2:3"
        title = WriteOnlyCell(ws, value=_printable(sheet.title or sheet.name))
        title.font = Font(bold=True, size=13)
        ws.append([title])

        for texts, font in (([c.zh for c in cols], bold), ([c.en for c in cols], grey)):
            heads = []
            for t in texts:
                cell = WriteOnlyCell(ws, value=_printable(t))
                cell.font = font
                cell.alignment = Alignment(wrap_text=True, vertical="top")
                heads.append(cell)
            ws.append(heads)
        row_no = 3
        for row in sheet.rows:
            row_no += 1
            cells = []
            for i, (c, v) in enumerate(zip(cols, row, strict=True), start=1):
                if c.kind == "image":
                    if isinstance(v, Image):
                        import io

                        pic = XlImage(io.BytesIO(v.png))
                        pic.anchor = f"{get_column_letter(i)}{row_no}"
                        ws.add_image(pic)
                        ws.row_dimensions[row_no].height = IMAGE_ROW_HEIGHT
                    cells.append(None)
                    continue
                cell = WriteOnlyCell(ws, value=_xlsx_value(v, c.kind))
                if c.kind == "day" and isinstance(v, datetime):
                    cell.number_format = _XLSX_FORMATS["instant"]
                elif c.kind in _XLSX_FORMATS and v is not None:
                    cell.number_format = _XLSX_FORMATS[c.kind]
                if c.kind == "text":
                    cell.data_type = "s"  # a string, never a formula
                    cell.alignment = Alignment(vertical="top")
                cells.append(cell)
            ws.append(cells)
    if not sheets:
        wb.create_sheet("Sheet")
    wb.save(path)



# --- list commands: one page on screen, or every row to a file -------------------------------

LIMIT = typer.Option(50, min=1, max=10_000, help="at most this many on screen (one page)")
AFTER = typer.Option(None, help="the last id of the previous page: show the next")
EXPORT = typer.Option(None, "--export", dir_okay=False,
                      help="write every matching row to this .csv or .xlsx instead")


class Row(tuple):
    """A list row whose first cell is its id (what the next page starts after)."""

    @property
    def id(self) -> int:
        return self[0]


def pages(fetch: Callable[[int | None, int], list], batch: int = 2000) -> Iterator:
    """Every row of a keyset-paged query (``fetch(after_id, limit)``), a page at a time."""
    after = None
    while True:
        page = fetch(after, batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].id


def page_or_export(name: str, title: str, columns: Sequence[Column],
                   fetch: Callable[..., list[Row]], *, limit: int, after: int | None,
                   file: Path | None, action: str, detail: dict) -> None:
    """What a list command does: one page of ``fetch(session, after_id, limit)`` on screen,
    or with ``file`` every row exported, audited as ``action`` first (no file leaves that the
    log does not know of)."""
    if file is not None:
        check_target(file)
        database().run(lambda s: audit(s, action, f"file:{file.name}"[:200], detail))
        with database().snapshot() as s:
            stamp = localize(msg("{title} · exported {when}", title=title,
                                 when=clock.format_local(clock.now())))
            written = export(file, [Sheet(name, columns, pages(lambda a, n: fetch(s, a, n)),
                                          title=stamp)])
        console.print(f"[green]{_('exported')}[/green]: {', '.join(map(str, written))}")
        return
    with database().snapshot() as s:
        rows = fetch(s, after, limit + 1)
    shown = show(Sheet(name, columns, rows[:limit], title=title))
    if len(rows) > limit:
        console.print(localize(msg("next page: --after {id}", id=rows[limit - 1][0])))
    elif not shown:
        console.print(_("(none)"))
