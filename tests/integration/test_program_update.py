"""A program file edited before launch: `program update` changes it (audited); after the first
issuance it is refused (`program_launched`), and nothing changes."""

from __future__ import annotations

from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.programs.models import Product
from civicvoucher.programs.service import get_program
from tests.world import build_world, fund, run_cli


def _denominations(db, key: str) -> list:
    with db.session() as s:
        prog = get_program(s, key)
        return [list(p.denominations) for p in
                s.execute(select(Product).where(Product.program_id == prog.id)).scalars()]


def _updates(db) -> int:
    with db.session() as s:
        return len(s.execute(select(AuditEntry.seq)
                             .where(AuditEntry.action == "program.update")).all())


def test_a_program_changes_until_its_first_issuance(db, monkeypatch, tmp_path):
    w = build_world(db)
    f = tmp_path / "program.toml"
    assert run_cli(db, monkeypatch, "program", "template", str(f), "--key", "edit-me").exit_code == 0
    assert run_cli(db, monkeypatch, "program", "create", str(f)).exit_code == 0
    f.write_text(f.read_text(encoding="utf-8").replace("denominations_yuan = [100, 100, 100]",
                                                       "denominations_yuan = [50, 50]"),
                 encoding="utf-8")
    again = run_cli(db, monkeypatch, "program", "create", str(f))  # create is not update
    assert getattr(again.exception, "code", None) == "idempotency_key_reused"
    r = run_cli(db, monkeypatch, "program", "update", str(f))
    assert r.exit_code == 0, (r.output, r.exception)
    assert _denominations(db, "edit-me") == [[5000, 5000]] and _updates(db) == 1
    r = run_cli(db, monkeypatch, "program", "update", str(f))  # the same file: nothing new
    assert r.exit_code == 0 and "unchanged" in r.output and _updates(db) == 1

    fund(w, w.union_a, 10_000)
    assert run_cli(db, monkeypatch, "issue", str(w.union_a), "edit-me").exit_code == 0
    f.write_text(f.read_text(encoding="utf-8").replace("[50, 50]", "[200]"), encoding="utf-8")
    late = run_cli(db, monkeypatch, "program", "update", str(f))
    assert getattr(late.exception, "code", None) == "program_launched", late.output
    assert _denominations(db, "edit-me") == [[5000, 5000]] and _updates(db) == 1
