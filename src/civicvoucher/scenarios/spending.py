"""Spending: which vouchers get spent, when, where and for how much. Pure and seeded."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar


@dataclass(frozen=True)
class Spend:
    day: date
    voucher_code: str
    merchant_id: int
    order_amount_fen: int


@dataclass(frozen=True)
class MerchantInfo:
    id: int
    county: str
    category: str


class SpendingModel:
    """Turns the scenario's [spending] and [merchants] sections into individual spends."""

    def __init__(self, scn: dict, merchants: list[MerchantInfo], rng: random.Random,
                 window: tuple[date, date], extension: tuple[date, date]) -> None:
        self.cfg, self.rng = scn["spending"], rng
        self.city_of = {c["code"]: c["city"] for c in scn["counties"]}
        self.counties_of_city: dict[str, list[str]] = {}
        for c in scn["counties"]:
            self.counties_of_city.setdefault(c["city"], []).append(c["code"])
        mix = scn["merchants"]["category_mix"]
        self.categories, self.cat_weights = list(mix), list(itertools.accumulate(mix.values()))
        factor = self.cfg["category_factor"]
        norm = sum(mix[c] * factor[c] for c in mix) / sum(mix.values())
        self.extra_mean = {c: self.cfg["extra_mean"] * factor[c] / norm for c in mix}
        # merchants by (county, category), popularity falling by rank (Zipf)
        a = scn["merchants"]["popularity_exponent"]
        self.shops: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.any_shop: dict[str, tuple[list[int], list[float]]] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for m in merchants:
            groups.setdefault((m.county, m.category), []).append(m.id)
            groups.setdefault((m.county, "*"), []).append(m.id)
        for key, ids in groups.items():
            weights = list(itertools.accumulate(1 / (r + 1) ** a for r in range(len(ids))))
            (self.any_shop if key[1] == "*" else self.shops)[key if key[1] != "*" else key[0]] = (
                ids, weights)
        self.main_days, self.main_cum = self._day_weights(*window)
        self.late_days, self.late_cum = self._day_weights(*extension)

    def _day_weights(self, first: date, last: date) -> tuple[list[date], list[float]]:
        days = [first + timedelta(d) for d in range((last - first).days + 1)]
        weights = []
        for i, d in enumerate(days):
            on_holiday, name = chinese_calendar.get_holiday_detail(d)
            mult = (self.cfg["holiday_weight"] if on_holiday and name is not None
                    else self.cfg["weekend_weight"] if on_holiday else 1.0)
            weights.append((0.25 + math.exp(-i / self.cfg["decay_days"])) * mult)
        return days, list(itertools.accumulate(weights))

    def _pick(self, table: tuple[list, list[float]]):
        items, cum = table
        return items[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def spend(self, *, code: str, amount_fen: int, form: str, home: str,
              extended: bool) -> Spend | None:
        """One voucher's fate: None (never spent: breakage) or the spend."""
        rng, cfg = self.rng, self.cfg
        if rng.random() >= cfg["redeemed_share"][form]:
            return None
        if extended and rng.random() < cfg["after_deadline_share"]:
            day = self._pick((self.late_days, self.late_cum))
        else:
            day = self._pick((self.main_days, self.main_cum))
        county = home
        if rng.random() >= cfg["home_county_share"]:
            county = rng.choice(self.counties_of_city[self.city_of.get(home, home)])
        category = self.categories[bisect.bisect_right(
            self.cat_weights, rng.random() * self.cat_weights[-1])]
        table = self.shops.get((county, category)) or self.any_shop[county]
        shape = cfg["extra_shape"]
        extra = rng.gammavariate(shape, self.extra_mean[category] / shape)
        return Spend(day, code, self._pick(table), amount_fen + round(amount_fen * extra))
