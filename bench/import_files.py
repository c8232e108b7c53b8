"""Hostile import files, written in a streaming way (no memory): the test suite makes small
ones, ``bench/bench_import_limits.py`` full-size ones.

- ``write_big_csv``: a member roster CSV of about ``size`` bytes (valid-looking rows).
- ``write_xlsx_bomb``: an XLSX whose sheet holds ``rows`` identical rows without row numbers
  (``<row>`` without ``r=`` is legal and compresses about 1000:1): 5,000,000 rows unzip to
  ~700 MB from a file of ~1 MB.
- ``write_xlsx_many_rows``: an XLSX of many short, different rows (an honest-looking zip).
- ``write_xlsx_gap``: a tiny XLSX whose second row claims to be row ``row`` (openpyxl would
  fill in every empty row between).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

MEMBER_HEADER = ("姓名", "身份证号", "手机号", "所属工会", "状态")
_ROW = ("张三", "110101199001010015", "13800000000", "91140100000000001X", "在职")
_SHEET = "xl/worksheets/sheet1.xml"
_SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
               '"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_SHEET_TAIL = "</sheetData></worksheet>"


def write_big_csv(path: Path, size: int, *, chunk_rows: int = 10_000) -> int:
    """A CSV of at least ``size`` bytes; returns the number of data rows."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(MEMBER_HEADER) + "\n")
        written = fh.tell()
        while written < size:
            block = "".join(f"会员{n + i},110101199001010015,138{(n + i) % 10**8:08d},"
                            f"91140100000000001X,在职\n" for i in range(chunk_rows))
            fh.write(block)
            written += len(block.encode())
            n += chunk_rows
    return n


def _row_xml(cells: tuple[str, ...], numbered: int | None = None) -> str:
    r = f' r="{numbered}"' if numbered is not None else ""
    return (f"<row{r}>" + "".join(f'<c t="inlineStr"><is><t>{c}</t></is></c>' for c in cells)
            + "</row>")


def _template() -> dict[str, bytes]:
    """The parts of a real one-sheet workbook (openpyxl), to put a crafted sheet into."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["x"])
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_workbook(path: Path, sheet_chunks) -> None:
    parts = _template()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in parts.items():
            if name != _SHEET:
                zf.writestr(name, data)
        with zf.open(_SHEET, "w", force_zip64=False) as out:
            for chunk in sheet_chunks:
                out.write(chunk.encode())


def write_xlsx_bomb(path: Path, rows: int, *, header: tuple[str, ...] = MEMBER_HEADER,
                    row: tuple[str, ...] = _ROW) -> None:
    """``rows`` identical data rows below ``header``."""
    line = _row_xml(row)
    block = line * 10_000

    def chunks():
        yield _SHEET_HEAD + _row_xml(header)
        left = rows
        while left >= 10_000:
            yield block
            left -= 10_000
        yield line * left + _SHEET_TAIL

    _write_workbook(Path(path), chunks())


def write_xlsx_many_rows(path: Path, rows: int) -> None:
    """``rows`` short rows that differ (a random number each): compresses only ~3:1, so the
    zip directory looks honest and only the row count gives it away."""
    import random

    rng = random.Random(7)

    def chunks():
        yield _SHEET_HEAD + _row_xml(("身份证号",))
        for start in range(0, rows, 10_000):
            yield "".join(f"<row><c><v>{rng.getrandbits(40)}</v></c></row>"
                          for _ in range(min(10_000, rows - start)))
        yield _SHEET_TAIL

    _write_workbook(Path(path), chunks())


def write_xlsx_gap(path: Path, row: int) -> None:
    """A header, one row, and a row numbered ``row``."""
    _write_workbook(Path(path), [_SHEET_HEAD, _row_xml(MEMBER_HEADER, 1), _row_xml(_ROW, 2),
                                 _row_xml(_ROW, row), _SHEET_TAIL])


def declared_sizes(path: Path) -> dict[str, tuple[int, int]]:
    """{part: (compressed, unzipped)} as the zip directory says."""
    with zipfile.ZipFile(path) as zf:
        return {i.filename: (i.compress_size, i.file_size) for i in zf.infolist()}


def write_xlsx_shared_strings(path: Path, size: int) -> None:
    """A one-row sheet whose shared-strings part holds ``size`` bytes of distinct strings:
    it compresses well under the ratio limit, and openpyxl would hold all of it in memory."""
    parts = _template()
    ct = parts["[Content_Types].xml"].decode()
    if "sharedStrings" not in ct:
        ct = ct.replace("</Types>", '<Override PartName="/xl/sharedStrings.xml" ContentType='
                        '"application/vnd.openxmlformats-officedocument.spreadsheetml.'
                        'sharedStrings+xml"/></Types>')
    rels = parts["xl/_rels/workbook.xml.rels"].decode()
    if "sharedStrings" not in rels:
        rels = rels.replace("</Relationships>", '<Relationship Id="rIdStrings" Type="http://'
                            'schemas.openxmlformats.org/officeDocument/2006/relationships/'
                            'sharedStrings" Target="sharedStrings.xml"/></Relationships>')
    parts["[Content_Types].xml"], parts["xl/_rels/workbook.xml.rels"] = ct.encode(), rels.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=False) as out:
            out.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns='
                      b'"http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            written, i = 0, 0
            while written < size:
                block = "".join(f"<si><t>{i + k:09d}</t></si>" for k in range(10_000)).encode()
                out.write(block)
                written += len(block)
                i += 10_000
            out.write(b"</sst>")
