"""Member status, phone and transfer over the API: scope like the other member routes, one
effect per Idempotency-Key, audited with the actor; roster re-import with update."""

from __future__ import annotations

import io

from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.members.models import Member
from tests.integration.test_imports import rows
from tests.world import make_id


def _log(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.seq)).scalars())


def _member(db, member_id: int) -> Member:
    with db.session() as s:
        return s.get(Member, member_id)


def _in_union(db, union_id: int) -> list[int]:
    with db.session() as s:
        return list(s.execute(select(Member.id).where(Member.union_id == union_id)
                              .order_by(Member.id)).scalars())


def test_status_change_is_scoped_audited_and_replayed_on_the_same_key(api):
    m = api.member_in
    r = api.call("POST", f"/members/{m}/status", Role.COUNTY_ADMIN, key="k-status",
                 json={"status": "left", "reason": "退休"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member"]["status"] == "left" and body["changed"] is True
    assert body["changes"] == [{"field": "status", "old": "active", "new": "left"}]
    again = api.call("POST", f"/members/{m}/status", Role.COUNTY_ADMIN, key="k-status",
                     json={"status": "left", "reason": "退休"})
    assert again.status_code == 200 and again.json() == body
    [e] = _log(api.db, "member.update")
    assert (e.actor, e.target, e.role) == ("u-county_admin", f"member:{m}", "county_admin")
    assert e.detail["changes"] == [{"field": "status", "from": "active", "to": "left"}]
    assert e.detail["reason"] == "退休"
    # a new key, the same state: answered, nothing written
    same = api.call("POST", f"/members/{m}/status", Role.COUNTY_ADMIN, json={"status": "left"})
    assert same.status_code == 200 and same.json()["changed"] is False
    bad = api.call("POST", f"/members/{m}/status", Role.COUNTY_ADMIN,
                   json={"status": "suspended"})
    assert (bad.status_code, bad.json()["code"]) == (409, "invalid_transition")
    assert len(_log(api.db, "member.update")) == 1
    nokey = api.call("POST", f"/members/{m}/status", Role.COUNTY_ADMIN, key=None,
                     json={"status": "active"})
    assert (nokey.status_code, nokey.json()["code"]) == (422, "idempotency_key_required")
    assert _member(api.db, m).status == "left"


def test_status_out_of_scope_is_refused_and_changes_nothing(api):
    member_b = _in_union(api.db, api.w.union_b)[0]
    for who, target in ((Role.UNION_ADMIN, member_b), (Role.COUNTY_ADMIN, api.member_out),
                        (Role.PROVINCE_ADMIN, api.member_out)):
        r = api.call("POST", f"/members/{target}/status", who, json={"status": "left"})
        assert (r.status_code, r.json()["code"]) == (403, "out_of_scope"), (who, r.text)
        assert _member(api.db, target).status == "active"
    r = api.call("POST", f"/members/{api.member_in}/status", Role.AUDITOR,
                 json={"status": "left"})
    assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")
    assert _log(api.db, "member.update") == []


def test_phone_is_set_masked_and_removed(api):
    m = api.member_in
    r = api.call("POST", f"/members/{m}/phone", Role.UNION_ADMIN,
                 json={"phone": "+86 139 1234 5678"})
    assert r.status_code == 200, r.text
    assert r.json()["member"]["phone_masked"] == "139****5678"
    assert r.json()["changes"] == [{"field": "phone", "old": None, "new": "139****5678"}]
    assert "13912345678" not in r.text
    bad = api.call("POST", f"/members/{m}/phone", Role.UNION_ADMIN, json={"phone": "12345"})
    assert bad.status_code == 422
    gone = api.call("POST", f"/members/{m}/phone", Role.UNION_ADMIN, json={"phone": None})
    assert gone.status_code == 200 and gone.json()["member"]["phone_masked"] is None
    assert [e.detail["changes"][0]["to"] for e in _log(api.db, "member.update")] == [
        "139****5678", None]
    assert "13912345678" not in str([e.detail for e in _log(api.db, "member.update")])


def test_transfer_needs_both_unions_in_scope(api):
    m = api.member_in  # union A, county 140105
    r = api.call("POST", f"/members/{m}/transfer", Role.UNION_ADMIN,
                 json={"to_union_id": api.w.union_c})
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope")
    r = api.call("POST", f"/members/{m}/transfer", Role.COUNTY_ADMIN,
                 json={"to_union_id": api.w.union_c})  # C is in 140106, not the county's
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope")
    r = api.call("POST", f"/members/{m}/transfer", Role.PROVINCE_ADMIN,
                 json={"to_union_id": api.union_x})  # another province
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope")
    assert _member(api.db, m).status == "active" and _log(api.db, "member.transfer") == []

    r = api.call("POST", f"/members/{m}/transfer", Role.CITY_ADMIN, key="k-move",
                 json={"to_union_id": api.w.union_c, "reason": "调动"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["old"]["status"] == "transferred" and body["old"]["id"] == m
    assert body["new"]["union_id"] == api.w.union_c and body["new"]["status"] == "active"
    assert body["created"] is True and body["changed"] is True
    replay = api.call("POST", f"/members/{m}/transfer", Role.CITY_ADMIN, key="k-move",
                      json={"to_union_id": api.w.union_c, "reason": "调动"})
    assert replay.json() == body
    [e] = _log(api.db, "member.transfer")
    assert (e.actor, e.target) == ("u-city_admin", f"member:{m}")
    assert e.detail["to_union_id"] == api.w.union_c and e.detail["new_member_id"] == \
        body["new"]["id"]
    assert len(_in_union(api.db, api.w.union_c)) == 3  # 6, 7 and the newcomer
    # the new union issues: the person was entitled by union A already
    from civicvoucher.vouchers.issuance import issue
    from tests.world import T0, fund

    fund(api.w, api.w.union_c, 900)
    with api.db.session() as s:
        res = issue(s, union_id=api.w.union_c, program=api.w.program, idem_key="c", now=T0)
        assert (res.issuance.members_issued, res.issuance.members_duplicate) == (2, 1)


def _upload(api, role, text: str, query: str = ""):
    files = {"file": ("roster.csv", io.BytesIO(text.encode()), "text/csv")}
    return api.call("POST", f"/members/import{query}", role, files=files)


def test_roster_reimport_previews_then_updates(api):
    uscc = api.w.union_uscc["A"]
    header = "姓名,身份证号,手机号,所属工会,状态\n"
    first = rows(uscc, 2, start=500)
    r = _upload(api, Role.UNION_ADMIN, header + "".join(",".join(x) + "\n" for x in first))
    assert r.status_code == 200 and r.json()["imported"] == 2
    first[0][4] = "离会"
    changed = header + "".join(",".join(x) + "\n" for x in first)
    r = _upload(api, Role.UNION_ADMIN, changed)
    assert r.json()["updated"] == 0 and r.json()["changes_total"] == 1
    preview = _upload(api, Role.UNION_ADMIN, changed, "?update=true&dry_run=true")
    assert preview.status_code == 200, preview.text
    assert preview.json()["dry_run"] is True and preview.json()["updated"] == 0
    [row] = preview.json()["changes"]
    assert (row["row"], row["changes"]) == (
        2, [{"field": "status", "old": "active", "new": "left"}])
    assert _log(api.db, "member.update") == []
    done = _upload(api, Role.UNION_ADMIN, changed, "?update=true")
    assert done.status_code == 200 and done.json()["updated"] == 1
    [e] = _log(api.db, "member.update")
    assert e.actor == "u-union_admin" and e.detail["source"] == "import"
    with api.db.session() as s:
        assert s.get(Member, row["member_id"]).status == "left"


def test_transfer_into_the_same_person_row_keeps_one_row_per_union(api):
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members
    from tests.world import SECRET

    with api.db.session() as s:  # member 1 of A is registered in B too
        add_members(s, [(1, MemberRow(name="成员1", id_number=make_id(1), phone=None,
                                      union=api.w.union_uscc["B"], status=MemberStatus.ACTIVE))],
                    key=SECRET)
    r = api.call("POST", f"/members/{api.member_in}/transfer", Role.COUNTY_ADMIN,
                 json={"to_union_id": api.w.union_b})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is False
    with api.db.session() as s:
        rows_b = s.execute(select(Member).where(Member.union_id == api.w.union_b)).scalars()
        assert sum(m.name == "成员1" for m in rows_b) == 1


def test_a_transfer_does_not_count_the_person_twice(api):
    def members() -> int:
        r = api.call("GET", f"/reports/summary?org_id={api.w.county_a}", Role.COUNTY_ADMIN)
        return r.json()["members"]

    before = members()
    r = api.call("POST", f"/members/{api.member_in}/transfer", Role.COUNTY_ADMIN,
                 json={"to_union_id": api.w.union_b})
    assert r.status_code == 200, r.text
    assert members() == before
    api.call("POST", f"/members/{r.json()['new']['id']}/status", Role.COUNTY_ADMIN,
             json={"status": "left"})
    assert members() == before - 1
