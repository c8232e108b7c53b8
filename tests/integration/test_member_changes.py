"""Members change: re-import with --update (preview, all or nothing, audited), one member's
status or phone, transfers between unions; issuance follows (active members only, once per
person and product)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import SYSTEM, append, chain_key, verify
from civicvoucher.core.tabular import write_table
from civicvoucher.errors import Conflict, ImportRejected, InvalidTransition, ValidationError
from civicvoucher.i18n import localize
from civicvoucher.members.models import Member
from civicvoucher.members.rules import hash_id_number
from civicvoucher.members.service import (
    apply_member_changes,
    change_member,
    cross_union_duplicates,
    import_members,
    plan_member_updates,
    transfer_member,
)
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Entitlement, Voucher
from tests.integration.test_imports import HEADER, rows
from tests.world import SECRET, T0, build_world, fund

AUDIT_KEY = chain_key(SECRET)


def audit(s, action, target, detail):
    return append(s, key=AUDIT_KEY, actor=SYSTEM, action=action, target=target, detail=detail)


def entries(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.seq)).scalars())


def by_name(db) -> dict[str, Member]:
    with db.session() as s:
        return {m.name: m for m in s.execute(select(Member)).scalars()}


def roster(tmp_path, name: str, data: list[list[str]]):
    path = tmp_path / name
    write_table(path, HEADER, data)
    return path


# --- re-import ------------------------------------------------------------------------------


def _registered(db, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    data = rows(w.union_uscc["A"], 5)
    with db.session() as s:
        assert import_members(s, path=roster(tmp_path, "a.csv", data), key=SECRET).imported == 5
    changed = [r[:] for r in data]
    changed[0][4] = "离会"                      # 会员0 left
    changed[1][4] = "调出"                      # 会员1 transferred out
    changed[2][0] = "会员2改"                   # a new name
    changed[3][2] = "13900000003"               # a new phone
    changed[4][2], changed[4][4] = "", ""       # empty cells: no change
    return w, data, roster(tmp_path, "b.csv", changed)


def test_reimport_without_update_changes_nothing_but_lists_the_differences(db, tmp_path):
    _, _, path = _registered(db, tmp_path)
    before = {n: (m.status, m.phone_hash) for n, m in by_name(db).items()}
    with db.session() as s:
        res = import_members(s, path=path, key=SECRET)
    assert (res.imported, res.unchanged, res.updated) == (0, 5, 0)
    got = {(c.row, f.field, f.old, f.new) for c in res.changes for f in c.changes}
    assert got == {(2, "status", "active", "left"), (3, "status", "active", "transferred"),
                   (4, "name", "会员2", "会员2改"),
                   (5, "phone", "138****0003", "139****0003")}
    assert {n: (m.status, m.phone_hash) for n, m in by_name(db).items()} == before
    assert entries(db, "member.update") == []


def test_reimport_with_update_applies_every_change_and_audits_each(db, tmp_path):
    _, _, path = _registered(db, tmp_path)
    with db.session() as s:
        res = import_members(s, path=path, key=SECRET, update=True, audit=audit)
    assert (res.imported, res.unchanged, res.updated) == (0, 1, 4)
    m = by_name(db)
    assert (m["会员0"].status, m["会员1"].status) == ("left", "transferred")
    assert m["会员0"].status_changed_at is not None and m["会员1"].transferred_to_id is None
    assert "会员2改" in m and "会员2" not in m
    assert m["会员3"].phone_masked == "139****0003"
    assert m["会员3"].phone_hash == hash_id_number("13900000003", key=SECRET)
    assert (m["会员4"].status, m["会员4"].phone_masked) == ("active", "138****0004")
    logged = entries(db, "member.update")
    assert sorted(e.target for e in logged) == sorted(
        f"member:{m[n].id}" for n in ("会员0", "会员1", "会员2改", "会员3"))
    name_entry = next(e for e in logged if e.target == f"member:{m['会员2改'].id}")
    assert name_entry.detail["changes"] == [{"field": "name", "changed": True}]
    assert "会员2" not in str(name_entry.detail)  # names stay out of the audit log
    with db.session() as s:
        assert verify(s, key=AUDIT_KEY)[1] == []
    with db.session() as s:  # the same file again: nothing left to change
        again = import_members(s, path=path, key=SECRET, update=True, audit=audit)
    assert (again.changes, again.updated, again.unchanged) == ([], 0, 5)


def test_update_dry_run_writes_nothing(db, tmp_path):
    w, data, path = _registered(db, tmp_path)
    write_table(path, HEADER, [*[r[:] for r in data[:1]], *rows(w.union_uscc["A"], 2, start=50)])
    with db.session() as s:
        first = import_members(s, path=path, key=SECRET)
    assert first.imported == 2
    data[0][4] = "停用"
    write_table(path, HEADER, [data[0], *rows(w.union_uscc["A"], 1, start=60)])
    with db.session() as s:
        res = import_members(s, path=path, key=SECRET, update=True, dry_run=True)
    assert (res.imported, res.unchanged, len(res.changes), res.updated) == (1, 0, 1, 0)
    assert by_name(db)["会员0"].status == "active" and "会员60" not in by_name(db)


def test_a_refused_status_change_rejects_the_whole_update(db, tmp_path):
    _, data, path = _registered(db, tmp_path)
    with db.session() as s:
        import_members(s, path=path, key=SECRET, update=True, audit=audit)
    data = [r[:] for r in data]  # the first roster again (会员1 back to 在职, 会员2's old name)
    data[0][4] = "停用"          # left → suspended: not allowed
    data[3][4] = "停用"          # active → suspended: fine, but all or nothing
    write_table(path, HEADER, data)
    with pytest.raises(ImportRejected) as exc, db.session() as s:
        import_members(s, path=path, key=SECRET, update=True, audit=audit)
    assert [(e.row, e.field) for e in exc.value.errors] == [(2, "状态 (status)")]
    assert "离会" in localize(exc.value.errors[0].reason, "zh")
    m = by_name(db)
    assert (m["会员1"].status, m["会员3"].status) == ("transferred", "active")
    reject = tmp_path / "bad.csv"
    with db.session() as s:  # with a reject file the good rows go through
        res = import_members(s, path=path, key=SECRET, update=True, audit=audit,
                             reject_path=reject)
    assert res.updated == 3 and [e.row for e in res.rejected] == [2]
    m = by_name(db)
    assert (m["会员0"].status, m["会员1"].status, m["会员3"].status) == (
        "left", "active", "suspended")
    assert "会员2" in m and "2" in reject.read_text(encoding="utf-8-sig")


def test_a_member_changed_between_preview_and_apply_fails_the_transaction(db, tmp_path):
    from civicvoucher.core.tabular import read_table
    from civicvoucher.members.rules import MEMBER_ALIASES, validate_member_rows

    _, _, path = _registered(db, tmp_path)
    good, _ = validate_member_rows(read_table(path, aliases=MEMBER_ALIASES))
    with db.session() as s:
        _, changes = plan_member_updates(s, good, key=SECRET)
    with db.session() as s:  # someone else changes 会员0 in between
        s.execute(update(Member).where(Member.name == "会员0").values(status="suspended"))
    with pytest.raises(Conflict) as exc, db.session() as s:
        apply_member_changes(s, changes, audit=audit, source="import")
    assert exc.value.code == "member_changed"
    m = by_name(db)
    assert m["会员3"].phone_masked == "138****0003"  # nothing half applied
    assert entries(db, "member.update") == []


# --- one member -------------------------------------------------------------------------------


def _member(db, union_id: int, n: int = 0) -> Member:
    with db.session() as s:
        return list(s.execute(select(Member).where(Member.union_id == union_id)
                              .order_by(Member.id)).scalars())[n]


def test_change_status_and_phone_audited_and_idempotent(db):
    w = build_world(db)
    m = _member(db, w.union_a)
    with db.session() as s:
        got, change = change_member(s, m.id, key=SECRET, audit=audit, status="left",
                                    reason="退休")
        assert (got.status, got.status_reason) == ("left", "退休")
        assert [(f.field, f.old, f.new) for f in change.changes] == [("status", "active", "left")]
    with db.session() as s:
        _, again = change_member(s, m.id, key=SECRET, audit=audit, status="left")
        assert again is None
        with pytest.raises(InvalidTransition):
            change_member(s, m.id, key=SECRET, audit=audit, status="suspended")
        with pytest.raises(ValidationError):
            change_member(s, m.id, key=SECRET, audit=audit, phone="12345")
        got, change = change_member(s, m.id, key=SECRET, audit=audit, phone="+86 139 0000 1111")
        assert got.phone_masked == "139****1111"
        got, change = change_member(s, m.id, key=SECRET, audit=audit, clear_phone=True)
        assert (got.phone_masked, got.phone_hash) == (None, None)
    logged = entries(db, "member.update")
    assert [e.detail["changes"][0]["field"] for e in logged] == ["status", "phone", "phone"]
    assert logged[0].detail["changes"] == [{"field": "status", "from": "active", "to": "left"}]
    assert logged[0].detail["reason"] == "退休"


def test_left_or_transferred_members_are_not_issued(db):
    w = build_world(db)
    a = [_member(db, w.union_a, i) for i in range(3)]
    with db.session() as s:
        change_member(s, a[0].id, key=SECRET, audit=audit, status="left")
        change_member(s, a[1].id, key=SECRET, audit=audit, status="transferred")
    fund(w, w.union_a, 900)
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="a", now=T0)
        assert (r.issuance.members_eligible, r.issuance.members_issued) == (1, 1)
        issued_to = set(s.execute(select(Voucher.member_id)).scalars())
    assert issued_to == {a[2].id}


def test_transferred_member_is_issued_by_the_new_union_at_most_once(db):
    w = build_world(db)  # A: 1-3, B: 4-5, C: 6-7
    moved = _member(db, w.union_a, 0)
    for org in (w.union_a, w.union_c):
        fund(w, org, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="a1", now=T0)
    with db.session() as s:
        t = transfer_member(s, moved.id, to_union_id=w.union_c, audit=audit, reason="调动")
        assert (t.old.status, t.new.status, t.created) == ("transferred", "active", True)
        assert t.old.transferred_to_id == t.new.id and t.new.union_id == w.union_c
        assert t.new.id_hash == moved.id_hash and t.new.region_code == "140106"
    with db.session() as s:  # the old union's count lost the member, the new one's gained
        counts = dict(s.execute(select(Member.union_id, func.count()).where(
            Member.status == "active").group_by(Member.union_id)).all())
        assert (counts[w.union_a], counts[w.union_c]) == (2, 3)
        r = issue(s, union_id=w.union_c, program=w.program, idem_key="c1", now=T0)
        assert (r.issuance.members_eligible, r.issuance.members_issued,
                r.issuance.members_duplicate) == (3, 2, 1)
        assert s.execute(select(func.count()).select_from(Entitlement).where(
            Entitlement.person_hash == moved.id_hash)).scalar() == 1
        # the vouchers already issued stay the old union's, on the old row
        assert set(s.execute(select(Voucher.union_id, Voucher.member_id).where(
            Voucher.member_id.in_([t.old.id, t.new.id]))).all()) == {(w.union_a, t.old.id)}
    with db.session() as s:  # the same transfer again: nothing to do
        again = transfer_member(s, moved.id, to_union_id=w.union_c, audit=audit)
        assert (again.changed, again.new.id) == (False, t.new.id)
        with pytest.raises(InvalidTransition):  # a transferred row is not transferred again
            transfer_member(s, moved.id, to_union_id=w.union_b, audit=audit)
    [e] = entries(db, "member.transfer")
    assert e.target == f"member:{moved.id}"
    assert e.detail == {"from_union_id": w.union_a, "to_union_id": w.union_c,
                        "from_status": "active", "new_member_id": t.new.id, "created": True,
                        "reason": "调动"}


def test_transfer_before_any_issuance_issues_once_by_the_new_union(db):
    w = build_world(db)
    moved = _member(db, w.union_a, 0)
    with db.session() as s:
        t = transfer_member(s, moved.id, to_union_id=w.union_b, audit=audit)
    for org in (w.union_a, w.union_b):
        fund(w, org, 900)
    with db.session() as s:
        ra = issue(s, union_id=w.union_a, program=w.program, idem_key="a", now=T0)
        rb = issue(s, union_id=w.union_b, program=w.program, idem_key="b", now=T0)
        assert (ra.issuance.members_issued, rb.issuance.members_issued) == (2, 3)
        owners = s.execute(select(Voucher.member_id).where(
            Voucher.member_id.in_([moved.id, t.new.id]))).scalars().all()
    assert set(owners) == {t.new.id}


def test_transfer_into_a_union_where_the_person_already_is_reuses_that_row(db):
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members
    from tests.world import make_id

    w = build_world(db)
    moved = _member(db, w.union_a, 0)
    with db.session() as s:  # the same person, registered in C too (a duplicate), who left C
        add_members(s, [(1, MemberRow(name="成员1", id_number=make_id(1), phone=None,
                                      union=w.union_uscc["C"], status=MemberStatus.LEFT))],
                    key=SECRET)
        assert cross_union_duplicates(s) == []  # a row left behind is not a registration
        there = s.execute(select(Member).where(Member.union_id == w.union_c,
                                               Member.id_hash == moved.id_hash)).scalar_one()
    with db.session() as s:
        t = transfer_member(s, moved.id, to_union_id=w.union_c, audit=audit)
        assert (t.created, t.new.id, t.new.status) == (False, there.id, "active")
        assert s.execute(select(func.count()).select_from(Member).where(
            Member.id_hash == moved.id_hash)).scalar() == 2
        assert cross_union_duplicates(s) == []
    with db.session() as s:  # and back again: A's old row is reactivated, C's marked
        back = transfer_member(s, there.id, to_union_id=w.union_a, audit=audit)
        assert (back.created, back.new.id, back.new.status) == (False, moved.id, "active")
        assert back.old.status == "transferred"


def test_transfer_checks_its_target(db):
    w = build_world(db)
    m = _member(db, w.union_a, 0)
    with db.session() as s:
        for target in (w.union_a, w.county_a, 999_999):
            with pytest.raises(ValidationError):
                transfer_member(s, m.id, to_union_id=target, audit=audit)
        change_member(s, m.id, key=SECRET, audit=audit, status="left")
        with pytest.raises(InvalidTransition):
            transfer_member(s, m.id, to_union_id=w.union_b, audit=audit)


@pytest.mark.pg
def test_a_change_reads_the_member_again_under_its_lock(pg_db):
    """A route reads the member (scope check) before the service locks it: a change committed
    in between is seen, not refused as a conflict nor overwritten from a stale read.
    (PostgreSQL only: on SQLite nobody commits inside another's transaction.)"""
    db = pg_db
    w = build_world(db)
    m = _member(db, w.union_a)
    with db.session() as s:
        s.get(Member, m.id)  # as the route's scope check does
        with db.session() as other:
            change_member(other, m.id, key=SECRET, audit=audit, status="left")
        got, change = change_member(s, m.id, key=SECRET, audit=audit, status="active")
        assert [(f.old, f.new) for f in change.changes] == [("left", "active")]
        assert got.status == "active"
