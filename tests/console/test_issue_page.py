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
