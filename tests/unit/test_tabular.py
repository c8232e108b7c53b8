"""Reading and writing import tables: encodings, aliases, row numbers, XLSX cells, speed."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from civicvoucher.core.tabular import (
    Table,
    cell_text,
    normalise_header,
    read_table,
    validate_rows,
    write_table,
)
from civicvoucher.errors import RowError, ValidationError

ALIASES = {"姓名": "name", "身份证号": "id_number", "身份证号码": "id_number", "手机号": "phone"}
CSV_TEXT = "姓名,身份证号,手机号\n张三,110101199001010015,13800000000\n李四,310101198512310029,\n"


def _write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "encoding,prefix",
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gbk", b""), ("gb18030", b"")],
    ids=["utf8", "utf8-bom", "gbk", "gb18030"],
)
def test_csv_encodings_give_the_same_table(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = _write_bytes(tmp_path, "m.csv", prefix + CSV_TEXT.encode(encoding))
    table = read_table(path, aliases=ALIASES)
    assert table.header == ["name", "id_number", "phone"]
    assert table.rows == [
        (2, {"name": "张三", "id_number": "110101199001010015", "phone": "13800000000"}),
        (3, {"name": "李四", "id_number": "310101198512310029", "phone": ""}),
    ]
    assert table.labels["id_number"] == "身份证号"
    assert table.label("id_number") == "身份证号 (id_number)"


def test_utf16_tab_separated_text_from_excel(tmp_path: Path) -> None:
    text = "姓名\t手机号\r\n王五\t13900000000\r\n"
    path = _write_bytes(tmp_path, "m.csv", text.encode("utf-16"))
    table = read_table(path, aliases=ALIASES)
    assert table.rows == [(2, {"name": "王五", "phone": "13900000000"})]


def test_blank_rows_skipped_but_row_numbers_kept(tmp_path: Path) -> None:
    text = "\n姓名,手机号\n张三,1\n,\n\n  ,\u3000\n李四,2\n"
    table = read_table(_write_bytes(tmp_path, "m.csv", text.encode()), aliases=ALIASES)
    assert [(n, r["name"]) for n, r in table.rows] == [(3, "张三"), (7, "李四")]


def test_whitespace_stripped_and_short_rows_padded(tmp_path: Path) -> None:
    text = " 姓名 ,\u3000手机号\u3000, 备注 \n\u3000张三 \n"
    table = read_table(_write_bytes(tmp_path, "m.csv", text.encode()), aliases=ALIASES)
    assert table.header == ["name", "phone", "备注"]
    assert table.rows == [(2, {"name": "张三", "phone": "", "备注": ""})]


def test_header_aliases_case_marks_and_remarks(tmp_path: Path) -> None:
    text = "Name*,ID_Number,手机号（11位）,Extra Col\na,b,c,d\n"
    table = read_table(_write_bytes(tmp_path, "m.csv", text.encode()), aliases=ALIASES)
    assert table.header == ["name", "id_number", "phone", "Extra Col"]
    assert table.labels == {
        "name": "Name*",
        "id_number": "ID_Number",
        "phone": "手机号（11位）",
        "Extra Col": "Extra Col",
    }


def test_normalise_header() -> None:
    assert normalise_header(" 所属工会（统一社会信用代码） ") == "所属工会"
    assert normalise_header("ID Number") == "id_number"
    assert normalise_header("*姓名") == "姓名"


def test_two_columns_meaning_the_same_field_refused(tmp_path: Path) -> None:
    text = "身份证号,身份证号码\n1,2\n"
    with pytest.raises(ValidationError) as exc:
        read_table(_write_bytes(tmp_path, "m.csv", text.encode()), aliases=ALIASES)
    assert exc.value.field == "id_number"
    assert "身份证号" in exc.value.message and "身份证号码" in exc.value.message


def test_without_aliases_headers_kept(tmp_path: Path) -> None:
    table = read_table(_write_bytes(tmp_path, "m.csv", b"a,b\n1,2\n"))
    assert table.header == ["a", "b"]
    assert table.rows == [(2, {"a": "1", "b": "2"})]


@pytest.mark.parametrize("name", ["members.txt", "members.xls", "members"])
def test_unsupported_suffix_names_the_file(tmp_path: Path, name: str) -> None:
    path = _write_bytes(tmp_path, name, b"a,b\n")
    with pytest.raises(ValidationError) as exc:
        read_table(path)
    assert name in exc.value.message


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="empty"):
        read_table(_write_bytes(tmp_path, "e.csv", b"\n , \n"))
    with pytest.raises(ValidationError, match="no such file"):
        read_table(tmp_path / "nope.xlsx")


def test_corrupt_xlsx_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a readable"):
        read_table(_write_bytes(tmp_path, "bad.xlsx", b"this is not a zip"))


def test_undecodable_csv_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="encoding"):
        read_table(_write_bytes(tmp_path, "bad.csv", b"a,b\n\x81\x20\xff\xff\n"))


def test_xlsx_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    rows = [
        ["张三", "110101199001010015", 300, date(2024, 1, 2), None],
        ['=HYPERLINK("x")', "0012", 2.5, datetime(2024, 1, 2, 8, 30), "-12.50"],
    ]
    write_table(path, ["姓名", "身份证号", "金额", "日期", "备注"], rows)
    table = read_table(path, aliases=ALIASES)
    assert table.header == ["name", "id_number", "金额", "日期", "备注"]
    assert table.rows == [
        (2, {"name": "张三", "id_number": "110101199001010015", "金额": "300",
             "日期": "2024-01-02", "备注": ""}),
        (3, {"name": "=HYPERLINK(\"x\")", "id_number": "0012", "金额": "2.5",
             "日期": "2024-01-02 08:30:00", "备注": "-12.50"}),
    ]  # fmt: skip
    ws = openpyxl.load_workbook(path).worksheets[0]
    assert ws["A3"].data_type == "s"  # stored as text, never evaluated as a formula
    assert ws.column_dimensions["B"].number_format == "@"


def test_xlsx_numeric_cells_and_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "typed.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["姓名", "身份证号", "手机号"])
    ws.append(["张三", 1.10101199001010e17, 13800000000])
    ws.append([None, None, None])
    ws.append(["李四", "110101199001010015", 13800000001.0])
    wb.save(path)
    table = read_table(path, aliases=ALIASES)
    assert table.rows == [
        (2, {"name": "张三", "id_number": "1.1010119900101E+17", "phone": "13800000000"}),
        (4, {"name": "李四", "id_number": "110101199001010015", "phone": "13800000001"}),
    ]


def test_xlsx_write_keeps_big_integers_exact(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    write_table(path, ["id", "n"], [[110101199001010015, 10**14]])
    assert read_table(path).rows == [(2, {"id": "110101199001010015", "n": str(10**14)})]


def test_xlsx_header_below_a_blank_top_keeps_excel_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "lead.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"], ws["C3"], ws["B5"] = "姓名", "手机号", " 张三 "
    wb.save(path)
    table = read_table(path, aliases=ALIASES)
    assert table.header == ["name", "phone"]
    assert table.rows == [(5, {"name": "张三", "phone": ""})]


@pytest.mark.parametrize(
    "value,text",
    [
        (None, ""),
        (True, "TRUE"),
        (42, "42"),
        (42.0, "42"),
        (0.1, "0.1"),
        (1.5e16, "1.5E+16"),
        (datetime(2024, 3, 1), "2024-03-01"),
        (date(2024, 3, 1), "2024-03-01"),
        ("  x\u3000", "x"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_csv_write_has_bom_and_defuses_formulas(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_table(path, ["姓名", "值"], [["=1+2", -3], ["@SUM(A1)", "+8613800000000"], [None, "-x"]])
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines() == [
        "姓名,值",
        "'=1+2,-3",
        "'@SUM(A1),+8613800000000",
        ",'-x",
    ]
    assert read_table(path).rows[0] == (2, {"姓名": "'=1+2", "值": "-3"})


def test_write_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"out\.json"):
        write_table(tmp_path / "out.json", ["a"], [])


def test_ten_thousand_rows_fast(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_table(
        path,
        ["姓名", "身份证号", "手机号"],
        ([f"会员{i}", f"{110101199001010000 + i}", f"138{i:08d}"] for i in range(10_000)),
    )
    started = time.perf_counter()
    table = read_table(path, aliases=ALIASES)
    elapsed = time.perf_counter() - started
    assert len(table.rows) == 10_000
    assert table.rows[-1] == (
        10_001,
        {"name": "会员9999", "id_number": "110101199001019999", "phone": "13800009999"},
    )
    assert elapsed < 1.0, f"10,000 rows took {elapsed:.2f}s"


def _row(row_no: int, row: dict[str, str]) -> str | list[RowError]:
    if not row.get("name"):
        return [RowError(row_no, "name", "name is required")]
    return row["name"]


def test_validate_rows_labels_errors_and_finds_duplicates() -> None:
    table = Table(
        header=["name", "phone"],
        rows=[(2, {"name": "a", "phone": "1"}), (3, {"name": "", "phone": "2"}),
              (5, {"name": "b", "phone": "1"})],
        labels={"name": "姓名", "phone": "phone"},
    )  # fmt: skip
    good, errors = validate_rows(
        table,
        validate_row=_row,
        required=["name"],
        aliases=ALIASES,
        unique_keys=lambda r: [("phone", "phone", r["phone"])],
    )
    assert good == [(2, "a")]
    assert errors == [
        RowError(3, "姓名 (name)", "name is required"),
        RowError(5, "phone", "same phone as row 2"),
    ]


def test_validate_rows_missing_column_is_one_error() -> None:
    table = Table(header=["phone"], rows=[(2, {"phone": "1"})] * 3, labels={"phone": "手机号"})
    good, errors = validate_rows(table, validate_row=_row, required=["name"], aliases=ALIASES)
    assert good == []
    assert errors == [RowError(1, "name", "column is missing; add a column headed 姓名 (or name)")]
