"""Reading and writing the CSV / XLSX tables that union staff import and export.

Every cell comes back as a stripped string, keyed by a canonical column name, with the row number
the user sees in Excel (header = row 1), so validators can point at the exact cell. CSV may be
UTF-8 (with or without BOM), UTF-16 (Excel "Unicode text") or GBK/GB18030 (Chinese Excel "save
as CSV"). Pure: no database, no web framework.

Imports are bounded (``ImportLimits``, set by ``CIVICVOUCHER_IMPORT_MAX_*``): rows, file size,
an XLSX's unzipped size and compression ratio (checked on the zip directory before anything is
unzipped, and counted again while reading), cell and line length. Rows are streamed from the
file, never held: memory stays flat in the file size. A cell with a control character (other
than TAB, LF, CR) is a row error named by row and column (``validate_rows``).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
import struct
import unicodedata
import weakref
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache, partial
from pathlib import Path
from typing import TypeVar

from civicvoucher.errors import RowError, ValidationError
from civicvoucher.i18n import Msg, Text, msg

T = TypeVar("T")

_STRIP = " \t\r\n\u3000\ufeff\u200b\u00a0"
_REMARK = re.compile(r"\s*\([^()]*\)\s*$")  # trailing "(统一社会信用代码)" hint in a header
_SEPARATORS = re.compile(r"[\s_\-]+")
_SUFFIXES = (".csv", ".xlsx")
# Excel keeps 15 significant digits: a bigger number in a cell has already lost digits.
_EXACT_LIMIT = 10**15


MiB = 1024 * 1024
ENV_MAX_ROWS = "CIVICVOUCHER_IMPORT_MAX_ROWS"
ENV_MAX_BYTES = "CIVICVOUCHER_IMPORT_MAX_BYTES"
ENV_MAX_XLSX_BYTES = "CIVICVOUCHER_IMPORT_MAX_XLSX_BYTES"
ENV_MAX_RATIO = "CIVICVOUCHER_IMPORT_MAX_RATIO"
ENV_MAX_CELL = "CIVICVOUCHER_IMPORT_MAX_CELL"
ENV_MAX_LINE = "CIVICVOUCHER_IMPORT_MAX_LINE"
ENV_MAX_XLSX_HELD = "CIVICVOUCHER_IMPORT_MAX_XLSX_HELD"
_XLSX_MAX_PARTS = 10_000  # a workbook has a few dozen parts; more is a crafted file
_XLSX_MAX_DIRECTORY = 16 * MiB  # the zip's central directory, read before anything else
_RATIO_GRACE = MiB  # parts smaller than this may compress as well as they like
# Refused in a cell: C0 controls except TAB, LF and CR (an address typed with Alt+Enter in
# Excel keeps its line break), DEL and the C1 controls, lone surrogates, U+FFFE/U+FFFF.
# PostgreSQL cannot store NUL in text at all; the others are never meant in a roster.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class ImportTooLarge(ValidationError):
    """A file over one of the import limits (``ImportLimits``): refused before it is read
    further, nothing imported. HTTP 413."""

    code = "import_too_large"
    http_status = 413


@dataclass(frozen=True)
class ImportLimits:
    """How large an import may be. Each limit can be set by its environment variable.

    The XLSX sizes are checked on the zip's directory before any part is unzipped, and the
    bytes actually unzipped are counted again while reading (a directory can lie). The rows,
    cells and CSV lines are checked while streaming, so memory stays flat in the file size.
    """

    max_rows: int = 1_000_000  # data rows: the last row number minus the header's
    max_bytes: int = 100 * MiB  # a file as stored (CSV, or the XLSX zip)
    max_xlsx_bytes: int = 400 * MiB  # an XLSX's parts together, unzipped
    # an XLSX's parts other than worksheets, unzipped: openpyxl holds them in memory whole
    # (shared strings above all), where a worksheet is streamed
    max_xlsx_held: int = 32 * MiB
    max_ratio: int = 100  # unzipped / zipped size of one XLSX part (over 1 MiB)
    max_cell: int = 4096  # characters in one cell
    max_line: int = 256 * 1024  # characters in one physical line of a CSV

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ImportLimits:
        env = os.environ if env is None else env
        names = {"max_rows": ENV_MAX_ROWS, "max_bytes": ENV_MAX_BYTES,
                 "max_xlsx_bytes": ENV_MAX_XLSX_BYTES, "max_ratio": ENV_MAX_RATIO,
                 "max_cell": ENV_MAX_CELL, "max_line": ENV_MAX_LINE,
                 "max_xlsx_held": ENV_MAX_XLSX_HELD}
        values: dict[str, int] = {}
        for attr, var in names.items():
            raw = env.get(var, "").strip().replace("_", "")
            if not raw:
                continue
            if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
                raise ValidationError(msg("{var} must be a positive whole number, got {raw!r}",
                                          var=var, raw=raw), field=var)
            values[attr] = int(raw)
        return cls(**values)


def _too_large(name: str, what: Msg, *, row: int | None = None,
               field: str | None = None) -> ImportTooLarge:
    return ImportTooLarge(msg("{file}: {what}; nothing imported", file=name, what=what),
                          row=row, field=field or (None if row is not None else "file"))


def _unreadable_xlsx(name: str) -> ValidationError:
    return ValidationError(msg("{file}: not a readable .xlsx file", file=name), field="file")


def control_problem(text: str) -> Msg | None:
    """Why ``text`` cannot be stored (a control character), or None. TAB, LF, CR pass."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    return msg("contains the control character {char} at character {at}; remove it",
               char="U+" + format(ord(m.group()), "04X"), at=m.start() + 1)


@dataclass(frozen=True)
class Table:
    """A parsed table: canonical header, and (row number as in Excel, {column: text}) rows.

    ``labels`` maps a canonical column name to the header text the user actually wrote, so error
    messages can name the column the way the user knows it. ``read_table`` gives rows that are
    read from the file each time they are iterated (``len`` is counted once): a table never
    holds the file in memory.
    """

    header: list[str]
    rows: Sequence[tuple[int, dict[str, str]]]
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


def read_table(path: Path, *, aliases: Mapping[str, str] | None = None,
               limits: ImportLimits | None = None) -> Table:
    """Read a .csv or .xlsx file; header names are mapped through ``aliases`` (e.g. 姓名→name).

    Canonical names (the alias values) are always accepted as headers themselves. Unknown
    headers are kept as written. Fully blank rows are skipped but still counted in row numbers.
    A file over ``limits`` (default: ``ImportLimits.from_env()``) is ``ImportTooLarge``: a CSV
    is scanned to the end here, an XLSX's zip directory is checked here and its rows while
    they are iterated. The file is kept open, so the table still reads after it is deleted.
    """
    path = Path(path)
    limits = limits or ImportLimits.from_env()
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise ValidationError(
            msg("{file}: old .xls files are not supported; save it as .xlsx or CSV",
                file=path.name), field="file"
        )
    if suffix not in _SUFFIXES:
        raise _unsupported(path.name, suffix)
    try:
        src = _Source(path)
    except (FileNotFoundError, IsADirectoryError):
        raise ValidationError(msg("{file}: no such file", file=path.name), field="file") from None
    if src.size > limits.max_bytes:
        raise _too_large(path.name, msg("the file is {size}, over the {limit} limit",
                                        size=_mb(src.size), limit=_mb(limits.max_bytes)))
    if suffix == ".csv":
        encoding = _csv_encoding(src)
        raw = partial(_csv_rows, src, encoding, limits)
    else:
        with src.open() as fh:
            _check_zip(fh, path.name, limits)
        raw = partial(_xlsx_rows, src, limits)
    header_no, columns, labels = _header(path, raw, aliases or {})
    rows = _FileRows(raw, header_no, columns)
    if suffix == ".csv":
        len(rows)  # CSV is cheap to scan: every limit is enforced before anyone validates
    return Table(header=[name for _, name in columns], rows=rows, labels=labels)


def _unsupported(name: str, suffix: str) -> ValidationError:
    if suffix:
        text = msg("{file}: unsupported file type {suffix}; use .csv or .xlsx", file=name,
                   suffix=suffix)
    else:
        text = msg("{file}: unsupported file type (none); use .csv or .xlsx", file=name)
    return ValidationError(text, field="file")


def _mb(n: int) -> Msg:
    if n >= MiB:
        return msg("{n} MB", n=format(n / MiB, ".1f"))
    return msg("{n} bytes", n=n)


def _header(path: Path, raw: Callable[[], Iterator[tuple[int, list[str]]]],
            aliases: Mapping[str, str]) -> tuple[int, list[tuple[int, str]], dict[str, str]]:
    lookup = {normalise_header(v): v for v in aliases.values()}
    lookup.update({normalise_header(k): v for k, v in aliases.items()})
    it = raw()
    try:
        for header_no, cells in it:  # noqa: B007 (used after the loop)
            if any(cells):
                break
        else:
            raise ValidationError(msg("{file}: the file is empty (no header row)", file=path.name),
                                  field="file")
    finally:
        it.close()  # type: ignore[attr-defined]
    columns: list[tuple[int, str]] = []  # (cell index, canonical name)
    labels: dict[str, str] = {}
    for i, text in enumerate(cells):
        if not text:
            continue  # blank header: an unused column (often just Excel formatting)
        name = lookup.get(normalise_header(text), text)
        if name in labels:
            raise ValidationError(
                msg("{file}: columns {first!r} and {second!r} both mean {name!r}; keep only one",
                    file=path.name, first=labels[name], second=text, name=name),
                field=name,
                row=header_no,
            )
        labels[name] = text
        columns.append((i, name))
    return header_no, columns, labels


class _FileRows(Sequence[tuple[int, dict[str, str]]]):
    """The data rows of a table, streamed from the file on every iteration."""

    def __init__(self, raw: Callable[[], Iterator[tuple[int, list[str]]]], header_no: int,
                 columns: list[tuple[int, str]]) -> None:
        self._raw = raw
        self._header_no = header_no
        self._columns = columns
        self._count: int | None = None

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        columns, header_no, count = self._columns, self._header_no, 0
        it = self._raw()
        try:
            for row_no, cells in it:
                if row_no <= header_no or not any(cells):
                    continue
                n = len(cells)
                count += 1
                yield row_no, {name: cells[i] if i < n else "" for i, name in columns}
        finally:
            it.close()  # type: ignore[attr-defined]
        self._count = count

    def __len__(self) -> int:
        if self._count is None:
            for _ in self:
                pass
        return self._count  # type: ignore[return-value]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if index >= 0:
            for i, row in enumerate(self):
                if i == index:
                    return row
        raise IndexError("table row index out of range")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_FileRows, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} rows read from file>"


class _PositionalFile(io.RawIOBase):
    """A read-only view of an open descriptor with its own position (``os.pread``): several
    readers can share one descriptor, and it reads on after the file was unlinked."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd, self._pos = fd, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos,
                io.SEEK_END: os.fstat(self._fd).st_size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = os.pread(self._fd, len(buffer), self._pos)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


class _Source:
    """The file a table reads, opened once (an upload's temporary file may be removed while
    the table is still in use); refuses to read on if the file was changed in between."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.fd = os.open(path, os.O_RDONLY)
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self.fd)
            raise IsADirectoryError(str(path))
        self.size, self._stamp = st.st_size, (st.st_size, st.st_mtime_ns)
        self.rows_counted = False  # an XLSX sheet's rows, counted once
        self._closer = weakref.finalize(self, os.close, self.fd)

    def open(self) -> io.BufferedReader:
        st = os.fstat(self.fd)
        if (st.st_size, st.st_mtime_ns) != self._stamp:
            raise ValidationError(msg("{file}: the file changed while it was being imported;"
                                      " run it again", file=self.name), field="file")
        return io.BufferedReader(_PositionalFile(self.fd), 1 << 16)


def _csv_encoding(src: _Source) -> str:
    """UTF-8 BOM, UTF-16 BOM, UTF-8 (checked over the whole file, in chunks), else GB18030."""
    with src.open() as fh:
        head = fh.read(4)
        if head.startswith(b"\xef\xbb\xbf"):
            return "utf-8-sig"
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(MiB):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            return "gb18030"  # a superset of GBK; checked while the rows are read


def _csv_rows(src: _Source, encoding: str, limits: ImportLimits) -> Iterator[tuple[int, list[str]]]:
    name = src.name
    with src.open() as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, newline="",
                                errors="replace" if encoding == "utf-8-sig" else "strict")
        try:
            first = text.readline(limits.max_line + 1)
            delimiter = "\t" if "\t" in first and "," not in first else ","
            lines = _csv_lines(text, first, name, limits)
            row_no = 0
            for row_no, cells in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
                if row_no > limits.max_rows + 1:
                    raise _too_large(name, _more_rows(limits), row=row_no)
                out = [c.strip(_STRIP) for c in cells]
                for i, c in enumerate(out):
                    if len(c) > limits.max_cell:
                        raise _cell_too_long(name, row_no, i, limits)
                yield row_no, out
        except UnicodeDecodeError:
            raise ValidationError(
                msg("{file}: text encoding not recognised; save the CSV as UTF-8 or GBK",
                    file=name),
                field="file") from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise _cell_too_long(name, row_no + 1, None, limits) from None
            raise ValidationError(msg("{file}: not a readable CSV file ({error})", file=name,
                                      error=str(exc)), field="file",
                                  row=row_no + 1) from None
        finally:
            text.detach()


def _cell_too_long(name: str, row_no: int, index: int | None,
                   limits: ImportLimits) -> ImportTooLarge:
    if index is not None:
        what = msg("row {row}, column {column}: the cell is longer than {n} characters",
                   row=row_no, column=index + 1, n=format(limits.max_cell, ","))
    else:
        what = msg("row {row}: a cell is longer than {n} characters", row=row_no,
                   n=format(limits.max_cell, ","))
    return _too_large(name, what, row=row_no,
                      field=f"column {index + 1}" if index is not None else None)


def _more_rows(limits: ImportLimits) -> Msg:
    return msg("more than {n} rows", n=format(limits.max_rows, ","))


def _csv_lines(text: io.TextIOBase, first: str, name: str,
               limits: ImportLimits) -> Iterator[str]:
    """Physical lines, each read with a length limit (a file without line breaks would
    otherwise come back as one string as large as the file)."""
    line, line_no = first, 1
    while line:
        if len(line) > limits.max_line and not line.endswith(("\n", "\r")):
            raise _too_large(name, msg("line {line} is longer than {n} characters",
                                       line=line_no, n=format(limits.max_line, ",")))
        yield line
        line = text.readline(limits.max_line + 1)
        line_no += 1


def _check_zip(fh: io.BufferedReader, name: str, limits: ImportLimits) -> None:
    """Refuse an XLSX whose zip directory promises too much, before unzipping anything."""
    size = fh.seek(0, io.SEEK_END)
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise _unreadable_xlsx(name)
    _sig, _d, _cd, _n, parts, directory, offset, _c = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if parts == 0xFFFF or directory == 0xFFFFFFFF or offset == 0xFFFFFFFF:
        raise _too_large(name, msg("a ZIP64 workbook is larger than any import may be"))
    if parts > _XLSX_MAX_PARTS or directory > _XLSX_MAX_DIRECTORY:
        raise _too_large(name, msg("the workbook has {n} parts", n=format(parts, ",")))
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise _unreadable_xlsx(name) from None
    with zf:
        total = held = 0
        for info in zf.infolist():
            if not _streamed(info.filename):
                held += info.file_size
                if held > limits.max_xlsx_held:
                    raise _too_large(name, _held(limits))
            if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                                   zipfile.ZIP_DEFLATED):
                raise _unreadable_xlsx(name)  # encrypted, or an unusual compression
            total += info.file_size
            if (info.file_size > _RATIO_GRACE
                    and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
                ratio = info.file_size // max(info.compress_size, 1)
                raise _too_large(name, msg(
                    "{part} unzips to {size}, a ratio of {ratio}:1, over the {limit}:1 limit"
                    " (a zip bomb?)",
                    part=info.filename, size=_mb(info.file_size), ratio=ratio,
                    limit=limits.max_ratio))
            if total > limits.max_xlsx_bytes:
                raise _too_large(name, _unzips_over(limits.max_xlsx_bytes))


def _streamed(part: str) -> bool:
    """Worksheets are read row by row; every other part openpyxl reads whole."""
    return part.startswith("xl/worksheets/")


def _held(limits: ImportLimits) -> Msg:
    return msg("its parts other than worksheets (shared strings, ...) unzip to more than the"
               " {limit} limit", limit=_mb(limits.max_xlsx_held))


def _unzips_over(limit: int) -> Msg:
    return msg("it unzips to more than the {limit} limit", limit=_mb(limit))


class _Budget:
    """Bytes that may still be unzipped from one workbook (``held``: from its parts other
    than worksheets, which count against both)."""

    def __init__(self, name: str, limits: ImportLimits, *, held: bool = False,
                 parent: _Budget | None = None) -> None:
        self.name, self.parent, self.held, self.limits = name, parent, held, limits
        self.limit = limits.max_xlsx_held if held else limits.max_xlsx_bytes
        self.left = self.limit
        self.error: ImportTooLarge | None = None

    def spend(self, n: int) -> None:
        if self.parent is not None:
            self.parent.spend(n)
        self.left -= n
        if self.left < 0:
            self.error = _too_large(self.name, _held(self.limits) if self.held
                                    else _unzips_over(self.limit))
            raise self.error

    def failure(self) -> ImportTooLarge | None:
        return self.error or (self.parent.failure() if self.parent is not None else None)


class _CountingStream:
    """A part of the zip, counting what is unzipped against the workbook's budget."""

    def __init__(self, raw, budget: _Budget) -> None:
        self._raw, self._budget = raw, budget

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self.read(MiB):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._raw.read(n)
        self._budget.spend(len(data))
        return data

    def __getattr__(self, attr: str):
        return getattr(self._raw, attr)

    def __enter__(self) -> _CountingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


class _CountingArchive:
    """The zip openpyxl reads through: every part it opens is counted."""

    def __init__(self, zf: zipfile.ZipFile, budget: _Budget, held: _Budget) -> None:
        self._zf, self._budget, self._held = zf, budget, held

    def open(self, name, mode: str = "r", *args, **kwargs) -> _CountingStream:
        part = getattr(name, "filename", name)
        return _CountingStream(self._zf.open(name, mode, *args, **kwargs),
                               self._budget if _streamed(str(part)) else self._held)

    def read(self, name) -> bytes:
        with self.open(name) as fh:
            return fh.read()

    def __getattr__(self, attr: str):
        return getattr(self._zf, attr)


_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,20}:)?row(?=[\s>/])([^>]{0,250})")
_ROW_NUMBER = re.compile(rb'\br="(\d{1,12})"')
_ROW_TAG_MAX = 300  # bytes a _ROW_TAG match can span


def _count_rows(zf: zipfile.ZipFile, part: str, name: str, limits: ImportLimits) -> None:
    """Count the sheet's <row> elements, and read the row numbers they claim, with a byte
    scan (far faster than parsing them): a sheet of too many rows, or with a row numbered
    past the limit (openpyxl would make up every empty row before it), is refused before
    openpyxl spends minutes on it."""
    last = limits.max_rows + 1
    rows, pending = 0, b""

    def refuse() -> ImportTooLarge:
        return _too_large(name, msg("the sheet has more than {n} rows",
                                    n=format(limits.max_rows, ",")))

    def scan(data: bytes, cut: int) -> int:
        n = 0
        for m in _ROW_TAG.finditer(data):
            if m.start() >= cut:
                break
            n += 1
            number = _ROW_NUMBER.search(m.group(1))
            if number is not None and int(number.group(1)) > last:
                raise refuse()
        return n

    with zf.open(part) as fh:
        while chunk := fh.read(MiB):
            data = pending + chunk
            cut = max(len(data) - _ROW_TAG_MAX, 0)  # a tag after this may be cut: next time
            rows += scan(data, cut)
            pending = data[cut:]
            if rows > last:
                raise refuse()
    if rows + scan(pending, len(pending)) > last:
        raise refuse()


@lru_cache(maxsize=1)
def _excel_reader() -> type:
    """openpyxl's read-only reader, loading only the first worksheet and without its size
    pre-scan (for a sheet without <dimension> openpyxl would parse it once just for the size;
    the rows are read with reset_dimensions() anyway). Lazy: CSV-only callers do not pay for
    the import."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    class Sheet(ReadOnlyWorksheet):
        def _get_size(self) -> None:
            pass

    class Reader(ExcelReader):
        def read_worksheets(self) -> None:
            for sheet, rel in self.parser.find_sheets():
                if rel.target not in self.valid_files or "chartsheet" in rel.Type:
                    continue
                ws = Sheet(self.wb, sheet.name, rel.target, self.shared_strings)
                ws.sheet_state = sheet.state
                self.wb._sheets.append(ws)
                return

    return Reader


def _xlsx_rows(src: _Source, limits: ImportLimits) -> Iterator[tuple[int, list[str]]]:
    name = src.name
    budget = _Budget(name, limits)
    held = _Budget(name, limits, held=True, parent=budget)
    with src.open() as fh:
        _check_zip(fh, name, limits)
        fh.seek(0)
        try:
            reader = _excel_reader()(fh, read_only=True, data_only=True, keep_links=False)
            reader.archive = _CountingArchive(reader.archive, budget, held)  # type: ignore[assignment]
            reader.read()
            wb = reader.wb
        except ValidationError:
            raise
        except Exception:  # a broken workbook, whatever openpyxl trips on
            if (failed := held.failure()) is not None:
                raise failed from None
            raise _unreadable_xlsx(name) from None
        try:
            ws = wb.worksheets[0]
            if not src.rows_counted:
                _count_rows(reader.archive._zf, ws._worksheet_path, name, limits)
                src.rows_counted = True
            # Ignore the stored <dimension>: some exporters write a wrong one (rows would be
            # lost) and without one openpyxl would parse the whole sheet twice.
            ws.reset_dimensions()
            for n, values in enumerate(ws.iter_rows(values_only=True), start=1):
                if n > limits.max_rows + 1:
                    raise _too_large(name, _more_rows(limits), row=n)
                cells = [cell_text(v) for v in values]
                for i, c in enumerate(cells):
                    if len(c) > limits.max_cell:
                        raise _cell_too_long(name, n, i, limits)
                yield n, cells
        except ValidationError:
            raise
        except Exception:
            if (failed := held.failure()) is not None:
                raise failed from None
            raise _unreadable_xlsx(name) from None
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
        raise _unsupported(path.name, suffix)


def _formula_like(text: str) -> bool:
    if not text or text[0] not in "=+-@\t\r":
        return False
    if text[0] in "+-":  # "-12.50" and "+8613812345678" are data, not formulas
        return not re.fullmatch(r"[+-][\d.,\s]*", text)
    return True


def _printable(value: object) -> object:
    """Control characters (which no valid row holds, but a reject file may echo) as U+FFFD:
    neither Excel nor openpyxl can store them."""
    if isinstance(value, str) and _CONTROL.search(value):
        return _CONTROL.sub("\ufffd", value)
    return value


def _csv_value(value: object) -> object:
    value = _printable(value)
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
        for v in map(_printable, row):
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


MAX_ERRORS = 100_000  # errors one import may report (and hold); more refuse the file


def validate_rows(
    table: Table,
    *,
    validate_row: Callable[[int, dict[str, str]], T | list[RowError]],
    required: Iterable[str],
    aliases: Mapping[str, str],
    unique_keys: Callable[[dict[str, str]], Iterable[tuple[str, str, str]]] | None = None,
    max_errors: int = MAX_ERRORS,
) -> tuple[list[tuple[int, T]], list[RowError]]:
    """Run ``validate_row`` over a table; return (row number, good row) pairs and every error.

    Good rows keep their row numbers so later checks (against the database) can still point at
    the right line of the file. A missing required column is one error on row 1 (not one per row). A cell with a control character (``control_problem``) is an error of its row and column, and the row is not validated further. ``unique_keys(row)``
    yields (column, what, normalised value) triples that must not repeat within the file; a
    repeat is reported on the later row as "same <what> as row N". Error columns are named the
    way the user wrote them (see ``Table.label``).
    """
    missing = [name for name in required if name not in table.header]
    if missing:
        return [], [
            RowError(1, name, msg("column is missing; add a column headed {column}",
                                  column=_example(name, aliases)))
            for name in missing
        ]
    good: list[tuple[int, T]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for row_no, row in table.rows:
        if _CONTROL.search("".join(row.values())):
            errors.extend(RowError(row_no, table.label(column), problem)
                          for column, text in row.items() if (problem := control_problem(text)))
            continue
        result = validate_row(row_no, row)
        row_errors = list(result) if isinstance(result, list) else []
        if unique_keys is not None:
            for column, what, value in unique_keys(row):
                first = seen.setdefault((column, value), row_no)
                if first != row_no:
                    row_errors.append(RowError(row_no, column, msg(
                        "same {what} as row {first}", what=Text(what), first=first)))
        if row_errors:
            errors.extend(RowError(e.row, table.label(e.field), e.reason) for e in row_errors)
        else:
            good.append((row_no, result))  # type: ignore[arg-type]
        if len(errors) > max_errors:  # a file this wrong is not worth holding every error of
            raise ImportTooLarge(
                msg("more than {n} errors, the first: {first}; nothing imported: fix the file"
                    " first", n=format(max_errors, ","), first=errors[0].localized_msg()),
                row=errors[0].row, field=errors[0].field)
    return good, errors


def _example(name: str, aliases: Mapping[str, str]) -> str | Msg:
    """The first alias for ``name`` (Chinese aliases come first), e.g. '身份证号 (or id_number)'."""
    for alias, canonical in aliases.items():
        if canonical == name and alias != name:
            return msg("{alias} (or {name})", alias=alias, name=name)
    return name
