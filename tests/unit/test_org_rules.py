"""Organisation rows: federation division codes, union USCC and unit type, parents."""

from __future__ import annotations

from pathlib import Path

import pytest
from stdnum.cn import uscc

from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import RowError
from civicvoucher.orgs.rules import (
    ORG_ALIASES,
    OrgLevel,
    OrgRow,
    UnitType,
    parse_level,
    validate_org_row,
    validate_org_rows,
)

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def make_uscc(first17: str) -> str:
    """GB 32100 check character, computed independently of stdnum."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return first17 + _USCC_ALPHABET[(31 - total % 31) % 31]


UNION_A = make_uscc("81140105MA0K00001")
UNION_B = make_uscc("81140105MA0K00002")


def test_factory_agrees_with_stdnum() -> None:
    assert uscc.is_valid(UNION_A) and uscc.is_valid(UNION_B)


def test_labels() -> None:
    assert OrgLevel.UNION.label_zh == "基层工会"
    assert UnitType.ADMINISTRATIVE.label_zh == "行政事业单位"
    assert UnitType.ENTERPRISE.label_zh == "企业"
    assert all(level.label_zh for level in OrgLevel)


@pytest.mark.parametrize(
    "row,expected",
    [
        (
            {"level": "省", "name": "山西省总工会", "division_code": "140000"},
            OrgRow(OrgLevel.PROVINCE, "山西省总工会", "140000", None, None, None),
        ),
        (
            {"level": "市级", "name": "太原市总工会", "division_code": "140100", "parent": "140000"},
            OrgRow(OrgLevel.CITY, "太原市总工会", "140100", None, None, "140000"),
        ),
        (
            {"level": "县区", "name": "小店区总工会", "division_code": "140105", "parent": "140100"},
            OrgRow(OrgLevel.COUNTY, "小店区总工会", "140105", None, None, "140100"),
        ),
        (
            {"level": "基层工会", "name": "某公司工会", "uscc": UNION_A.lower(),
             "unit_type": "企业", "parent": "140105"},
            OrgRow(OrgLevel.UNION, "某公司工会", None, UNION_A, UnitType.ENTERPRISE, "140105"),
        ),
        (
            {"level": "union", "name": "某局工会", "uscc": UNION_B, "unit_type": "机关事业",
             "parent": "140105", "division_code": "140105"},
            OrgRow(OrgLevel.UNION, "某局工会", None, UNION_B, UnitType.ADMINISTRATIVE, "140105"),
        ),
        (  # a county directly under a municipality / a province-administered county
            {"level": "县", "name": "仙桃市总工会", "division_code": "429004", "parent": "420000"},
            OrgRow(OrgLevel.COUNTY, "仙桃市总工会", "429004", None, None, "420000"),
        ),
    ],
)  # fmt: skip
def test_good_rows(row: dict[str, str], expected: OrgRow) -> None:
    assert validate_org_row(2, row) == expected


def _errors(row: dict[str, str]) -> list[tuple[str, str]]:
    got = validate_org_row(5, row)
    assert isinstance(got, list), got
    assert all(e.row == 5 for e in got)
    return [(e.field, e.reason) for e in got]


@pytest.mark.parametrize(
    "row,field,reason",
    [
        ({"level": "国家", "name": "x"}, "level", "unknown level '国家'"),
        ({"level": "", "name": "x"}, "level", "level is required"),
        ({"level": "省", "name": "", "division_code": "140000"}, "name", "name is required"),
        ({"level": "省", "name": "x" * 201, "division_code": "140000"}, "name", "longer than 200"),
        ({"level": "省", "name": "x"}, "division_code", "needs its 6-digit division code"),
        ({"level": "省", "name": "x", "division_code": "140100"}, "division_code", "ends in 0000"),
        ({"level": "市", "name": "x", "division_code": "140000", "parent": "140000"},
         "division_code", "ends in 00 but not 0000"),
        ({"level": "市", "name": "x", "division_code": "140105", "parent": "140000"},
         "division_code", "ends in 00 but not 0000"),
        ({"level": "县", "name": "x", "division_code": "140100", "parent": "140000"},
         "division_code", "does not end in 00"),
        ({"level": "县", "name": "x", "division_code": "14010", "parent": "140100"},
         "division_code", "must be 6 digits"),
        ({"level": "县", "name": "x", "division_code": "990105", "parent": "140100"},
         "division_code", "province code"),
        ({"level": "省", "name": "x", "division_code": "140000", "parent": "100000"},
         "parent", "has no parent"),
        ({"level": "市", "name": "x", "division_code": "140100"}, "parent", "parent (上级) is required"),
        ({"level": "市", "name": "x", "division_code": "140100", "parent": "140105"},
         "parent", "must be a province code"),
        ({"level": "县", "name": "x", "division_code": "140105", "parent": "140106"},
         "parent", "province or city code"),
        ({"level": "基层", "name": "x", "unit_type": "企业", "parent": "140105"},
         "uscc", "needs its unified social credit code"),
        ({"level": "基层", "name": "x", "uscc": UNION_A[:-1] + "Z", "unit_type": "企业",
          "parent": "140105"}, "uscc", "8 digits then 10"),
        ({"level": "基层", "name": "x", "uscc": UNION_A, "parent": "140105"},
         "unit_type", "unit type is required"),
        ({"level": "基层", "name": "x", "uscc": UNION_A, "unit_type": "个体", "parent": "140105"},
         "unit_type", "unknown unit type"),
        ({"level": "基层", "name": "x", "uscc": UNION_A, "unit_type": "企业", "parent": "140105",
          "division_code": "140106"}, "division_code", "no division code of its own"),
        ({"level": "基层", "name": "x", "uscc": UNION_A, "unit_type": "企业", "parent": "1401"},
         "parent", "must be 6 digits"),
    ],
)  # fmt: skip
def test_bad_rows(row: dict[str, str], field: str, reason: str) -> None:
    errors = _errors(row)
    assert len(errors) == 1, errors
    assert errors[0][0] == field
    assert reason in errors[0][1]


def test_federation_may_carry_a_valid_uscc_but_not_a_bad_one() -> None:
    row = {"level": "省", "name": "x", "division_code": "140000", "uscc": UNION_A}
    got = validate_org_row(2, row)
    assert isinstance(got, OrgRow) and got.uscc == UNION_A
    row["uscc"] = UNION_A[:-1] + ("0" if UNION_A[-1] != "0" else "1")
    assert _errors(row) == [("uscc", "unified social credit code check character is wrong (typo?)")]


def test_file_with_chinese_headers_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "orgs.xlsx"
    write_table(
        path,
        ["层级", "名称", "行政区划代码", "统一社会信用代码", "单位类型", "上级"],
        [
            ["省", "山西省总工会", "140000", "", "", ""],
            ["市", "太原市总工会", "140100", "", "", "140000"],
            ["市", "太原市总工会(重复)", "140100", "", "", "140000"],
            ["基层工会", "甲公司工会", "", UNION_A, "企业", "140105"],
            ["基层工会", "乙公司工会", "", UNION_A, "企业", "140105"],
            ["基层工会", "丙公司工会", "", UNION_B, "企业", ""],
        ],
    )
    good, errors = validate_org_rows(read_table(path, aliases=ORG_ALIASES))
    assert [(n, o.name) for n, o in good] == [
        (2, "山西省总工会"),
        (3, "太原市总工会"),
        (5, "甲公司工会"),
    ]
    assert errors == [
        RowError(4, "行政区划代码 (division_code)", "same division code as row 3"),
        RowError(6, "统一社会信用代码 (uscc)", "same unified social credit code as row 5"),
        RowError(
            7, "上级 (parent)", "parent (上级) is required: the parent federation's division code"
        ),
    ]


@pytest.mark.parametrize(
    "word,level",
    [("省", "province"), ("省级", "province"), ("市", "city"), ("市级", "city"),
     ("县", "county"), ("县级", "county"), ("县区", "county"), ("基层", "union"),
     ("基层工会", "union"), ("Province", "province"), (" county ", "county"), ("乡", None)],
)  # fmt: skip
def test_level_words(word: str, level: str | None) -> None:
    assert parse_level(word) == (OrgLevel(level) if level else None)


@pytest.mark.parametrize("text,want", [("17", 17), (" 17 ", 17), ("²³", None), ("١٢٣", None),
                                       ("0", None), ("-1", None), ("2147483648", None),
                                       ("9" * 40, None), ("", None), ("1e3", None)])
def test_ids_are_ascii_digits_in_range(text, want):
    from civicvoucher.core.ids import as_id

    assert as_id(text) == want
