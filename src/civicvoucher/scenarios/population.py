"""Synthetic people, unions and merchants for a scenario: seeded, so a seed is a dataset.

Everything here is pure (no database): the simulator turns these plans into rows through
the registries' services.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from faker.providers.person.zh_CN import Provider as NameProvider
from stdnum.cn import uscc

from civicvoucher.members.rules import MemberRow, MemberStatus, area_known
from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
from civicvoucher.scenarios.sampling import carry_pick

ADMIN_UNITS = ["教育局", "卫生健康委员会", "财政局", "人民医院", "第一中学", "第二小学", "税务局",
               "自然资源局", "公安局", "人民法院", "农业农村局", "市场监管局", "住建局", "职业学院"]
ENTERPRISES = ["煤业有限公司", "商贸有限公司", "建设集团有限公司", "食品有限公司", "运输有限公司",
               "钢铁有限公司", "能源有限公司", "化工有限公司", "机械制造有限公司", "文化旅游有限公司"]
SHOP_WORDS = {"daily_goods": "百货", "grain_produce": "粮油果蔬店", "supermarket_fuel": "超市",
              "hotel_dining": "饭店", "other": "药房"}
_SURNAMES = list(NameProvider.last_names.keys()) if isinstance(
    NameProvider.last_names, dict) else list(NameProvider.last_names)
_GIVEN = list(NameProvider.first_names.keys()) if isinstance(
    NameProvider.first_names, dict) else list(NameProvider.first_names)


@dataclass(frozen=True)
class UnionPlan:
    index: int
    level: str  # the level of its federation: province, city, county
    parent_code: str  # division code of the federation it reports to
    home_county: str  # where its members live (ID area code, spending)
    unit_type: str  # administrative | enterprise
    size: int
    name: str
    uscc: str


def _uscc(kind: str, area: str, n: int) -> str:
    body = f"{kind}{area}{n:09d}"
    return body + uscc.calc_check_digit(body)


def _sizes(total: int, rng: random.Random, cfg: dict) -> list[int]:
    """Union sizes drawn log-normal until they add up to ``total`` exactly."""
    mu, sigma = math.log(cfg["median_size"]), cfg["sigma"]
    sizes, left = [], total
    while left > 0:
        s = int(min(max(rng.lognormvariate(mu, sigma), cfg["min_size"]), cfg["max_size"]))
        s = min(s, left)
        if 0 < left - s < cfg["min_size"]:
            s = left
        sizes.append(s)
        left -= s
    return sizes


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integers proportional to weights that add up to ``total`` (largest remainder)."""
    wsum = sum(weights.values())
    exact = {k: total * w / wsum for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def plan_unions(scn: dict, *, scale: float, rng: random.Random) -> list[UnionPlan]:
    """Grassroots unions for every level, sized and typed as the scenario says."""
    counties = scn["counties"]
    pop = {c["code"]: c["population"] for c in counties}
    city_pop: dict[str, float] = {}
    for c in counties:
        city_pop[c["city"]] = city_pop.get(c["city"], 0) + c["population"]
    capital = scn["cities"][0]["code"]
    capital_counties = [c["code"] for c in counties if c["city"] == capital]
    by_city = {city: [c["code"] for c in counties if c["city"] == city] for city in city_pop}
    plans: list[UnionPlan] = []
    for level in ("province", "city", "county"):
        total = round(scn["members"][level] * scale)
        if level == "province":
            homes = {scn["scenario"]["province_code"]: total}
        elif level == "city":
            homes = _split(total, city_pop)
        else:
            homes = _split(total, pop)
        admin_share = scn["members"]["administrative_share"][level]
        drafts = []
        for parent, members in homes.items():
            sizes = _sizes(members, rng, scn["unions"]) if members else []
            rng.shuffle(sizes)
            drafts += [(parent, s) for s in sizes]
        admin = carry_pick([(i, s, admin_share) for i, (_, s) in enumerate(drafts)])
        for i, (parent, s) in enumerate(drafts):
            if level == "province":
                home = rng.choice(capital_counties)
            elif level == "city":
                home = rng.choice(by_city[parent])
            else:
                home = parent
            n = len(plans) + 1
            word = rng.choice(ADMIN_UNITS if i in admin else ENTERPRISES)
            plans.append(UnionPlan(
                index=n, level=level, parent_code=parent, home_county=home,
                unit_type="administrative" if i in admin else "enterprise", size=s,
                name=f"{'山西' if level == 'province' else ''}{word}{n}工会",
                uscc=_uscc("81", home, n),
            ))
    return plans


_BIRTHDAYS = [f"{date(1962, 1, 1) + timedelta(days=d):%Y%m%d}" for d in range(365 * 40)]
_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # ISO 7064 MOD 11-2, as GB 11643 says


def _weighted(digits: str, offset: int) -> int:
    return sum(int(c) * w for c, w in zip(digits, _WEIGHTS[offset:], strict=False))


def ric_check(body: str) -> str:
    """The check character of an 18-digit resident ID (same result as stdnum's cn.ric)."""
    return "10X98765432"[_weighted(body, 0) % 11]


_SEQ = [(f"{n:03d}", _weighted(f"{n:03d}", 14)) for n in range(1000)]
_BORN = [(b, int(b[:4]), _weighted(b, 6)) for b in _BIRTHDAYS]


@cache
def _first_valid_year(code: str) -> int:
    """First birth year for which the registry accepts ``code`` (binary search: a present-day
    code, once valid, stays valid). 9999 if never."""
    years = [int(b[:4]) for b in _BIRTHDAYS[:: 365]]
    lo, hi = years[0], years[-1] + 1
    if not area_known(code, hi - 1):
        return 9999
    while lo < hi:
        mid = (lo + hi) // 2
        if area_known(code, mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class People:
    """Real-looking, valid, never-repeating ID numbers and names from a seeded generator."""

    def __init__(self, rng: random.Random, province_code: str = "140000") -> None:
        self.rng = rng
        self.seen: set[str] = set()
        self.province = province_code
        self.where: dict[tuple[str, int], tuple[str, int]] = {}

    def _birthplace(self, area: str, year: int) -> tuple[str, int]:
        """The code the birthplace had in ``year``: where the county's present code is younger
        than the person, the city's (or the capital's) code stands in, as the registry's
        validator expects."""
        key = (area, year)
        if key not in self.where:
            capital = self.province[:2] + "0100"
            for code in (area, area[:4] + "00", capital):
                if year >= _first_valid_year(code):
                    break
            self.where[key] = (code, _weighted(code, 0))
        return self.where[key]

    def id_number(self, area: str) -> str:
        """A new valid ID number for someone living in ``area``."""
        rng = self.rng
        while True:
            born, year, wb = _BORN[rng.randrange(len(_BORN))]
            seq, ws = _SEQ[rng.randrange(1000)]
            where, wa = self._birthplace(area, year)
            number = f"{where}{born}{seq}{'10X98765432'[(wa + wb + ws) % 11]}"
            if number not in self.seen:
                self.seen.add(number)
                return number

    def members(self, union: UnionPlan) -> list[MemberRow]:
        rng = self.rng
        return [
            MemberRow(
                name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                id_number=self.id_number(union.home_county),
                phone=f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
                union=union.uscc, status=MemberStatus.ACTIVE,
            )
            for _ in range(union.size)
        ]


def plan_merchants(scn: dict, *, scale: float, rng: random.Random) -> list[MerchantRow]:
    cfg = scn["merchants"]
    cats = list(cfg["category_mix"])
    weights = [cfg["category_mix"][c] for c in cats]
    out: list[MerchantRow] = []
    for county in scn["counties"]:
        n = max(cfg["min_per_county"], round(county["population"] * cfg["per_million_people"] * scale))
        chosen = cats[:] + rng.choices(cats, weights, k=max(0, n - len(cats)))
        for cat in chosen:
            mcc = rng.choice(cfg["mcc"][cat])
            channels = tuple(Channel(ch) for ch, share in cfg["channels"].items()
                             if ch == "offline" or rng.random() < share)
            i = len(out) + 1
            out.append(MerchantRow(
                uscc=_uscc("92", county["code"], i), name=f"{county['name']}{SHOP_WORDS[cat]}{i}号",
                mcc=mcc, category=category_for_mcc(mcc), county_code=county["code"],
                channels=channels, status=MerchantStatus.ACTIVE,
            ))
    return out
