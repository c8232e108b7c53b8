"""Organisation rows: the federation tree (province → city → county) and grassroots unions.

Only the format of each row is checked here. Whether a parent exists, and whether a city's code
shares its province's first two digits, is checked against the database by the import service.
Pure: no database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from civicvoucher.core.tabular import Table, validate_rows
from civicvoucher.errors import RowError
from civicvoucher.i18n import N_, Msg, Term, msg, terms

NAME_MAX = 200
_CODE_JUNK = re.compile(r"[\s\-]")

# First two digits of GB/T 2260 codes: provinces, autonomous regions, municipalities, SARs.
PROVINCE_PREFIXES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
})  # fmt: skip


class OrgLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    UNION = "union"  # 基层工会, a grassroots union

    @property
    def label_zh(self) -> str:
        return ORG_LEVEL_LABEL_ZH[self]

    @property
    def is_federation(self) -> bool:
        return self is not OrgLevel.UNION


class UnitType(StrEnum):
    ADMINISTRATIVE = "administrative"  # 行政事业单位: budget-funded body or public institution
    ENTERPRISE = "enterprise"

    @property
    def label_zh(self) -> str:
        return UNIT_TYPE_LABEL_ZH[self]


ORG_LEVEL_LABEL_ZH: dict[OrgLevel, str] = {
    OrgLevel.PROVINCE: "省级总工会",
    OrgLevel.CITY: "市级总工会",
    OrgLevel.COUNTY: "县级总工会",
    OrgLevel.UNION: "基层工会",
}
UNIT_TYPE_LABEL_ZH: dict[UnitType, str] = {
    UnitType.ADMINISTRATIVE: "行政事业单位",
    UnitType.ENTERPRISE: "企业",
}

ORG_ALIASES: dict[str, str] = {
    "层级": "level",
    "级别": "level",
    "名称": "name",
    "单位名称": "name",
    "工会名称": "name",
    "行政区划代码": "division_code",
    "区划代码": "division_code",
    "统一社会信用代码": "uscc",
    "信用代码": "uscc",
    "单位类型": "unit_type",
    "单位性质": "unit_type",
    "上级": "parent",
    "上级代码": "parent",
    "上级工会": "parent",
}

terms.register("org_level", ORG_LEVEL_LABEL_ZH)
terms.register("unit_type", UNIT_TYPE_LABEL_ZH)

_LEVEL_WORDS: dict[str, OrgLevel] = {
    **{w: OrgLevel.PROVINCE for w in ("省", "省级", "省总", "省总工会", "省级总工会")},
    **{w: OrgLevel.CITY for w in ("市", "市级", "地市", "市总", "市总工会", "市级总工会")},
    **{w: OrgLevel.COUNTY for w in ("县", "县级", "县区", "区县", "县总工会", "县级总工会")},
    **{w: OrgLevel.UNION for w in ("基层", "基层工会")},
    **{m.value: m for m in OrgLevel},
}
_UNIT_WORDS: dict[str, UnitType] = {
    **{
        w: UnitType.ADMINISTRATIVE
        for w in ("行政事业", "行政事业单位", "机关事业", "机关事业单位", "事业", "事业单位")
    },
    **{w: UnitType.ENTERPRISE for w in ("企业", "企业单位")},
    **{m.value: m for m in UnitType},
}


@dataclass(frozen=True)
class OrgRow:
    """One valid organisation row. Federations have a division code; unions a USCC."""

    level: OrgLevel
    name: str
    division_code: str | None
    uscc: str | None
    unit_type: UnitType | None
    parent: str | None  # division code of the parent federation; None for a province


def normalise_code(text: str) -> str:
    """Codes as typed: full-width characters folded, spaces and dashes dropped, upper case."""
    return _CODE_JUNK.sub("", unicodedata.normalize("NFKC", text)).upper()


@lru_cache(maxsize=65536)  # a member file repeats the same few union codes thousands of times
def uscc_problem(value: str) -> Msg | None:
    """Why ``value`` is not a valid unified social credit code (GB 32100), or None if it is."""
    code = normalise_code(value)
    if re.search(r"[\u4e00-\u9fff]", code):
        return msg("must be the 18-character unified social credit code, not a name")
    # python-stdnum loads pydoc and ssl on import (0.1 s): only when a code is checked
    from stdnum.cn import uscc as _uscc
    from stdnum.exceptions import InvalidChecksum, InvalidLength
    from stdnum.exceptions import ValidationError as StdnumError

    try:
        _uscc.validate(code)
    except InvalidLength:
        return msg("unified social credit code must be 18 characters, got {n}", n=len(code))
    except InvalidChecksum:
        return msg("unified social credit code check character is wrong (typo?)")
    except StdnumError:
        return msg("unified social credit code must be 8 digits then 10 digits or capital"
                  " letters (not I, O, S, V, Z)")
    return None


def division_problem(code: str) -> Msg | None:
    """Why ``code`` is not a 6-digit GB/T 2260 administrative division code, or None."""
    if not re.fullmatch(r"\d{6}", code):
        return msg("division code must be 6 digits, got {code!r}", code=code)
    if code[:2] not in PROVINCE_PREFIXES:
        return msg("division code {code} does not start with a province code (11-82)",
                   code=code)
    return None


def level_problem(code: str, level: OrgLevel) -> Msg | None:
    """Why a 6-digit ``code`` has the wrong shape for a federation at ``level``, or None."""
    if level is OrgLevel.PROVINCE and not code.endswith("0000"):
        return msg("a province code ends in 0000 (e.g. {example}), got {code}",
                   example=code[:2] + "0000", code=code)
    if level is OrgLevel.CITY and (not code.endswith("00") or code.endswith("0000")):
        return msg("a city code ends in 00 but not 0000 (e.g. {example}), got {code}",
                   example=code[:4] + "00", code=code)
    if level is OrgLevel.COUNTY and code.endswith("00"):
        return msg("a county code does not end in 00, got {code}", code=code)
    return None


def parse_level(text: str) -> OrgLevel | None:
    """省/市级/县区/基层工会/province … → OrgLevel, or None if not recognised."""
    return _LEVEL_WORDS.get(text.strip().lower())


def validate_org_row(row_no: int, row: dict[str, str]) -> OrgRow | list[RowError]:
    """Check one organisation row's format; returns the row or every problem found in it."""
    errors: list[RowError] = []

    def bad(column: str, reason: str) -> None:
        errors.append(RowError(row_no, column, reason))

    raw_level = row.get("level", "").strip()
    level = parse_level(raw_level)
    if not raw_level:
        bad("level", N_("level is required (省 / 市 / 县 / 基层工会)"))
    elif level is None:
        bad("level", msg("unknown level {value!r}; use 省, 市, 县 or 基层工会", value=raw_level))

    name = row.get("name", "").strip()
    if not name:
        bad("name", N_("name is required"))
    elif len(name) > NAME_MAX:
        bad("name", msg("name is longer than {max} characters", max=NAME_MAX))

    division = normalise_code(row.get("division_code", "")) or None
    uscc = normalise_code(row.get("uscc", "")) or None
    parent = normalise_code(row.get("parent", "")) or None
    raw_unit = row.get("unit_type", "").strip()
    unit_type = _UNIT_WORDS.get(raw_unit.lower()) if raw_unit else None

    if uscc is not None and (problem := uscc_problem(uscc)):
        bad("uscc", problem)

    if level is not None and level.is_federation:
        unit_type = None  # only grassroots unions have a unit type
        if division is None:
            bad("division_code", msg("a {level} federation needs its 6-digit division code",
                                     level=Term(level.value, "org_level")))
        elif problem := (division_problem(division) or level_problem(division, level)):
            bad("division_code", problem)
    elif level is OrgLevel.UNION:
        if uscc is None:
            bad("uscc", N_("a grassroots union needs its unified social credit code"))
        if not raw_unit:
            bad("unit_type", N_("unit type is required for a union (行政事业单位 or 企业)"))
        elif unit_type is None:
            bad("unit_type", msg("unknown unit type {value!r}; use 行政事业单位 or 企业",
                                 value=raw_unit))
        if division is not None and division != parent:
            bad(
                "division_code",
                N_("a grassroots union has no division code of its own;"
                   " put its federation's code under parent (上级)"),
            )
        division = None

    if level is OrgLevel.PROVINCE:
        if parent is not None:
            bad("parent", N_("a province federation has no parent; leave it empty"))
    elif level is not None:
        if parent is None:
            bad("parent", N_("parent (上级) is required: the parent federation's division code"))
        elif problem := division_problem(parent):
            bad("parent", problem)
        elif level is OrgLevel.CITY and not parent.endswith("0000"):
            bad("parent", msg("a city's parent must be a province code (ending 0000), got {code}",
                              code=parent))
        elif level is OrgLevel.COUNTY and not parent.endswith("00"):
            bad("parent", msg("a county's parent must be a province or city code, got {code}",
                              code=parent))

    if errors or level is None:
        return errors
    return OrgRow(
        level=level,
        name=name,
        division_code=division,
        uscc=uscc,
        unit_type=unit_type,
        parent=parent,
    )


def _org_unique_keys(row: dict[str, str]) -> list[tuple[str, str, str]]:
    keys = []
    uscc = normalise_code(row.get("uscc", ""))
    if uscc and uscc_problem(uscc) is None:
        keys.append(("uscc", N_("unified social credit code"), uscc))
    level = parse_level(row.get("level", ""))
    division = normalise_code(row.get("division_code", ""))
    if level is not None and level.is_federation and division:
        keys.append(("division_code", N_("division code"), division))
    return keys


def validate_org_rows(table: Table) -> tuple[list[tuple[int, OrgRow]], list[RowError]]:
    """Validate a whole organisation file, also catching a code listed twice."""
    return validate_rows(
        table,
        validate_row=validate_org_row,
        required=("level", "name"),
        aliases=ORG_ALIASES,
        unique_keys=_org_unique_keys,
    )
