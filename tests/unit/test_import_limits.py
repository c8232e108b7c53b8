"""Import files are bounded: size, rows, XLSX unzipped size and ratio, cells, lines; rows are
streamed from the file; control characters are row errors. Small limits keep these fast; the
full-size refusals are measured by bench/bench_import_limits.py."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from bench.import_files import write_big_csv, write_xlsx_bomb, write_xlsx_gap

from civicvoucher.core import tabular
from civicvoucher.core.tabular import (
    ImportLimits,
    ImportTooLarge,
    control_problem,
    read_table,
    validate_rows,
    write_table,
)
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import localize

ALIASES = {"姓名": "name", "手机号": "phone"}


def _csv(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_a_csv_over_the_byte_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    write_big_csv(path, 20_000)
    monkeypatch.setenv("CIVICVOUCHER_IMPORT_MAX_BYTES", "10000")
    opened = []
    monkeypatch.setattr(tabular, "_csv_encoding", lambda src: opened.append(src) or "utf-8")
    with pytest.raises(ImportTooLarge) as exc:
        read_table(path)
    assert exc.value.code == "import_too_large" and exc.value.http_status == 413
    assert "超过" in zh(exc.value.message) and "big.csv" in exc.value.message
    assert opened == []  # refused on its size alone


def test_a_csv_with_too_many_rows_is_refused_when_read_and_names_the_row(tmp_path, monkeypatch):
    path = _csv(tmp_path, "姓名,手机号\n" + "张三,1\n" * 6)
    assert len(read_table(path, limits=ImportLimits(max_rows=6)).rows) == 6
    monkeypatch.setenv("CIVICVOUCHER_IMPORT_MAX_ROWS", "5")
    with pytest.raises(ImportTooLarge) as exc:
        read_table(path)
    assert exc.value.row == 7 and "5 行" in zh(exc.value.message)


def test_a_csv_line_without_breaks_is_refused_without_reading_it_whole(tmp_path):
    path = _csv(tmp_path, "姓名,手机号\n" + "x" * 5000)
    with pytest.raises(ImportTooLarge, match="line 2"):
        read_table(path, limits=ImportLimits(max_line=1000))


def test_a_long_cell_is_refused_with_its_row(tmp_path):
    path = _csv(tmp_path, "姓名,手机号\n张三,1\n李四," + "9" * 300 + "\n")
    with pytest.raises(ImportTooLarge) as exc:
        read_table(path, limits=ImportLimits(max_cell=200))
    assert exc.value.row == 3 and exc.value.field == "column 2"
    # a quoted field spanning many lines is bounded too (by the csv module's field limit)
    path = _csv(tmp_path, 'a\n"' + "x\n" * 70_000 + '"\n', "q.csv")
    with pytest.raises(ImportTooLarge):
        read_table(path)


def test_rows_are_streamed_not_held(tmp_path):
    path = _csv(tmp_path, "姓名,手机号\n张三,1\n\n李四,2\n")
    table = read_table(path, aliases=ALIASES)
    assert not isinstance(table.rows, list)
    assert len(table.rows) == 2
    assert list(table.rows) == list(table.rows) == [(2, {"name": "张三", "phone": "1"}),
                                                    (4, {"name": "李四", "phone": "2"})]
    assert table.rows[-1][0] == 4


def test_a_table_still_reads_after_its_file_is_deleted(tmp_path):
    """An upload's temporary folder may be gone before the rows are validated."""
    path = _csv(tmp_path, "姓名,手机号\n张三,1\n")
    table = read_table(path, aliases=ALIASES)
    path.unlink()
    assert list(table.rows) == [(2, {"name": "张三", "phone": "1"})]


def test_a_file_changed_while_importing_is_refused(tmp_path):
    path = _csv(tmp_path, "姓名,手机号\n张三,1\n")
    table = read_table(path, aliases=ALIASES)
    with path.open("ab") as fh:
        fh.write("李四,2\n".encode())
    with pytest.raises(ValidationError, match="changed"):
        list(table.rows)


def test_a_zip_bomb_is_refused_on_its_ratio_before_anything_is_unzipped(tmp_path, monkeypatch):
    path = tmp_path / "bomb.xlsx"
    write_xlsx_bomb(path, 20_000)  # ~5 MB of sheet in ~20 KB
    unzipped = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, *a, **k: unzipped.append(a) or real_open(self, *a, **k))
    with pytest.raises(ImportTooLarge, match=r"\d+:1, over the 100:1 limit") as exc:
        read_table(path)
    assert re.search(r"压缩比 \d+:1", zh(exc.value.message))
    assert unzipped == []


def test_an_xlsx_over_the_unzipped_limit_is_refused_on_its_directory(tmp_path, monkeypatch):
    path = tmp_path / "m.xlsx"
    write_xlsx_bomb(path, 2_000)  # ~500 KB unzipped: under the ratio's grace size
    assert len(read_table(path).rows) == 2_000
    monkeypatch.setenv("CIVICVOUCHER_IMPORT_MAX_XLSX_BYTES", "100000")
    with pytest.raises(ImportTooLarge, match="unzips to more than") as exc:
        read_table(path)
    assert "解压后超过" in zh(exc.value.message)


def test_bytes_unzipped_are_counted_even_if_the_directory_lied(tmp_path, monkeypatch):
    path = tmp_path / "m.xlsx"
    write_xlsx_bomb(path, 2_000)
    monkeypatch.setattr(tabular, "_check_zip", lambda fh, name, limits: None)
    table = read_table(path, limits=ImportLimits(max_xlsx_bytes=200_000))
    with pytest.raises(ImportTooLarge, match="unzips to more than"):
        len(table.rows)


def test_xlsx_rows_over_the_limit_are_counted_before_they_are_parsed(tmp_path, monkeypatch):
    path = tmp_path / "m.xlsx"
    write_xlsx_bomb(path, 30)
    assert len(read_table(path, limits=ImportLimits(max_rows=30)).rows) == 30
    parsed = []
    monkeypatch.setattr(tabular, "cell_text", lambda v: parsed.append(v) or "")
    with pytest.raises(ImportTooLarge, match="29"):
        read_table(path, limits=ImportLimits(max_rows=29))
    assert parsed == []  # refused by the byte scan, before openpyxl read a row


def test_an_xlsx_row_number_far_down_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "gap.xlsx"
    write_xlsx_gap(path, 3_000)
    assert len(read_table(path, limits=ImportLimits(max_rows=3_000)).rows) == 2
    with pytest.raises(ImportTooLarge, match="1,000"):
        read_table(path, limits=ImportLimits(max_rows=1000))
    # and if the scan missed it, the rows openpyxl makes up still count
    monkeypatch.setattr(tabular, "_count_rows", lambda *a: None)
    table = read_table(path, limits=ImportLimits(max_rows=1000))
    with pytest.raises(ImportTooLarge) as exc:
        len(table.rows)
    assert exc.value.row == 1002


def test_many_parts_or_zip64_are_refused(tmp_path):
    path = tmp_path / "parts.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"p{i}", b"")
    with pytest.raises(ImportTooLarge, match="10,001"):
        read_table(path)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f", "\x85"])
def test_a_control_character_is_an_error_of_its_row_and_column(tmp_path, char):
    path = _csv(tmp_path, f"姓名,手机号\n张三,1\n李{char}四,2\n王五,3\n")
    table = read_table(path, aliases=ALIASES)
    seen = []
    good, errors = validate_rows(table, validate_row=lambda n, r: seen.append(n) or r["name"],
                                 required=["name"], aliases=ALIASES)
    assert [n for n, _ in good] == [2, 4] and seen == [2, 4]
    assert [(e.row, e.field) for e in errors] == [(3, "姓名 (name)")]
    assert f"U+{ord(char):04X}" in errors[0].reason and "控制字符" in zh(errors[0].reason)


def test_tab_and_line_breaks_inside_a_cell_are_allowed():
    assert control_problem("山西省太原市\n小店区\t1号\r\n") is None
    assert control_problem("a\x00b") is not None


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_reject_file_can_echo_a_control_character(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    write_table(path, ["姓名"], [["李\x00四"]])
    assert read_table(path).rows == [(2, {"姓名": "李\ufffd四"})]


def test_limits_from_the_environment():
    assert ImportLimits.from_env({}) == ImportLimits()
    assert ImportLimits.from_env({"CIVICVOUCHER_IMPORT_MAX_ROWS": "1_000"}).max_rows == 1000
    with pytest.raises(ValidationError, match="CIVICVOUCHER_IMPORT_MAX_BYTES"):
        ImportLimits.from_env({"CIVICVOUCHER_IMPORT_MAX_BYTES": "lots"})


def test_an_xlsx_whose_shared_strings_outgrow_what_may_be_held_is_refused(tmp_path):
    """openpyxl holds the shared strings whole (a worksheet is streamed): a file within the
    size and ratio limits but with a huge shared-strings part cost minutes and gigabytes."""
    from bench.import_files import write_xlsx_shared_strings

    from civicvoucher.core.tabular import ImportLimits, ImportTooLarge, read_table

    path = tmp_path / "strings.xlsx"
    write_xlsx_shared_strings(path, 2 * 1024 * 1024)
    with pytest.raises(ImportTooLarge) as exc:
        list(read_table(path, limits=ImportLimits(max_xlsx_held=1024 * 1024)).rows)
    assert "shared strings" in str(exc.value)
    list(read_table(path, limits=ImportLimits()).rows)  # within the default: read


def test_a_file_with_more_errors_than_an_import_may_hold_is_refused_as_it_is_read():
    from civicvoucher.core.tabular import Table
    from civicvoucher.errors import RowError

    read = []

    class Rows:  # rows read one at a time, as from a file
        def __iter__(self):
            for n in range(2, 10_000):
                read.append(n)
                yield n, {"name": "x"}

    with pytest.raises(ImportTooLarge) as exc:
        validate_rows(Table(header=["name"], rows=Rows()),  # type: ignore[arg-type]
                      validate_row=lambda n, r: [RowError(n, "name", "bad")],
                      required=["name"], aliases={}, max_errors=100)
    assert "more than 100 errors" in str(exc.value) and len(read) == 101


def zh(text) -> str:
    """The Chinese a person reads for ``text`` (the suite runs in English)."""
    return localize(text, "zh")
