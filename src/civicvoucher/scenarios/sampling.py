"""Seeded selection helpers shared by the population and funding models."""

from __future__ import annotations


def carry_pick(items: list[tuple[int, float, float]]) -> set[int]:
    """Systematic selection over (id, weight, share): walk the items, raising the running
    target by share x weight each, and take an item while the taken weight stays nearest the
    target. Totals land on sum(share x weight) to within half an item, even where each group
    (a county, a city) holds only a union or two, and each group gets its share on average."""
    target, got, chosen = 0.0, 0.0, set()
    for i, w, share in items:
        target += share * w
        if got + w / 2 <= target:
            chosen.add(i)
            got += w
    return chosen


def fill(items: list[tuple[int, float]], target: float) -> set[int]:
    """Take (id, weight) items in the given order while they fit under ``target``, then the
    one left-out item that brings the total nearest it, if any does: the total lands as close
    as the small unions allow, for figures that must land closely (a level's digital share)."""
    got, chosen = 0.0, set()
    for i, w in items:
        if got + w <= target:
            chosen.add(i)
            got += w
    best = min(((abs(got + w - target), i) for i, w in items if i not in chosen), default=None)
    if best is not None and best[0] < target - got:
        chosen.add(best[1])
    return chosen
