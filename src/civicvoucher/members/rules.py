"""Member rows: validating an import file, and keeping ID numbers out of the database.

ID numbers (居民身份证号码) are stored only as a keyed hash and a masked form: an 18-digit ID
has little entropy (area, birth date, 3 digits), so an unkeyed hash could be brute-forced.
Pure: no database.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache, partial

from stdnum import numdb as _numdb
from stdnum.cn import ric as _ric
from stdnum.cn import uscc as _uscc

from civicvoucher.core import clock
from civicvoucher.core.tabular import Table, validate_rows
from civicvoucher.errors import RowError
from civicvoucher.i18n import N_, Msg, Term, msg, terms
from civicvoucher.orgs.rules import normalise_code, uscc_problem

NAME_MAX = 50
_MOBILE = re.compile(r"1[3-9]\d{9}")
_SCIENTIFIC = re.compile(r"\d+(\.\d+)?E\+?\d+", re.IGNORECASE)


DEFAULT_MIN_MEMBER_AGE = 16
MAX_MEMBER_AGE = 120  # older than anyone alive: a mistyped birth year, not a member
MIN_AGE_ENV = "CIVICVOUCHER_MIN_MEMBER_AGE"


class MemberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"
    TRANSFERRED = "transferred"  # 调出: moved to another union (a row there, if registered)


MEMBER_STATUS_LABEL_ZH: dict[MemberStatus, str] = {
    MemberStatus.ACTIVE: "在职",
    MemberStatus.SUSPENDED: "停用",
    MemberStatus.LEFT: "离会",
    MemberStatus.TRANSFERRED: "调出",
}

terms.register("member_status", MEMBER_STATUS_LABEL_ZH)

_STATUS_WORDS: dict[str, MemberStatus] = {
    "在职": MemberStatus.ACTIVE,
    "正常": MemberStatus.ACTIVE,
    "停用": MemberStatus.SUSPENDED,
    "离会": MemberStatus.LEFT,
    "退会": MemberStatus.LEFT,
    "调出": MemberStatus.TRANSFERRED,
    "转出": MemberStatus.TRANSFERRED,
    **{m.value: m for m in MemberStatus},
}

# Which status changes a member may make. Only an active member is issued vouchers
# (vouchers/issuance.py); a member who left or was transferred may come back.
STATUS_CHANGES: dict[MemberStatus, frozenset[MemberStatus]] = {
    MemberStatus.ACTIVE: frozenset({MemberStatus.SUSPENDED, MemberStatus.LEFT,
                                    MemberStatus.TRANSFERRED}),
    MemberStatus.SUSPENDED: frozenset({MemberStatus.ACTIVE, MemberStatus.LEFT,
                                       MemberStatus.TRANSFERRED}),
    MemberStatus.LEFT: frozenset({MemberStatus.ACTIVE}),
    MemberStatus.TRANSFERRED: frozenset({MemberStatus.ACTIVE}),
}


def status_change_problem(old: str, new: str) -> Msg | None:
    """Why a member may not go from ``old`` to ``new`` (None: allowed, or no change)."""
    a, b = MemberStatus(old), MemberStatus(new)
    if a == b or b in STATUS_CHANGES[a]:
        return None
    return msg("a member cannot go from {old} to {new}", old=Term(a, "member_status"),
               new=Term(b, "member_status"))

MEMBER_ALIASES: dict[str, str] = {
    "姓名": "name",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "手机号": "phone",
    "手机号码": "phone",
    "所属工会": "union",
    "基层工会": "union",
    "工会代码": "union",
    "状态": "status",
    "会员状态": "status",
}

# The "(…)" remarks are ignored when the file is read back (see tabular.normalise_header).
MEMBER_TEMPLATE_HEADER: list[str] = [
    "姓名",
    "身份证号",
    "手机号",
    "所属工会（统一社会信用代码）",
    "状态（在职/停用/离会/调出）",
]


@dataclass(frozen=True)
class MemberRow:
    """One valid member row, normalised (ID upper-case X, phone bare 11 digits, USCC upper)."""

    name: str
    id_number: str
    phone: str | None
    union: str
    status: MemberStatus
    status_given: bool = True  # False: the cell was empty (active for a new member, and
    #                            no change for one already registered)


def with_ric_check(first17: str) -> str:
    return first17 + _ric.calc_check_digit(first17 + "0")


def member_template_example_rows() -> list[list[str]]:
    """Two made-up example rows for the import template (valid checksums, fake people)."""
    union = "81110101000000001"
    union += _uscc.calc_check_digit(union)
    return [
        ["张三", with_ric_check("11010119900101001"), "13800000000", union, "在职"],
        ["李四", with_ric_check("31010119851231002"), "", union, "在职"],
    ]


def normalise_id_number(text: str) -> str:
    """Full-width digits folded, spaces and dashes dropped, 'x' upper-cased."""
    return normalise_code(text)


@dataclass(frozen=True)
class AreaPeriod:
    """One name an area code had, and the years it had it (None: open-ended)."""

    name: str
    start: int | None
    end: int | None

    def covers(self, year: int) -> bool:
        return (self.start is None or year >= self.start) and (self.end is None or year <= self.end)


@lru_cache(maxsize=8192)
def area_periods(area: str) -> tuple[AreaPeriod, ...]:
    """The names a six-digit division code has had, from python-stdnum's table (cn/loc).

    Read from the table itself: stdnum's ``get_birth_place`` raises KeyError for a code whose
    province is listed but whose county is not (e.g. '658571'). Empty: not a known code.
    """
    if not re.fullmatch(r"\d{6}", area):
        return ()
    parts = _numdb.get("cn/loc").info(area)
    if "".join(part for part, _ in parts) != area:
        return ()
    county = next((props["county"] for _, props in reversed(parts) if props.get("county")), "")
    periods = []
    for item in filter(None, county.split(",")):
        m = re.fullmatch(r"\[(\d*)-(\d*)\](.+)", item)
        if m is None:
            periods.append(AreaPeriod(item, None, None))
        else:
            start, end, name = m.groups()
            periods.append(AreaPeriod(name, int(start) if start else None,
                                      int(end) if end else None))
    return tuple(periods)


def area_known(area: str, year: int | None = None) -> bool:
    """Is ``area`` a division code in the table (in ``year``, if given)?

    An ID number's area code is where the card was first issued, which can be years after
    the birth date it carries: validation asks whether the code existed at any time.
    """
    periods = area_periods(area)
    return any(year is None or p.covers(year) for p in periods)


def min_member_age() -> int:
    """The youngest a member may be: env CIVICVOUCHER_MIN_MEMBER_AGE, default 16."""
    raw = os.environ.get(MIN_AGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MIN_MEMBER_AGE
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= MAX_MEMBER_AGE:
        raise ValueError(f"{MIN_AGE_ENV} must be a whole number of years from 0 to "
                         f"{MAX_MEMBER_AGE}, got {raw!r}")
    return int(raw)


def local_today() -> date:
    """Today in the deployment's zone (CIVICVOUCHER_TIMEZONE, default Asia/Shanghai)."""
    return clock.local_date(clock.now())


def age_on(born: date, today: date) -> int:
    """Whole years from ``born`` to ``today`` (someone born on 29 February turns a year older
    on 1 March in common years)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def id_number_problem(value: str, *, min_age: int | None = None,
                      today: date | None = None) -> Msg | None:
    """Why ``value`` is not a valid 18-character resident ID number of a possible member
    (between ``min_age``, default :func:`min_member_age`, and 120 years old on ``today``,
    default the local date), or None if it is."""
    number = normalise_id_number(value)
    if _SCIENTIFIC.fullmatch(number):
        shown = value if sum(c.isdigit() for c in value) < 15 else _mask(value, head=3, tail=4)
        return msg("Excel stored the ID number as a number and dropped digits ({value}); format"
                   " the column as Text and type the numbers again", value=shown)
    if re.fullmatch(r"\d{15}", number):
        return msg("old 15-digit ID number; give the 18-digit number from the current ID card")
    if len(number) != 18:
        return msg("ID-card number must be 18 characters, got {n}", n=len(number))
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return msg("ID-card number must be 17 digits followed by a digit or X")
    if number[-1] != _ric.calc_check_digit(number):
        if number.endswith("000"):
            return msg("ID-card number checksum is wrong (if the column was a number in Excel,"
                       " its last digits were lost)")
        return msg("ID-card number checksum is wrong")
    try:  # stdnum's get_birth_date, without its slow re-cleaning of the number
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return msg("birth date {date} in the ID-card number is not a real date",
                   date=number[6:14])
    today = today or local_today()
    min_age = min_member_age() if min_age is None else min_age
    if born > today:
        return msg("birth date {date} in the ID-card number is in the future",
                   date=born.isoformat())
    age = age_on(born, today)
    if age < min_age:
        return msg("a member must be at least {age} years old; born {date}", age=min_age,
                   date=born.isoformat())
    if age > MAX_MEMBER_AGE:
        return msg("born {date}: older than {age} years; check the birth year",
                   date=born.isoformat(), age=MAX_MEMBER_AGE)
    if not area_known(number[:6]):
        return msg("area code {area} in the ID-card number is not a known county",
                   area=number[:6])
    return None


def normalise_phone(text: str) -> str:
    """Digits only, with a leading +86 / 0086 / 86 country code removed."""
    digits = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", text))
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def parse_status(text: str) -> MemberStatus | None:
    """在职/正常/停用/离会/退会 or the English value → MemberStatus; empty → active."""
    t = text.strip().lower()
    return MemberStatus.ACTIVE if not t else _STATUS_WORDS.get(t)


def validate_member_row(row_no: int, row: dict[str, str], *, min_age: int | None = None,
                        today: date | None = None) -> MemberRow | list[RowError]:
    """Check one member row; returns the normalised row or every problem found in it."""
    errors: list[RowError] = []

    name = row.get("name", "").strip()
    if not name:
        errors.append(RowError(row_no, "name", N_("the member's name is required")))
    elif len(name) > NAME_MAX:
        errors.append(RowError(row_no, "name", msg("the member's name is longer than {max}"
                                                   " characters", max=NAME_MAX)))

    raw_id = row.get("id_number", "").strip()
    id_number = normalise_id_number(raw_id)
    if not raw_id:
        errors.append(RowError(row_no, "id_number", N_("ID-card number is required")))
    elif problem := id_number_problem(raw_id, min_age=min_age, today=today):
        errors.append(RowError(row_no, "id_number", problem))

    phone = normalise_phone(row.get("phone", "").strip()) or None
    if phone is not None and not _MOBILE.fullmatch(phone):
        errors.append(
            RowError(row_no, "phone", msg("{phone!r} is not a mainland mobile number"
                                          " (11 digits, 1…)", phone=phone))
        )

    union = normalise_code(row.get("union", ""))
    if not union:
        errors.append(
            RowError(row_no, "union", N_("union is required: its unified social credit code"))
        )
    elif problem := uscc_problem(union):
        errors.append(RowError(row_no, "union", problem))

    raw_status = row.get("status", "")
    status = parse_status(raw_status)
    if status is None:
        errors.append(
            RowError(
                row_no,
                "status",
                msg("unknown status {value!r}; use 在职, 停用, 离会 or 调出"
                    " (active, suspended, left, transferred)", value=raw_status.strip()),
            )
        )

    if errors or status is None:
        return errors
    return MemberRow(name=name, id_number=id_number, phone=phone, union=union, status=status,
                     status_given=bool(raw_status.strip()))


def _member_unique_keys(row: dict[str, str]) -> list[tuple[str, str, str]]:
    number = normalise_id_number(row.get("id_number", ""))
    if re.fullmatch(r"\d{17}[\dX]", number) and number[-1] == _ric.calc_check_digit(number):
        return [("id_number", N_("ID number"), number)]
    return []


def validate_member_rows(
    table: Table, *, min_age: int | None = None, today: date | None = None
) -> tuple[list[tuple[int, MemberRow]], list[RowError]]:
    """Validate a whole member file; the same ID number twice is an error on the later row."""
    min_age = min_member_age() if min_age is None else min_age
    return validate_rows(
        table,
        validate_row=partial(validate_member_row, min_age=min_age, today=today or local_today()),
        required=("name", "id_number", "union"),
        aliases=MEMBER_ALIASES,
        unique_keys=_member_unique_keys,
    )


def hash_id_number(id_number: str, *, key: bytes) -> str:
    """HMAC-SHA256 hex of the normalised ID number; keyed, since IDs are easy to enumerate."""
    if not key:
        raise ValueError("hash_id_number needs a non-empty secret key")
    number = normalise_id_number(id_number)
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


def _mask(text: str, *, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return "*" * len(text)
    return text[:head] + "*" * (len(text) - head - tail) + text[-tail:]


def mask_cell(text: str) -> str:
    """An ID-number cell as a file that leaves the system may show it, whatever it holds
    (valid or not): first 3 and last 4 kept; a short cell is starred whole."""
    t = str(text).strip()
    return t[:3] + "*" * (len(t) - 7) + t[-4:] if len(t) > 7 else "*" * len(t)


def mask_id_number(id_number: str) -> str:
    """'110101199003071234' → '110***********1234': first 3 and last 4 kept, same length."""
    return _mask(normalise_id_number(id_number), head=3, tail=4)


def mask_phone(phone: str) -> str:
    """'13812345678' → '138****5678': first 3 and last 4 kept, same length."""
    return _mask(normalise_phone(phone), head=3, tail=4)
