"""Organisations, members and roster imports in the console: the tree of the user's own
subtree only, another county's union is not found, members masked, status changes audited
and idempotent, imports that preview every row error (in Chinese and English) and write
nothing until confirmed, a confirm that imports once, CSRF on every POST."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.members.models import Member
from tests.world import make_id

TOKEN = re.compile(r'name="token" value="([^"]+)"')


def _in(console, role=Role.COUNTY_ADMIN):
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console


def _members(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Member)).scalar_one()


def _audits(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.seq)).scalars())


def _roster(console, rows: list[tuple[str, str, str, str]]) -> bytes:
    lines = ["姓名,身份证号,手机号,所属工会"] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _preview(console, content: bytes, *, lang: str | None = None, name="roster.csv"):
    token = console.csrf("/imports/members")
    headers = {"Accept-Language": lang} if lang else {}
    if lang:
        console.client.cookies.delete("cv_lang")
    return console.client.post("/imports/members/preview", data={"csrf_token": token},
                               files={"file": (name, content, "text/csv")}, headers=headers)


def test_the_tree_shows_only_the_users_subtree(console):
    _in(console)
    w = console.aw.world if hasattr(console.aw, "world") else console.aw.w
    r = console.client.get("/orgs")
    assert r.status_code == 200, r.text[:500]
    assert "小店区总工会" in r.text and "union A" in r.text and "union B" in r.text
    assert "迎泽区总工会" not in r.text and "union C" not in r.text
    assert "太原市总工会" not in r.text  # above the user: not shown either
    assert "¥" in r.text  # fund balances in yuan
    # the city admin sees both counties; their unions load when a county is opened
    console.client.post("/logout", data={"csrf_token": console.csrf("/")})
    _in(console, Role.CITY_ADMIN)
    r = console.client.get("/orgs")
    assert "小店区总工会" in r.text and "迎泽区总工会" in r.text
    kids = console.client.get(f"/orgs/{w.county_b}/children")
    assert kids.status_code == 200 and "union C" in kids.text
    found = console.client.get("/orgs", params={"q": "140106"})
    assert "迎泽区总工会" in found.text


def test_another_countys_union_is_not_found(console):
    _in(console)
    w = console.aw.w
    for path in (f"/orgs/{w.union_c}/members", f"/orgs/{w.county_b}/children",
                 f"/orgs?root={w.county_b}", f"/orgs/{w.union_c}/members.xlsx",
                 "/orgs/999999/members"):
        r = console.client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "union C" not in r.text and "迎泽区总工会" not in r.text
    refused = _audits(console.aw.w.db, "access.refused")
    assert any(f"/orgs/{w.union_c}/members" in (e.target or "") for e in refused)
    r = console.client.get("/orgs", params={"q": "union"})
    assert "union A" in r.text and ">union C<" not in r.text  # search stays in the subtree


def test_member_list_is_masked_and_audited(console):
    _in(console)
    w = console.aw.w
    r = console.client.get(f"/orgs/{w.union_a}/members")
    assert r.status_code == 200, r.text[:500]
    assert "成*1" in r.text and "成员1" not in r.text
    number = make_id(1)
    assert number not in r.text and (number[:3] + "*" * 11 + number[-4:]) in r.text
    assert "无法显示完整身份证号" in r.text and "<button" not in r.text.split("reveal-h")[1].split("</aside>")[0]  # the reveal is impossible: said
    assert _audits(w.db, "member.list")
    # a whole ID number finds the person through its hash
    r = console.client.get(f"/orgs/{w.union_a}/members", params={"q": number})
    assert r.text.count(">成*1</td>") == 1 and "成*2" not in r.text


def test_status_change_is_audited_and_idempotent(console):
    _in(console)
    w = console.aw.w
    with w.db.session() as s:
        mid = s.execute(select(Member.id).where(Member.union_id == w.union_a)
                        .order_by(Member.id)).scalars().first()
    token = console.csrf(f"/orgs/{w.union_a}/members")
    key = str(uuid.uuid4())
    form = {"csrf_token": token, "idempotency_key": key, "status": "left", "reason": "退休"}
    path = f"/orgs/{w.union_a}/members/{mid}/status"
    r = console.client.post(path, data=form)
    assert r.status_code == 200, r.text[:500]
    assert "离会" in r.text
    with w.db.session() as s:
        m = s.get(Member, mid)
        assert m.status == "left" and m.status_reason == "退休"
    first = _audits(w.db, "member.update")
    assert len(first) == 1 and first[0].actor == "u-county_admin"
    again = console.client.post(path, data=form)  # the same key: the first answer, once
    assert again.status_code == 200 and "离会" in again.text
    assert len(_audits(w.db, "member.update")) == 1
    # the same key for another change is refused
    other = console.client.post(path, data={**form, "status": "active"})
    assert other.status_code == 409
    # a refused transition is told in the page
    bad = console.client.post(path, data={**form, "idempotency_key": str(uuid.uuid4()),
                                          "status": "suspended"})
    assert bad.status_code == 409 and "离会" in bad.text
    # another county's member, by URL: not found
    with w.db.session() as s:
        c_member = s.execute(select(Member.id).where(Member.union_id == w.union_c)).scalar()
    r = console.client.post(f"/orgs/{w.union_a}/members/{c_member}/status",
                            data={**form, "idempotency_key": str(uuid.uuid4())})
    assert r.status_code == 404
    with w.db.session() as s:
        assert s.get(Member, c_member).status == "active"


def test_a_post_without_the_csrf_token_is_refused(console):
    _in(console)
    w = console.aw.w
    with w.db.session() as s:
        mid = s.execute(select(Member.id).where(Member.union_id == w.union_a)).scalar()
    r = console.client.post(f"/orgs/{w.union_a}/members/{mid}/status",
                            data={"idempotency_key": "k1", "status": "left"})
    assert r.status_code == 403
    r = console.client.post("/imports/members/preview",
                            files={"file": ("r.csv", b"a,b\n1,2\n", "text/csv")})
    assert r.status_code == 403
    r = console.client.post("/imports/members/confirm", data={"token": "x" * 43,
                                                              "idempotency_key": "k"})
    assert r.status_code == 403
    with w.db.session() as s:
        assert s.get(Member, mid).status == "active"


BAD_ROWS = None


def _bad_file(w) -> bytes:
    a = w.union_uscc["A"]
    return _roster(None, [
        ("新人甲", make_id(501), "13812345678", a),
        ("", make_id(502), "", a),  # row 3: no name
        ("新人丙", "110101199003071230", "", a),  # row 4: bad check digit
        ("新人丁", make_id(504), "12345", a),  # row 5: bad phone
        ("新人戊", make_id(505), "", w.union_uscc["C"]),  # row 6: another county's union
    ])


@pytest.mark.parametrize("lang,words", [("zh", ["姓名", "手机号", "所属工会"]),
                                        ("en", ["name", "phone", "union"])])
def test_a_preview_shows_every_row_error_and_writes_nothing(console, lang, words):
    _in(console)
    w = console.aw.w
    before = _members(w.db)
    r = _preview(console, _bad_file(w), lang=lang)
    assert r.status_code == 200, r.text[:800]
    assert _members(w.db) == before
    body = r.text
    for row in ("3", "4", "5", "6"):
        assert f'<td class="num">{row}</td>' in body, row
    assert '<td class="num">2</td>' not in body
    for word in words:
        assert word in body
    if lang == "zh":
        assert "无法导入" in body or "不能导入" in body
        assert "this union is outside your scope" not in body
    else:
        assert "this union is outside your scope" in body
        assert "mainland mobile number" in body
    assert make_id(501) not in body and make_id(501)[-4:] in body  # masked as read
    assert "新*甲" in body and "新人甲" not in body
    assert 'name="token"' not in body  # nothing to confirm
    assert not _audits(w.db, "member.import")


def test_confirm_imports_once_per_key(console):
    _in(console)
    w = console.aw.w
    a = w.union_uscc["A"]
    good = _roster(console, [("新人甲", make_id(601), "13812345678", a),
                             ("新人乙", make_id(602), "", a)])
    before = _members(w.db)
    r = _preview(console, good)
    assert r.status_code == 200 and _members(w.db) == before
    token = TOKEN.findall(r.text)
    assert token, r.text[:1500]
    key = str(uuid.uuid4())
    form = {"csrf_token": console.csrf("/"), "token": token[0], "idempotency_key": key}
    done = console.client.post("/imports/members/confirm", data=form)
    assert done.status_code == 200, done.text[:800]
    assert _members(w.db) == before + 2
    audits = _audits(w.db, "member.import")
    assert len(audits) == 1 and audits[0].detail["imported"] == 2
    again = console.client.post("/imports/members/confirm", data=form)
    assert again.status_code == 200 and "2" in again.text
    assert _members(w.db) == before + 2 and len(_audits(w.db, "member.import")) == 1
    # a fresh key cannot reuse the token: the preview is gone once imported
    stale = console.client.post("/imports/members/confirm",
                                data={**form, "idempotency_key": str(uuid.uuid4())})
    assert stale.status_code == 422 and "preview_expired" in stale.text
    assert _members(w.db) == before + 2


def test_a_token_is_bound_to_its_user(console):
    _in(console)
    w = console.aw.w
    good = _roster(console, [("新人甲", make_id(701), "", w.union_uscc["A"])])
    token = TOKEN.findall(_preview(console, good).text)[0]
    console.client.post("/logout", data={"csrf_token": console.csrf("/")})
    _in(console, Role.CITY_ADMIN)
    before = _members(w.db)
    r = console.client.post("/imports/members/confirm",
                            data={"csrf_token": console.csrf("/"), "token": token,
                                  "idempotency_key": str(uuid.uuid4())})
    assert r.status_code == 422 and _members(w.db) == before


def test_export_is_masked_and_audited(console, tmp_path):
    from openpyxl import load_workbook

    _in(console)
    w = console.aw.w
    r = console.client.get(f"/orgs/{w.union_a}/members.xlsx")
    assert r.status_code == 200, r.text[:300]
    path = tmp_path / "m.xlsx"
    path.write_bytes(r.content)
    cells = [str(c.value) for row in load_workbook(path).active.iter_rows() for c in row]
    assert "成*1" in cells and "成员1" not in cells and make_id(1) not in cells
    assert _audits(w.db, "member.export")[0].detail["count"] == 3


def test_roles_outside_the_rule_are_refused(console):
    _in(console, Role.MERCHANT_ADMIN)
    assert console.client.get("/orgs").status_code == 403
    assert console.client.get("/imports/members").status_code == 403
