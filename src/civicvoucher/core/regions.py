"""Regions: GB/T 2260 division-code prefixes, shared by orgs, vouchers and auth.

Pure: no framework, no database. Orgs use it to check that a federation sits inside its
parent's region, vouchers to decide where one may be spent, auth to place a principal.
"""

from __future__ import annotations

from enum import StrEnum


class RegionScope(StrEnum):
    COUNTY = "county"  # the issuing union's county (or its city/province if it sits higher)
    CITY = "city"
    PROVINCE = "province"


def region_prefix(region_code: str, scope: str) -> str:
    """Division-code prefix a merchant must share: '140105' county → '140105', city → '1401'.

    A union under a city or province federation has a coarser home; its 'county' is that.
    """
    n = {RegionScope.PROVINCE: 2, RegionScope.CITY: 4, RegionScope.COUNTY: 6}[RegionScope(scope)]
    prefix = region_code[:n]
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix
