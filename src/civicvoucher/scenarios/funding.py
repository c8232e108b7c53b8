"""The funding model: what each union holds when it comes to issue, and the form it picks.

Pure: given the unions' plans and the scenario, decide per union whether it can fund all its
members ("funded"), otherwise what fraction of its need it holds and whether it asks the
engine to issue as far as the money goes; then which unions that can issue choose digital.
The engine, not this module, decides what actually gets issued.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from civicvoucher.scenarios.population import UnionPlan


@dataclass(frozen=True)
class UnionFunding:
    funded: bool
    fund_ratio: float  # deposit / need (need = members x voucher + opted-in cards)
    partial_mode: bool
    tourism_cards: int
    form: str = "paper"


def funded_share(scn: dict, plan: UnionPlan, guarantee: dict[str, float]) -> float:
    cfg = scn["funding"][plan.level]
    if plan.unit_type == "enterprise":
        return cfg["enterprise"]
    if plan.level == "county":
        return min(1.0, cfg["administrative_per_guarantee"] * guarantee[plan.parent_code])
    return cfg["administrative"]


def _pick_share(items: list[tuple[int, float]], share: float) -> set[int]:
    """Walk items (id, weight) in the given order, taking each while the running total stays
    nearest ``share`` of the whole: hits a share of members exactly, up to one union."""
    total = sum(w for _, w in items)
    target, got, chosen = share * total, 0.0, set()
    for i, w in items:
        if got + w / 2 <= target:
            chosen.add(i)
            got += w
    return chosen


def plan_funding(scn: dict, unions: list[UnionPlan], *, rng: random.Random
                 ) -> dict[int, UnionFunding]:
    guarantee = {c["code"]: c["guarantee"] for c in scn["counties"]}
    cells: dict[tuple, list[UnionPlan]] = defaultdict(list)
    for u in unions:
        cells[(u.level, u.unit_type, u.parent_code if u.level == "county" else "")].append(u)
    funded: set[int] = set()
    for members in cells.values():
        order = members[:]
        rng.shuffle(order)
        funded |= _pick_share([(u.index, u.size) for u in order],
                              funded_share(scn, order[0], guarantee))

    lo, hi = scn["funding"]["short_range"]
    partial_share = scn["funding"]["partial_mode_share"]
    ratio = {u.index: 1.0 + rng.uniform(0.0, 0.2) if u.index in funded else rng.uniform(lo, hi)
             for u in unions}
    partial = {u.index for u in unions if u.index not in funded and rng.random() < partial_share}

    # Tourism cards: members of funded unions opt in; the total is the scenario's share of
    # those members, spread over unions by largest remainder so it does not wobble by seed.
    opt_in = scn["tourism"]["opt_in_share"]
    eligible = [u for u in unions if u.index in funded]
    exact = {u.index: u.size * opt_in for u in eligible}
    cards = {i: int(v) for i, v in exact.items()}
    want = round(sum(exact.values()))
    for i in sorted(exact, key=lambda i: (exact[i] - cards[i], -i), reverse=True)[
            : want - sum(cards.values())]:
        cards[i] += 1

    # Forms: among unions that will issue (all funded ones, and partial ones by what they
    # can pay for), digital goes to unions in random order until the level's share of value.
    forms: dict[int, str] = {}
    for level in ("province", "city", "county"):
        issuing = [(u.index, u.size * (1.0 if u.index in funded else ratio[u.index]))
                   for u in unions if u.level == level and (u.index in funded or u.index in partial)]
        rng.shuffle(issuing)
        digital = _pick_share(issuing, scn["forms"]["digital_share"][level])
        forms.update({i: "digital" if i in digital else "paper" for i, _ in issuing})

    return {
        u.index: UnionFunding(funded=u.index in funded, fund_ratio=ratio[u.index],
                              partial_mode=u.index in partial, tourism_cards=cards.get(u.index, 0),
                              form=forms.get(u.index, "paper"))
        for u in unions
    }
