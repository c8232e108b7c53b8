"""The funding model: what each union holds when it comes to issue, and the form it picks.

Pure: given the unions' plans and the scenario, decide per union whether it can fund all its
members ("funded"), otherwise what fraction of its need it holds and whether it asks the
engine to issue as far as the money goes; then which unions that can issue choose digital.
The engine, not this module, decides what actually gets issued.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from civicvoucher.scenarios.population import UnionPlan
from civicvoucher.scenarios.sampling import carry_pick, fill


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


def plan_funding(scn: dict, unions: list[UnionPlan], *, rng: random.Random
                 ) -> dict[int, UnionFunding]:
    guarantee = {c["code"]: c["guarantee"] for c in scn["counties"]}
    order = unions[:]
    rng.shuffle(order)
    order.sort(key=lambda u: (u.level, u.unit_type, u.parent_code))  # stable: random within
    funded = carry_pick([(u.index, u.size, funded_share(scn, u, guarantee)) for u in order])

    lo, hi = scn["funding"]["short_range"]
    partial_share = scn["funding"]["partial_mode_share"]
    ratio = {u.index: 1.0 + rng.uniform(0.0, 0.2) if u.index in funded else rng.uniform(lo, hi)
             for u in unions}
    partial = carry_pick([(u.index, u.size, partial_share) for u in order if u.index not in funded])

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
    # can pay for), digital goes to unions in random order up to each level's share of value.
    forms: dict[int, str] = {}
    for level in ("province", "city", "county"):
        issuing = [(u.index, u.size * (1.0 if u.index in funded else ratio[u.index]))
                   for u in order if u.level == level and (u.index in funded or u.index in partial)]
        share = scn["forms"]["digital_share"][level]
        digital = fill(issuing, share * sum(w for _, w in issuing))
        forms.update({i: "digital" if i in digital else "paper" for i, _ in issuing})

    return {
        u.index: UnionFunding(funded=u.index in funded, fund_ratio=ratio[u.index],
                              partial_mode=u.index in partial, tourism_cards=cards.get(u.index, 0),
                              form=forms.get(u.index, "paper"))
        for u in unions
    }
