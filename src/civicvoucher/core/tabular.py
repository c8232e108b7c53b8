"""Reading and writing the CSV / XLSX tables that union staff import and export.

Every cell comes back as a stripped string, keyed by a canonical column name, with the row number
the user sees in Excel (header = row 1), so validators can point at the exact cell. CSV may be
UTF-8 (with or without BOM), UTF-16 (Excel "Unicode text") or GBK/GB18030 (Chinese Excel "save
as CSV"). Pure: no database, no web framework.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TypeVar

from civicvoucher.errors import RowError, ValidationError

T = TypeVar("T")

_STRIP = " \t\r\n\u3000\ufeff\u200b\u00a0"
_REMARK = re.compile(r"\s*\([^()]*\)\s*$")  # trailing "(统一社会信用代码)" hint in a header
_SEPARATORS = re.compile(r"[\s_\-]+")
_SUFFIXES = (".csv", ".xlsx")
# Excel keeps 15 significant digits: a bigger number in a cell has already lost digits.
_EXACT_LIMIT = 10**15


@dataclass(frozen=True)
class Table:
    """A parsed table: canonical header, and (row number as in Excel, {column: text}) rows.

    ``labels`` maps a canonical column name to the header text the user actually wrote, so error
    messages can name the column the way the user knows it.
    """

    header: list[str]
    rows: list[tuple[int, dict[str, str]]]
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, name: str) -> str:
        """'身份证号 (id_number)' when the user's header differs from the canonical name."""
        original = self.labels.get(name)
        return f"{original} ({name})" if original and original != name else name


def normalise_header(text: str) -> str:
    """Header key for alias lookup: NFKC, no '*' marks or trailing (remarks), case-folded."""
    t = unicodedata.normalize("NFKC", text).strip(_STRIP).strip("*").strip()
    without = _REMARK.sub("", t)
    t = without or t
    return _SEPARATORS.sub("_", t.casefold()).strip("_")


def read_table(path: Path, *, aliases: Mapping[str, str] | None = None) -> Table:
    """Read a .csv or .xlsx file; header names are mapped through ``aliases`` (e.g. 姓名→name).

    Canonical names (the alias values) are always accepted as headers themselves. Unknown
    headers are kept as written. Fully blank rows are skipped but still counted in row numbers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise ValidationError(
            f"{path.name}: old .xls files are not supported; save it as .xlsx or CSV", field="file"
        )
    if suffix not in _SUFFIXES:
        raise ValidationError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx",
            field="file",
        )
    try:
        raw_rows = _csv_rows(path) if suffix == ".csv" else _xlsx_rows(path)
    except FileNotFoundError:
        raise ValidationError(f"{path.name}: no such file", field="file") from None
    return _build_table(path, raw_rows, aliases or {})


def _build_table(
    path: Path, raw_rows: Iterable[tuple[int, list[str]]], aliases: Mapping[str, str]
) -> Table:
    lookup = {normalise_header(v): v for v in aliases.values()}
    lookup.update({normalise_header(k): v for k, v in aliases.items()})
    it = iter(raw_rows)
    for _header_no, cells in it:
        if any(cells):
            break
    else:
        raise ValidationError(f"{path.name}: the file is empty (no header row)", field="file")
    columns: list[tuple[int, str]] = []  # (cell index, canonical name)
    labels: dict[str, str] = {}
    for i, text in enumerate(cells):
        if not text:
            continue  # blank header: an unused column (often just Excel formatting)
        name = lookup.get(normalise_header(text), text)
        if name in labels:
            raise ValidationError(
                f"{path.name}: columns {labels[name]!r} and {text!r} both mean {name!r};"
                " keep only one",
                field=name,
                row=_header_no,
            )
        labels[name] = text
        columns.append((i, name))
    rows: list[tuple[int, dict[str, str]]] = []
    for row_no, cells in it:
        if not any(cells):
            continue
        n = len(cells)
        rows.append((row_no, {name: cells[i] if i < n else "" for i, name in columns}))
    return Table(header=[name for _, name in columns], rows=rows, labels=labels)


def _decode(data: bytes, name: str) -> str:
    """UTF-8 BOM, UTF-16 BOM, UTF-8, then GB18030 (a superset of GBK)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{name}: text encoding not recognised; save the CSV as UTF-8 or GBK", field="file"
        ) from None


def _csv_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    text = _decode(path.read_bytes(), path.name)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(n, [c.strip(_STRIP) for c in cells]) for n, cells in enumerate(reader, start=1)]


def _xlsx_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    from openpyxl import load_workbook  # lazy: CSV-only callers do not pay for the import
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValidationError(f"{path.name}: not a readable .xlsx file", field="file") from None
    try:
        ws = wb.worksheets[0]
        # Ignore the stored <dimension>: some exporters write a wrong one (rows would be lost)
        # and without one openpyxl would parse the whole sheet twice.
        ws.reset_dimensions()
        return [
            (n, [cell_text(v) for v in values])
            for n, values in enumerate(ws.iter_rows(values_only=True), start=1)
        ]
    finally:
        wb.close()


def cell_text(value: object) -> str:
    """An Excel cell value as the text a validator sees.

    Integral numbers become plain digits. A number of 16+ digits was already truncated by Excel
    (15 significant digits), so it comes back in scientific notation for validators to reject
    with a clear "format the column as text" message instead of a confusing checksum error.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_LIMIT:
            return str(int(value))
        if abs(value) >= _EXACT_LIMIT:
            return format(value, ".15G")
        return str(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value).strip(_STRIP)


def write_table(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a .csv (UTF-8 with BOM, so Excel shows Chinese) or .xlsx file.

    Text that Excel would run as a formula (=, +, -, @ …) is neutralised: in CSV by a leading
    apostrophe, in XLSX by storing it as a string cell. XLSX columns are formatted as text so ID
    numbers typed into a template keep all 18 digits.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([_csv_value(v) for v in row] for row in rows)
    elif suffix == ".xlsx":
        _write_xlsx(path, header, rows)
    else:
        raise ValidationError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx",
            field="file",
        )


def _formula_like(text: str) -> bool:
    if not text or text[0] not in "=+-@\t\r":
        return False
    if text[0] in "+-":  # "-12.50" and "+8613812345678" are data, not formulas
        return not re.fullmatch(r"[+-][\d.,\s]*", text)
    return True


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def _write_xlsx(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")
    for i, name in enumerate(header, start=1):
        dim = ws.column_dimensions[get_column_letter(i)]
        dim.number_format = "@"  # text: long digit strings are not turned into 1.1E+17
        wide = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in str(name))
        dim.width = max(12, wide + 4)
    bold = Font(bold=True)
    head = []
    for name in header:
        cell = WriteOnlyCell(ws, value=str(name))
        cell.font = bold
        head.append(cell)
    ws.append(head)
    for row in rows:
        out: list[object] = []
        for v in row:
            if isinstance(v, str) and v.startswith("="):
                cell = WriteOnlyCell(ws, value=v)
                cell.data_type = "s"  # a string, never a formula
                out.append(cell)
            elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= _EXACT_LIMIT:
                out.append(str(v))  # Excel would round it to 15 significant digits
            else:
                out.append(v)
        ws.append(out)
    wb.save(path)


def validate_rows(
    table: Table,
    *,
    validate_row: Callable[[int, dict[str, str]], T | list[RowError]],
    required: Iterable[str],
    aliases: Mapping[str, str],
    unique_keys: Callable[[dict[str, str]], Iterable[tuple[str, str, str]]] | None = None,
) -> tuple[list[tuple[int, T]], list[RowError]]:
    """Run ``validate_row`` over a table; return (row number, good row) pairs and every error.

    Good rows keep their row numbers so later checks (against the database) can still point at
    the right line of the file. A missing required column is one error on row 1 (not one per row). ``unique_keys(row)``
    yields (column, what, normalised value) triples that must not repeat within the file; a
    repeat is reported on the later row as "same <what> as row N". Error columns are named the
    way the user wrote them (see ``Table.label``).
    """
    missing = [name for name in required if name not in table.header]
    if missing:
        return [], [
            RowError(1, name, f"column is missing; add a column headed {_example(name, aliases)}")
            for name in missing
        ]
    good: list[tuple[int, T]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for row_no, row in table.rows:
        result = validate_row(row_no, row)
        row_errors = list(result) if isinstance(result, list) else []
        if unique_keys is not None:
            for column, what, value in unique_keys(row):
                first = seen.setdefault((column, value), row_no)
                if first != row_no:
                    row_errors.append(RowError(row_no, column, f"same {what} as row {first}"))
        if row_errors:
            errors.extend(RowError(e.row, table.label(e.field), e.reason) for e in row_errors)
        else:
            good.append((row_no, result))  # type: ignore[arg-type]
    return good, errors


def _example(name: str, aliases: Mapping[str, str]) -> str:
    """The first alias for ``name`` (Chinese aliases come first), e.g. '身份证号 (or id_number)'."""
    for alias, canonical in aliases.items():
        if canonical == name and alias != name:
            return f"{alias} (or {name})"
    return name
