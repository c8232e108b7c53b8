"""``civicvoucher member import --update`` (the preview, then the change), ``member change``
and ``member transfer``: each change audited with the CLI's operator."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import chain_key, verify
from civicvoucher.core.tabular import write_table
from civicvoucher.members.models import Member
from tests.integration.test_imports import HEADER, rows
from tests.world import SECRET, build_world, run_cli


@pytest.fixture
def cli(db, monkeypatch):
    return lambda *args: run_cli(db, monkeypatch, *args)


def _members(db) -> dict[str, Member]:
    with db.session() as s:
        return {m.name: m for m in s.execute(select(Member)).scalars()}


def _log(db) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())


def test_import_update_shows_the_changes_then_applies_them(db, cli, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    data = rows(w.union_uscc["A"], 3)
    path = tmp_path / "roster.csv"
    write_table(path, HEADER, data)
    first = cli("member", "import", path)
    assert first.exit_code == 0, first.output
    data[0][4] = "离会"
    data[1][2] = "13900000001"
    write_table(path, HEADER, data)

    plain = cli("member", "import", path)
    assert plain.exit_code == 0, plain.output
    assert "3 already registered" in plain.output
    assert "2 registered members differ from the file" in plain.output

    preview = cli("member", "import", path, "--update", "--dry-run",
                  "--changes-file", tmp_path / "changes.csv")
    assert preview.exit_code == 0, preview.output
    out = " ".join(preview.output.split())
    assert "row 2" in out and "status: active → left" in out
    assert "phone: 138****0001 → 139****0001" in out
    assert "dry run: nothing was written" in out
    assert "13900000001" not in preview.output
    assert "139****0001" in (tmp_path / "changes.csv").read_text(encoding="utf-8-sig")
    assert _members(db)["会员0"].status == "active"

    done = cli("member", "import", path, "--update")
    assert done.exit_code == 0, done.output
    assert "changes applied (2 members)" in done.output and "2 updated" in done.output
    m = _members(db)
    assert (m["会员0"].status, m["会员1"].phone_masked) == ("left", "139****0001")
    updates = [e for e in _log(db) if e.action == "member.update"]
    assert len(updates) == 2 and all(e.actor.startswith("cli:") for e in updates)
    assert [e.action for e in _log(db)].count("member.import") == 3  # not the dry run
    with db.session() as s:
        assert verify(s, key=chain_key(SECRET))[1] == []


def test_change_and_transfer_one_member(db, cli):
    w = build_world(db)  # A: 成员1-3, B: 成员4-5, C: 成员6-7
    from tests.world import make_id

    left = cli("member", "change", make_id(2), "--status", "离会", "--reason", "辞职")
    assert left.exit_code == 0, left.output
    assert "status: active → left" in " ".join(left.output.split())
    phone = cli("member", "change", str(_members(db)["成员3"].id), "--phone", "13912345678")
    assert phone.exit_code == 0 and "139****5678" in phone.output
    bad = cli("member", "change", make_id(2), "--status", "停用")
    assert getattr(bad.exception, "code", None) == "invalid_transition"  # main.run: exit 2

    moved = cli("member", "transfer", make_id(1), "--to", w.union_uscc["C"], "--reason", "调动")
    assert moved.exit_code == 0, moved.output
    assert "transferred to union C" in moved.output
    m = {(x.name, x.union_id): x for x in _members_rows(db)}
    old, new = m[("成员1", w.union_a)], m[("成员1", w.union_c)]
    assert (old.status, old.transferred_to_id, new.status) == ("transferred", new.id, "active")
    assert (m[("成员2", w.union_a)].status, m[("成员2", w.union_a)].status_reason) == (
        "left", "辞职")
    # the person now has rows in two unions: the ID number alone is ambiguous
    ambiguous = cli("member", "change", make_id(1), "--status", "停用")
    assert "--union" in str(ambiguous.exception)
    ok = cli("member", "change", make_id(1), "--union", w.union_uscc["C"], "--status", "停用")
    assert ok.exit_code == 0, ok.output
    actions = [(e.action, e.actor.startswith("cli:")) for e in _log(db)]
    assert actions == [("member.update", True), ("member.update", True),
                       ("member.transfer", True), ("member.update", True)]
    missing = cli("member", "change", "999999", "--status", "left")
    assert getattr(missing.exception, "code", None) == "member_not_found"


def _members_rows(db) -> list[Member]:
    with db.session() as s:
        return list(s.execute(select(Member)).scalars())
