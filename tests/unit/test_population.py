"""Synthetic people pass the same validation a real roster meets."""

from __future__ import annotations

import random

from civicvoucher.members.rules import id_number_problem, with_ric_check
from civicvoucher.scenarios.model import load_scenario
from civicvoucher.scenarios.population import People, plan_unions, ric_check


def test_generated_id_numbers_are_valid_and_unique():
    scn = load_scenario()
    rng = random.Random(5)
    unions = plan_unions(scn, scale=0.001, rng=rng)
    people = People(rng)
    numbers = [m.id_number for u in unions[::7] for m in people.members(u)]
    assert len(numbers) > 500
    assert len(set(numbers)) == len(numbers)
    assert [n for n in numbers if id_number_problem(n)] == []


def test_the_fast_check_digit_agrees_with_stdnum():
    rng = random.Random(1)
    for _ in range(2000):
        body = "".join(rng.choice("0123456789") for _ in range(17))
        assert body + ric_check(body) == with_ric_check(body)
