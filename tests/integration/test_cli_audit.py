"""Every money command of the CLI is audited with its actor, once per key, like the API."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from tests.world import T0, build_world, run_cli


def _actions(db) -> Counter:
    with db.session() as s:
        return Counter((a, actor) for a, actor in s.execute(
            select(AuditEntry.action, AuditEntry.actor)))


def test_money_commands_are_audited_once_per_key(db, monkeypatch):
    from civicvoucher.core import clock

    w = build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)  # the world's program runs in 2020
    for _ in range(2):  # the retry replays and adds no entry
        r = run_cli(db, monkeypatch, "fund", "deposit", str(w.union_a), "1000", "--key", "d1")
        assert r.exit_code == 0, r.output
        r = run_cli(db, monkeypatch, "issue", str(w.union_a), w.program, "--key", "i1")
        assert r.exit_code == 0, r.output
    r = run_cli(db, monkeypatch, "settle", "--key", "s1")
    assert r.exit_code == 0, r.output
    got = {a: n for (a, actor), n in _actions(db).items() if actor.startswith("cli:")}
    assert got == {"fund.deposit": 1, "issuance.create": 1, "settlement.run": 1}
    r = run_cli(db, monkeypatch, "audit", "verify")
    assert r.exit_code == 0, r.output


def test_merchant_status_from_the_cli_is_audited(db, monkeypatch):
    w = build_world(db)
    shop = next(iter(w.merchants.values()))
    r = run_cli(db, monkeypatch, "merchant", "status", str(shop), "suspended")
    assert r.exit_code == 0, r.output
    with db.session() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.actor,
                                AuditEntry.detail)
                         .where(AuditEntry.action == "merchant.status")).all()
    assert [(a, t, actor.startswith("cli:"), d["to"]) for a, t, actor, d in rows] == [
        ("merchant.status", f"merchant:{shop}", True, "suspended")]


def test_lookups_by_id_take_only_ascii_digits_in_range(db):
    """'²³' passes str.isdigit() and then broke int(); 2^63 broke PostgreSQL's integer."""
    import pytest

    from civicvoucher.errors import NotFound
    from civicvoucher.merchants.service import find_merchant
    from civicvoucher.orgs.service import find_org
    from civicvoucher.programs.service import get_program

    build_world(db)
    with db.session() as s:
        for ref in ("²³", "١٢٣", str(2**63)):
            for find in (find_merchant, find_org, get_program):
                with pytest.raises(NotFound):
                    find(s, ref)
