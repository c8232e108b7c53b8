"""The issuance page: the funding check (members, amount needed, the fund, the shortfall)
writes nothing; the confirm issues through the API's handler, once per attempt key, audited;
another county's union is refused as the API refuses it; roles without create_issuance are
refused; both languages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.funds.service import deposit, fund_balance
from civicvoucher.vouchers.models import Issuance, Voucher

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def _in(console, role=Role.COUNTY_ADMIN):
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console


def _count(db, model) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _preview(console, union_id, *, mode="all_or_nothing", lang=None):
    token = console.csrf("/issue")
    if lang:
        console.client.cookies.set("cv_lang", lang)
    return console.client.post("/issue/preview", data={
        "csrf_token": token, "union_id": str(union_id), "program": console.aw.w.program,
        "mode": mode})


def _confirm(console, r_preview):
    key = KEY.search(r_preview.text).group(1)
    token = re.findall(r'name="csrf_token" value="([^"]*)"', r_preview.text)[-1]
    data = {"csrf_token": token, "idempotency_key": key,
            "union_id": re.search(r'name="union_id" value="(\d+)"', r_preview.text).group(1),
            "program": console.aw.w.program,
            "mode": re.search(r'name="mode" value="([a-z_]+)"', r_preview.text).group(1)}
    return console.client.post("/issue/confirm", data=data)


def test_preview_shows_the_shortfall_and_writes_nothing(console, db):
    _in(console)
    w = console.aw.w  # union B: 2 active members, nothing issued, an empty fund
    before = (_count(db, Issuance), _count(db, Voucher), _count(db, AuditEntry))
    r = _preview(console, w.union_b)
    assert r.status_code == 200, r.text[:500]
    assert 'id="to-receive">2<' in r.text
    with db.session() as s:
        per = int(s.execute(select(func.sum(Voucher.amount_fen)).where(
            Voucher.union_id == w.union_a)).scalar()) // 3  # union A: 3 members issued
    assert f'id="needed">{_yuan(2 * per)}<' in r.text
    assert f'id="available">{_yuan(0)}<' in r.text
    assert f'id="shortfall">{_yuan(2 * per)}<' in r.text
    assert "全有或全无" in r.text or "资金不足" in r.text
    assert (_count(db, Issuance), _count(db, Voucher), _count(db, AuditEntry)) == before
    assert 'action="/issue/confirm"' not in r.text  # all or nothing, short: nothing to confirm
    r = _preview(console, w.union_b, mode="partial")
    assert 'action="/issue/confirm"' not in r.text  # an empty fund: partial issues nothing


def _yuan(fen):
    from civicvoucher.core.money import format_yuan

    return format_yuan(fen)


def test_confirm_issues_once_per_key_and_is_audited(console, db):
    _in(console)
    w = console.aw.w
    with db.session() as s:
        deposit(s, org_id=w.union_b, amount_fen=10_000_000, source="dues", idem_key="t-b")
        s.commit()
    r = _preview(console, w.union_b)
    assert f'id="shortfall">{_yuan(0)}<' in r.text, r.text[:2000]
    vouchers = _count(db, Voucher)
    done = _confirm(console, r)
    assert done.status_code == 303, done.text[:500]
    page = console.client.get(done.headers["location"])
    assert page.status_code == 200 and 'id="vouchers-issued">' in page.text
    issued = _count(db, Voucher) - vouchers
    assert issued > 0 and f'id="vouchers-issued">{issued}<' in page.text
    again = _confirm(console, r)  # the same form sent twice: a replay
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    assert _count(db, Voucher) - vouchers == issued
    with db.session() as s:
        audits = s.execute(select(AuditEntry).where(AuditEntry.action == "issuance.create",
                                                    AuditEntry.actor == f"u-{Role.COUNTY_ADMIN}")
                           ).scalars().all()
        assert len(audits) == 1
        assert fund_balance(s, w.union_b) == 10_000_000 - audits[0].detail["amount_fen"]


def test_another_countys_union_is_refused(console, db):
    _in(console)
    before = _count(db, Issuance)
    r = _preview(console, console.aw.w.union_c)
    assert r.status_code == 403, r.text[:300]
    assert "union C" not in r.text
    token = console.csrf("/issue")
    r = console.client.post("/issue/confirm", data={
        "csrf_token": token, "idempotency_key": "k-1", "union_id": str(console.aw.w.union_c),
        "program": console.aw.w.program, "mode": "partial"})
    assert r.status_code == 403
    assert _count(db, Issuance) == before
    page = console.client.get("/issue")
    assert "union A" in page.text and "union C" not in page.text


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ANALYST, Role.CASHIER])
def test_roles_without_issuance_are_refused(console, role):
    _in(console, role)
    assert console.client.get("/issue").status_code == 403


def test_union_admin_may_issue_its_own_union_only(console):
    _in(console, Role.UNION_ADMIN)
    assert _preview(console, console.aw.w.union_a).status_code == 200
    assert _preview(console, console.aw.w.union_b).status_code == 403


def test_both_languages(console):
    _in(console)
    zh = _preview(console, console.aw.w.union_b, lang="zh")
    assert "资金核对" in zh.text and "缺口" in zh.text
    en = _preview(console, console.aw.w.union_b, lang="en")
    assert "Funding check" in en.text and "Shortfall" in en.text and "¥" in en.text


# ------------------------------------------------------------------ a whole subtree

def _sub_preview(console, org_id, *, mode="all_or_nothing"):
    token = console.csrf("/issue")
    return console.client.post("/issue/subtree/preview", data={
        "csrf_token": token, "org_id": str(org_id), "program": console.aw.w.program,
        "mode": mode})


def _sub_confirm(console, r_preview, key=None):
    token = re.findall(r'name="csrf_token" value="([^"]*)"', r_preview.text)[-1]
    return console.client.post("/issue/subtree/confirm", data={
        "csrf_token": token,
        "idempotency_key": key or KEY.search(r_preview.text).group(1),
        "org_id": re.search(r'name="org_id" value="(\d+)"', r_preview.text).group(1),
        "program": console.aw.w.program,
        "mode": re.search(r'name="mode" value="([a-z_]+)"', r_preview.text).group(1)})


def _finished(console, location, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while True:
        page = console.client.get(location)
        assert page.status_code == 200, page.text[:500]
        if "hx-trigger" not in page.text:
            return page
        assert time.monotonic() < deadline, page.text[:2000]
        time.sleep(0.2)


def _per_member(db, w) -> int:
    from civicvoucher.programs.models import Program

    with db.session() as s:
        return s.execute(select(Program.per_member_fen).where(
            Program.key == w.program)).scalar_one()


def test_subtree_check_shows_every_union_and_writes_nothing(console, db):
    _in(console)
    w = console.aw.w
    per = _per_member(db, w)
    before = (_count(db, Issuance), _count(db, Voucher), _count(db, AuditEntry))
    page = console.client.get("/issue")
    assert 'action="/issue/subtree/preview"' in page.text and "小店区总工会" in page.text
    assert "迎泽区总工会" not in page.text  # another county: not offered
    r = _sub_preview(console, w.county_a)
    assert r.status_code == 200, r.text[:500]
    assert f'id="u-{w.union_a}"' in r.text and f'id="u-{w.union_b}"' in r.text
    assert f'id="u-{w.union_c}"' not in r.text
    assert 'id="sub-to-receive">2<' in r.text  # union A issued already, union B's two
    assert f'id="sub-shortfall">{_yuan(2 * per)}<' in r.text
    assert "资金不足" in r.text
    assert (_count(db, Issuance), _count(db, Voucher), _count(db, AuditEntry)) == before
    assert 'action="/issue/subtree/confirm"' not in r.text  # nothing could be issued


def test_subtree_run_issues_each_union_once_and_is_audited(console, db):
    _in(console, Role.CITY_ADMIN)
    w = console.aw.w
    per = _per_member(db, w)
    with db.session() as s:  # union B can pay for its two members, union C for one of two
        deposit(s, org_id=w.union_b, amount_fen=2 * per, source="dues", idem_key="t-sb")
        deposit(s, org_id=w.union_c, amount_fen=per, source="dues", idem_key="t-sc")
        s.commit()
    r = _sub_preview(console, w.city, mode="partial")
    assert f'id="sub-needed">{_yuan(4 * per)}<' in r.text
    assert f'id="sub-shortfall">{_yuan(per)}<' in r.text
    vouchers = _count(db, Voucher)
    done = _sub_confirm(console, r)
    assert done.status_code == 303, done.text[:500]
    location = done.headers["location"]
    assert location.startswith("/issue/runs/")
    page = _finished(console, location)
    assert "2 / 2" in page.text or "2 of 2" in page.text
    with db.session() as s:
        made = s.execute(select(Issuance).where(Issuance.union_id.in_(
            [w.union_b, w.union_c])).order_by(Issuance.union_id)).scalars().all()
        assert [i.status for i in made] == ["completed", "partial"]
        assert [i.amount_fen for i in made] == [2 * per, per]
        audits = s.execute(select(AuditEntry).where(
            AuditEntry.action == "issuance.create",
            AuditEntry.actor == f"u-{Role.CITY_ADMIN}")).scalars().all()
        assert len(audits) == 2
    issued = _count(db, Voucher) - vouchers
    assert issued > 0 and f'id="run-vouchers">{issued}<' in page.text
    assert f'id="run-shortfall">{_yuan(per)}<' in page.text
    # the same form again (a double tap, a retry): the same run, nothing issued twice
    again = _sub_confirm(console, r)
    assert again.status_code == 303 and again.headers["location"] == location
    _finished(console, location)
    assert _count(db, Voucher) - vouchers == issued and _count(db, Issuance) == 2 + 2
    # resume replays each union's own key: nothing more
    token = re.findall(r'name="csrf_token" value="([^"]*)"', page.text)[-1]
    res = console.client.post(f"{location}/resume", data={"csrf_token": token})
    assert res.status_code == 303
    _finished(console, location)
    assert _count(db, Voucher) - vouchers == issued
    frag = console.client.get(f"{location}/progress", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text and "run-progress" in frag.text


def test_subtree_of_another_county_is_refused(console, db):
    _in(console)  # county A's admin
    w = console.aw.w
    r = _sub_preview(console, w.county_b)
    assert r.status_code == 403 and "迎泽" not in r.text
    r = _sub_preview(console, w.city)  # above their own organisation
    assert r.status_code == 403
    token = console.csrf("/issue")
    before = _count(db, Issuance)
    r = console.client.post("/issue/subtree/confirm", data={
        "csrf_token": token, "idempotency_key": "k-sub", "org_id": str(w.county_b),
        "program": w.program, "mode": "partial"})
    assert r.status_code == 403
    assert _count(db, Issuance) == before
    assert console.client.get("/issue/runs/k-sub").status_code == 404
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "access.refused")).scalar_one() >= 2


def test_another_users_run_is_not_found(console, db):
    _in(console, Role.CITY_ADMIN)
    w = console.aw.w
    with db.session() as s:
        deposit(s, org_id=w.union_c, amount_fen=10_000_000, source="dues", idem_key="t-c")
        s.commit()
    r = _sub_preview(console, w.county_b, mode="partial")
    done = _sub_confirm(console, r)
    location = done.headers["location"]
    _finished(console, location)
    console.client.cookies.clear()
    _in(console, Role.PROVINCE_ADMIN)
    assert console.client.get(location).status_code == 404  # runs belong to their user


def test_a_union_is_not_a_federation_and_union_admins_have_no_subtree(console):
    _in(console)
    r = _sub_preview(console, console.aw.w.union_a)
    assert r.status_code == 422 and "invalid_input" in r.text
    console.client.cookies.clear()
    _in(console, Role.UNION_ADMIN)
    assert 'action="/issue/subtree/preview"' not in console.client.get("/issue").text
    assert _sub_preview(console, console.aw.w.county_a).status_code == 403


def test_subtree_posts_without_csrf_are_refused(console, db):
    _in(console)
    before = _count(db, Issuance)
    r = console.client.post("/issue/subtree/confirm", data={
        "idempotency_key": "k-x", "org_id": str(console.aw.w.county_a),
        "program": console.aw.w.program, "mode": "partial"})
    assert r.status_code == 403 and "csrf_failed" in r.text
    r = console.client.post("/issue/confirm", data={
        "idempotency_key": "k-y", "union_id": str(console.aw.w.union_b),
        "program": console.aw.w.program, "mode": "partial"})
    assert r.status_code == 403
    assert _count(db, Issuance) == before
