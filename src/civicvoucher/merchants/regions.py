"""Where a merchant may be: a real county (GB/T 2260) inside the deployment's map.

The map is the organisation tree: a merchant's county must lie in the region of some
federation (province 140000 covers 14xxxx, city 140100 covers 1401xx, county 140105 itself),
or in ``CIVICVOUCHER_MERCHANT_REGIONS``: division-code prefixes (e.g. ``440305,4403``) that a
deployment explicitly allows outside its tree. A county is real if python-stdnum's GB/T 2260
table has it *now* (not abolished), or if it is itself a federation's code or an allowed
6-digit code (the table can lag behind a newly created district). Pure: no database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from civicvoucher.i18n import Msg, msg

ENV_REGIONS = "CIVICVOUCHER_MERCHANT_REGIONS"
_SPAN = re.compile(r"^\[(\d*)-(\d*)\]")


@lru_cache(maxsize=1)
def _table():
    from stdnum import numdb

    return numdb.get("cn/loc")


@lru_cache(maxsize=16384)
def county_history(code: str) -> tuple[tuple[str, str, str], ...]:
    """[(first year, last year, name)] of a 6-digit code in GB/T 2260 ('' = open), oldest first;
    empty if the table never had it as a county."""
    info = _table().info(code)
    if len(info) < 2 or not info[-1][1].get("county"):
        return ()
    out = []
    for item in info[-1][1]["county"].split(","):
        m = _SPAN.match(item)
        out.append((m.group(1), m.group(2), item[m.end():]) if m else ("", "", item))
    return tuple(out)


def province_name(code: str) -> str:
    info = _table().info(code[:2])
    return info[0][1].get("province", "") if info else ""


def current_county(code: str) -> str | None:
    """The county's name today, or None if the code is unknown or was abolished."""
    for _first, last, name in reversed(county_history(code)):
        if not last:
            return name
    return None


def county_problem(code: str) -> Msg | None:
    """Why ``code`` is not a county-level division that exists today, or None."""
    if code.endswith("00"):
        return msg("{code} is a province or city code; give the county's (6 digits, not"
                   " ending in 00)", code=code)
    if current_county(code) is not None:
        return None
    history = county_history(code)
    if history:
        _first, last, name = history[-1]
        return msg("{code} ({name}) was abolished in {year}; use its current code", code=code,
                   name=name, year=last)
    return msg("{code} is not a county in GB/T 2260", code=code)


def region_of_code(division_code: str) -> str:
    """A federation's region as a code prefix: 140000 → '14', 140100 → '1401', 140105 → itself."""
    prefix = division_code
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


def allowed_regions(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The prefixes in CIVICVOUCHER_MERCHANT_REGIONS (2, 4 or 6 digits, comma-separated)."""
    from civicvoucher.errors import ValidationError

    raw = (os.environ if env is None else env).get(ENV_REGIONS, "")
    out = set()
    for word in re.split(r"[,，;\s]+", raw.strip()):
        if not word:
            continue
        if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", word):
            raise ValidationError(msg("{var}: {word!r} is not a 2-, 4- or 6-digit division-code"
                                      " prefix", var=ENV_REGIONS, word=word), field=ENV_REGIONS)
        out.add(region_of_code(word) if len(word) == 6 else word)
    return frozenset(out)


def _covers(prefixes: frozenset[str], code: str) -> bool:
    return code[:2] in prefixes or code[:4] in prefixes or code in prefixes


@dataclass(frozen=True)
class MerchantMap:
    """The regions a deployment's merchants may be in."""

    federations: frozenset[str]  # federation division codes (6 digits)
    allowed: frozenset[str]  # explicitly allowed prefixes

    @classmethod
    def of(cls, federation_codes: Iterable[str],
           env: Mapping[str, str] | None = None) -> MerchantMap:
        return cls(frozenset(c for c in federation_codes if c), allowed_regions(env))

    @cached_property
    def prefixes(self) -> frozenset[str]:
        return frozenset(region_of_code(c) for c in self.federations)

    def problem(self, county: str) -> Msg | None:
        """Why a merchant cannot be in ``county``, or None."""
        declared = county in self.federations or county in self.allowed
        if not declared and (problem := county_problem(county)):
            return problem
        if _covers(self.prefixes, county) or _covers(self.allowed, county):
            return None
        where = current_county(county) or ""
        return msg("{county} ({name}) is outside the organisation tree: no federation covers"
                   " it; list it in {var} to allow it", county=county,
                   name=province_name(county) + where, var=ENV_REGIONS)
