"""Member rows: ID, phone and union checks, duplicates, masks and keyed hashes."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import stdnum
from hypothesis import example, given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

from civicvoucher.core import clock
from civicvoucher.core.tabular import Table, read_table, write_table
from civicvoucher.errors import RowError
from civicvoucher.i18n import localize
from civicvoucher.members.rules import (
    MEMBER_ALIASES,
    MEMBER_TEMPLATE_HEADER,
    MemberRow,
    MemberStatus,
    area_known,
    hash_id_number,
    id_number_problem,
    mask_id_number,
    mask_phone,
    member_template_example_rows,
    validate_member_row,
    validate_member_rows,
)

# --- independent test data: our own check-digit code, cross-checked against stdnum ------------

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 0-9 A-H J-N P-R T U W X Y
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_RIC_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))  # ISO 7064 MOD 11-2


def make_uscc(first17: str) -> str:
    """GB 32100: check character = (31 - Σ value·weight mod 31) mod 31."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return first17 + _USCC_ALPHABET[(31 - total % 31) % 31]


def make_ric(first17: str) -> str:
    """GB 11643 / ISO 7064 MOD 11-2: check = (12 - Σ digit·weight mod 11) mod 11, 10 → X."""
    total = sum(int(d) * w for d, w in zip(first17, _RIC_WEIGHTS, strict=True))
    check = (12 - total % 11) % 11
    return first17 + ("X" if check == 10 else str(check))


UNION = make_uscc("81110101MA0000001")
GOOD_ID = make_ric("11010119900307123")
# Area codes stdnum knows as valid for every birth year from 1984 on.
AREAS = ["110101", "110102", "110105", "110108", "310101", "440103", "330102", "420106"]
TODAY = date(2026, 6, 1)  # the rules' "today" in this module (a fixed clock, Beijing noon)


@pytest.fixture(autouse=True, scope="module")
def _fixed_clock():
    clock.set_clock(lambda: datetime(2026, 6, 1, 4, 0))
    yield
    clock.set_clock(None)


def _table_areas() -> frozenset[str]:
    """Every division code in python-stdnum's table, read from the file itself (not through
    stdnum's lookup, whose county parsing is what our rules had to stop relying on)."""
    areas, province = set(), ""
    for line in (Path(stdnum.__file__).parent / "cn" / "loc.dat").read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province = line.split()[0]
            continue
        code, _, props = line.strip().partition(" ")
        if props.startswith('county="') and props != 'county=""':
            areas.add(province + code)
    return frozenset(areas)


TABLE_AREAS = _table_areas()


def test_own_check_digits_agree_with_stdnum() -> None:
    assert uscc.is_valid(UNION)
    assert uscc.is_valid(make_uscc("91110000600037341"))  # stdnum's own example ends in L
    assert make_uscc("91110000600037341") == "91110000600037341L"
    assert ric.is_valid(GOOD_ID)
    assert make_ric("36042619910101007") == "360426199101010071"  # stdnum's example


def _row(**over: str) -> dict[str, str]:
    row = {"name": "张三", "id_number": GOOD_ID, "phone": "13812345678", "union": UNION}
    row.update(over)
    return row


# --- single rows --------------------------------------------------------------------------


def test_good_row_is_normalised() -> None:
    x_id = next(
        make_ric(f"11010119900307{n:03d}")
        for n in range(1000)
        if make_ric(f"11010119900307{n:03d}").endswith("X")
    )
    got = validate_member_row(
        2,
        _row(id_number=x_id.lower(), phone="+86 138-1234-5678", union=UNION.lower(), status="在职"),
    )
    assert got == MemberRow(
        name="张三", id_number=x_id, phone="13812345678", union=UNION, status=MemberStatus.ACTIVE
    )


@pytest.mark.parametrize(
    "word,status",
    [("", "active"), ("正常", "active"), ("停用", "suspended"), ("离会", "left"),
     ("退会", "left"), ("Suspended", "suspended")],
)  # fmt: skip
def test_status_words(word: str, status: str) -> None:
    got = validate_member_row(2, _row(status=word))
    assert isinstance(got, MemberRow)
    assert got.status == MemberStatus(status)


def test_phone_optional_and_full_width_digits_accepted() -> None:
    got = validate_member_row(2, _row(phone=""))
    assert isinstance(got, MemberRow) and got.phone is None
    got = validate_member_row(2, _row(phone="１３８１２３４５６７８"))
    assert isinstance(got, MemberRow) and got.phone == "13812345678"


def _only_error(row: dict[str, str]) -> RowError:
    got = validate_member_row(7, row)
    assert isinstance(got, list) and len(got) == 1, got
    return got[0]


def test_bad_checksum_names_row_and_column() -> None:
    bad = GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1")
    err = _only_error(_row(id_number=bad))
    assert (err.row, err.field) == (7, "id_number")
    assert err.reason == "ID-card number checksum is wrong"


def test_bad_checksum_in_file_uses_users_header(tmp_path: Path) -> None:
    bad = GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1")
    path = tmp_path / "m.csv"
    write_table(
        path, ["姓名", "身份证号", "所属工会"], [["张三", GOOD_ID, UNION], ["李四", bad, UNION]]
    )
    good, errors = validate_member_rows(read_table(path, aliases=MEMBER_ALIASES))
    assert [(n, m.name) for n, m in good] == [(2, "张三")]
    assert [str(e) for e in errors] == [
        "row 3, column 身份证号 (id_number): ID-card number checksum is wrong"
    ]


@pytest.mark.parametrize(
    "value,reason",
    [
        ("110101900307123", "old 15-digit ID number"),
        ("1.10101199003071E+17", "Excel stored the ID number as a number"),
        ("11010119900307", "must be 18 characters, got 14"),
        ("11010119900307123A", "17 digits followed by a digit or X"),
        (make_ric("11010119901307123"), "birth date 19901307"),
        (make_ric("99999919900307123"), "area code 999999"),
        ("", "ID-card number is required"),
    ],
)
def test_id_number_problems(value: str, reason: str) -> None:
    assert reason in _only_error(_row(id_number=value)).reason


@pytest.mark.parametrize(
    "body",
    [
        "14010519900101001",  # 小店区 got its code in 1997: a card issued there later
        "21020219700101002",  # 大连市中山区 [1983-]: born before the code existed
        "12011019800101003",  # 东郊区 until 1991, 东丽区 since: one code, two names
        "11011019800101004",  # 燕山区 [-1986]: a code no longer given out
        "14010519400101005",  # old, but not implausibly so
    ],
)
def test_area_code_that_existed_at_any_time_is_accepted(body: str) -> None:
    assert id_number_problem(make_ric(body)) is None


def test_unknown_area_under_a_known_province_is_rejected_not_crashed() -> None:
    # stdnum's get_birth_place raises KeyError('county') for this one (province 65 known)
    reason = id_number_problem(make_ric("65857119800101000"))
    assert reason is not None and "658571" in reason and zh(reason).startswith("身份证号码中的地区代码")
    assert not area_known("658571") and area_known("140105") and not area_known("140105", 1990)


def test_birth_date_in_the_future_is_rejected() -> None:
    reason = id_number_problem(make_ric("14010520260602001"))
    assert reason is not None and zh(reason).startswith("身份证号码中的出生日期 2026-06-02 晚于今天")
    assert "in the future" in reason


def test_too_young_is_rejected_with_the_minimum_age() -> None:
    sixteen_today = make_ric("14010520100601001")
    one_day_short = make_ric("14010520100602001")
    assert id_number_problem(sixteen_today) is None
    reason = id_number_problem(one_day_short)
    assert reason is not None and zh(reason).startswith("未满16周岁")
    assert "at least 16 years old" in reason


def test_minimum_age_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    twelve = make_ric("14010520140101001")
    assert id_number_problem(twelve, min_age=12) is None
    assert "未满16周岁" in zh(id_number_problem(twelve) or "")
    monkeypatch.setenv("CIVICVOUCHER_MIN_MEMBER_AGE", "12")
    assert id_number_problem(twelve) is None
    got = validate_member_rows(_table(_row(id_number=twelve)))
    assert got[1] == [] and len(got[0]) == 1
    assert "未满18周岁" in zh(id_number_problem(twelve, min_age=18) or "")
    monkeypatch.setenv("CIVICVOUCHER_MIN_MEMBER_AGE", "sixteen")
    with pytest.raises(ValueError, match="CIVICVOUCHER_MIN_MEMBER_AGE"):
        id_number_problem(twelve)


def test_born_in_1895_gets_a_reason_about_age_not_county() -> None:
    reason = id_number_problem(make_ric("14010518950101001"))
    assert reason is not None and "120" in reason and "出生年份" in zh(reason)
    assert "county" not in reason and "地区代码" not in zh(reason)


def test_truncated_id_gets_a_hint() -> None:
    truncated = make_ric("11010119900307123")[:15] + "000"
    if ric.is_valid(truncated):  # pragma: no cover - one in eleven chance for a given number
        pytest.skip("truncated number happens to be valid")
    assert "last digits were lost" in _only_error(_row(id_number=truncated)).reason


@pytest.mark.parametrize("phone", ["12812345678", "1381234567", "138123456789", "010-12345678"])
def test_bad_phone(phone: str) -> None:
    err = _only_error(_row(phone=phone))
    assert err.field == "phone" and "mainland mobile" in err.reason


@pytest.mark.parametrize(
    "value,reason",
    [
        ("", "union is required"),
        ("北京市东城区某某公司工会", "not a name"),
        (UNION[:-1] + ("0" if UNION[-1] != "0" else "1"), "check character is wrong"),
        ("8111010", "must be 18 characters"),
    ],
)
def test_bad_union(value: str, reason: str) -> None:
    err = _only_error(_row(union=value))
    assert err.field == "union" and reason in err.reason


def test_name_required_and_limited() -> None:
    assert _only_error(_row(name=" ")).reason == "the member's name is required"
    assert "longer than 50" in _only_error(_row(name="张" * 51)).reason


def test_unknown_status() -> None:
    err = _only_error(_row(status="休假"))
    assert err.field == "status" and "在职" in err.reason


def test_several_problems_all_reported() -> None:
    got = validate_member_row(3, {"name": "", "id_number": "123", "phone": "1", "union": ""})
    assert isinstance(got, list)
    assert [e.field for e in got] == ["name", "id_number", "phone", "union"]


# --- whole files ---------------------------------------------------------------------------


def _table(*rows: dict[str, str]) -> Table:
    header = ["name", "id_number", "phone", "union"]
    return Table(
        header=header,
        rows=[(i + 2, r) for i, r in enumerate(rows)],
        labels={h: h for h in header},
    )


def test_duplicate_id_in_file_reported_on_later_row() -> None:
    other = make_ric("31010119851231002")
    good, errors = validate_member_rows(
        _table(_row(), _row(id_number=other), _row(id_number=GOOD_ID.lower(), phone="x"))
    )
    assert [(n, m.id_number) for n, m in good] == [(2, GOOD_ID), (3, other)]
    assert RowError(4, "id_number", "same ID number as row 2") in errors
    assert {e.row for e in errors} == {4}


def test_missing_id_column_is_one_error() -> None:
    table = Table(header=["name", "union"], rows=[(2, {"name": "a", "union": UNION})])
    good, errors = validate_member_rows(table)
    assert good == []
    assert [(e.row, e.field) for e in errors] == [(1, "id_number")]
    assert "身份证号" in errors[0].reason


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_template_round_trips_and_validates(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"template{suffix}"
    write_table(path, MEMBER_TEMPLATE_HEADER, member_template_example_rows())
    table = read_table(path, aliases=MEMBER_ALIASES)
    assert table.header == ["name", "id_number", "phone", "union", "status"]
    good, errors = validate_member_rows(table)
    assert errors == []
    assert len(good) == 2
    assert good[1][0] == 3 and good[1][1].phone is None


# --- privacy -------------------------------------------------------------------------------


def test_masks() -> None:
    assert mask_id_number("110101199003071234") == "110***********1234"
    assert mask_id_number("11010119900307123x") == "110***********123X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138 1234 5678") == "138****5678"
    assert mask_phone("1234") == "****"


def test_hash_is_keyed_and_normalised() -> None:
    a = hash_id_number(GOOD_ID, key=b"key-one")
    assert a != hash_id_number(GOOD_ID, key=b"key-two")
    assert a == hash_id_number(f" {GOOD_ID.lower()} ", key=b"key-one")
    assert len(a) == 64 and int(a, 16) >= 0
    with pytest.raises(ValueError):
        hash_id_number(GOOD_ID, key=b"")


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    """Valid IDs of possible members: any code in the table (whatever years it was in use),
    born 16 to 120 years before TODAY."""
    area = draw(st.sampled_from(AREAS) | st.sampled_from(sorted(TABLE_AREAS)))
    born = draw(st.dates(date(TODAY.year - 120, TODAY.month, TODAY.day + 1),
                         date(TODAY.year - 16, TODAY.month, TODAY.day)))
    seq = draw(st.integers(0, 999))
    return make_ric(f"{area}{born:%Y%m%d}{seq:03d}")


@st.composite
def any_ids(draw: st.DrawFn) -> str:
    """Well-formed numbers with a right check digit: a table code or any six digits, born
    anywhere from 1850 to 2100 (too old, too young, in the future)."""
    area = draw(st.sampled_from(sorted(TABLE_AREAS)) | st.from_regex(r"[0-9]{6}", fullmatch=True))
    born = draw(st.dates(date(1850, 1, 1), date(2100, 12, 31)))
    return make_ric(f"{area}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}")


@given(number=valid_ids(), lower=st.booleans())
def test_any_valid_id_validates_and_masks_to_same_length(number: str, lower: bool) -> None:
    got = validate_member_row(2, _row(id_number=number.lower() if lower else number))
    assert isinstance(got, MemberRow), got
    assert got.id_number == number
    masked = mask_id_number(number)
    assert len(masked) == 18
    assert masked[:3] == number[:3] and masked[-4:] == number[-4:]
    assert set(masked[3:-4]) == {"*"}


@given(number=valid_ids(), pos=st.integers(0, 16), delta=st.integers(1, 9))
def test_any_single_digit_typo_is_caught(number: str, pos: int, delta: int) -> None:
    typo = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    assert isinstance(validate_member_row(2, _row(id_number=typo)), list)


@given(
    number=valid_ids() | any_ids()
    | st.from_regex(r"[1-6][0-9]{5}(19|20)[0-9]{9}[0-9X]", fullmatch=True),
    pos=st.integers(0, 17),
    digit=st.sampled_from("0123456789X"),
)
@example(number="658571191801010000", pos=0, digit="6")  # KeyError('county') inside stdnum
@example(number=make_ric("14010519900101001"), pos=0, digit="1")  # 小店区 before 1997
@example(number=make_ric("14010518950101001"), pos=0, digit="1")  # 131 years old
def test_id_check_agrees_with_stdnum(number: str, pos: int, digit: str) -> None:
    """Our check is stdnum's format, checksum and date check, with the area code looked up in
    stdnum's table at any time (not at the birth year) and an age from 16 to 120 years."""
    for candidate in (number, number[:pos] + digit + number[pos + 1 :]):
        ours = id_number_problem(candidate) is None
        assert ours == _expected_valid(candidate), candidate
        if _stdnum_valid(candidate) and _plausible_age(candidate):
            assert ours, candidate  # never stricter than stdnum


def _plausible_age(number: str) -> bool:
    born = ric.get_birth_date(number)
    age = TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))
    return 16 <= age <= 120


def _expected_valid(number: str) -> bool:
    """The oracle: stdnum's pieces plus the table read from its file, not our code."""
    n = ric.compact(number)
    if len(n) != 18 or not n[:17].isdigit() or n[-1] != ric.calc_check_digit(n):
        return False
    try:
        ric.get_birth_date(n)
    except StdnumError:
        return False
    return _plausible_age(n) and n[:6] in TABLE_AREAS


def _stdnum_valid(number: str) -> bool:
    try:
        return ric.is_valid(number)
    except KeyError:  # stdnum's area lookup raises for some records without a county name
        return False


def zh(text) -> str:
    """The Chinese a person reads for ``text`` (the suite runs in English)."""
    return localize(text, "zh")
