"""Checks on the bundled scenario data file shanxi-2020.toml (pure data, read with tomllib)."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest

REL = "scenarios/data/shanxi-2020.toml"


def _data_path() -> Path:
    try:
        import civicvoucher

        p = Path(civicvoucher.__file__).parent / REL
        if p.is_file():
            return p
    except Exception:  # package not importable yet: fall back to the source tree
        pass
    return Path(__file__).resolve().parents[2] / "src/civicvoucher" / REL


@pytest.fixture(scope="module")
def data() -> dict:
    with _data_path().open("rb") as fh:
        return tomllib.load(fh)


def guarantee_group(g: float) -> str:
    if g == 1.0:
        return "100%"
    if 0.5 <= g <= 0.99:
        return "50-99%"
    if 0.0 < g < 0.5:
        return "<50%"
    if g == 0.0:
        return "0%"
    raise AssertionError(f"guarantee {g!r} falls in no published group")


def test_scenario_header(data):
    s = data["scenario"]
    assert s["province_code"] == "140000"
    assert s["province_name"] == "山西省"
    assert s["federation_name"] == "山西省总工会"
    assert s["name"]


def test_eleven_cities(data):
    cities = data["cities"]
    assert len(cities) == 11
    names = {c["name"] for c in cities}
    assert names == {
        "太原市", "大同市", "阳泉市", "长治市", "晋城市", "朔州市",
        "晋中市", "运城市", "忻州市", "临汾市", "吕梁市",
    }
    for c in cities:
        assert c["federation_name"] == c["name"] + "总工会"
        assert c["code"].endswith("00") and not c["code"].endswith("0000")


def test_117_counties(data):
    assert len(data["counties"]) == 117


def test_codes_unique_and_well_formed(data):
    codes = [c["code"] for c in data["cities"]] + [c["code"] for c in data["counties"]]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert isinstance(code, str) and len(code) == 6 and code.isdigit(), code
        assert code.startswith("14"), code


def test_county_city_links(data):
    city_codes = {c["code"] for c in data["cities"]}
    for c in data["counties"]:
        assert c["city"] in city_codes, c
        assert c["code"][:4] == c["city"][:4], c
        assert not c["code"].endswith("00"), c


def test_county_fields(data):
    for c in data["counties"]:
        assert c["kind"] in {"district", "county", "city"}, c
        suffix = {"district": "区", "county": "县", "city": "市"}[c["kind"]]
        assert c["name"].endswith(suffix), c
        assert isinstance(c["population"], float) and c["population"] > 0, c
        assert isinstance(c["guarantee"], float) and 0.0 <= c["guarantee"] <= 1.0, c


def test_guarantee_groups_match_article(data):
    groups = Counter(guarantee_group(c["guarantee"]) for c in data["counties"])
    assert groups == {"100%": 20, "50-99%": 22, "<50%": 68, "0%": 7}


def test_counts_per_city(data):
    per_city = Counter(c["city"] for c in data["counties"])
    assert per_city == {
        "140100": 10, "140200": 10, "140300": 5, "140400": 12, "140500": 6,
        "140600": 6, "140700": 11, "140800": 13, "140900": 14, "141000": 17,
        "141100": 13,
    }


def test_post_reform_codes(data):
    """Divisions created or renamed in the 2018-2019 reforms carry their 2020 codes."""
    by_code = {c["code"]: c["name"] for c in data["counties"]}
    expected = {
        "140213": "平城区", "140214": "云冈区", "140212": "新荣区", "140215": "云州区",
        "140403": "潞州区", "140404": "上党区", "140405": "屯留区", "140406": "潞城区",
        "140681": "怀仁市", "140703": "太谷区",
    }
    for code, name in expected.items():
        assert by_code.get(code) == name, code
    # codes retired by those reforms must not appear
    for gone in ("140202", "140203", "140211", "140227", "140402", "140411",
                 "140421", "140424", "140481", "140624", "140726"):
        assert gone not in by_code, gone
