"""Merchants in the console: onboarding by form (every field's error named, the USCC
checksum among them, the county inside the admin's region, bank details sealed), the approval
queue (a second person approves: the registrant is refused, audited), the list's filters and
paging, a merchant's bank details given later; every mutation once per attempt key; both
languages; another region's merchant refused."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.merchants.models import Merchant
from tests.world import make_uscc

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
ACCOUNT = "6222 0212 3456 7890 123"


def _in(console, role):
    console.client.cookies.clear()
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console


def _form(console, path="/merchants/new"):
    r = console.client.get(path)
    assert r.status_code == 200, r.text[:300]
    return CSRF.findall(r.text)[-1], KEY.search(r.text).group(1)


def _register(console, n, *, county="140105", key=None, **over):
    csrf, k = _form(console)
    data = {"csrf_token": csrf, "idempotency_key": key or k, "uscc": make_uscc(n),
            "name": f"新店{n}", "mcc": "5812", "county_code": county,
            "channels": ["offline", "takeaway"], "payee_name": f"新店{n}有限公司",
            "bank_name": "中国工商银行太原迎泽支行", "account_no": ACCOUNT, **over}
    return console.client.post("/merchants/new", data=data)


def _audits(db, action):
    with db.session() as s:
        return s.execute(select(AuditEntry).where(AuditEntry.action == action)
                         .order_by(AuditEntry.seq)).scalars().all()


def _merchant(db, n) -> Merchant:
    with db.session() as s:
        return s.execute(select(Merchant).where(Merchant.uscc == make_uscc(n))).scalar_one()


def test_onboard_then_a_second_admin_approves(console, db):
    _in(console, Role.COUNTY_ADMIN)
    r = _register(console, 701)
    assert r.status_code == 303, r.text[:500]
    m = _merchant(db, 701)
    assert r.headers["location"] == f"/merchants/{m.id}?registered=1"
    assert (m.status, m.category, m.channels) == ("pending", "hotel_dining", "offline,takeaway")
    assert m.account_masked == "6222****0123" and m.registered_by is not None
    assert "6222021234567890123" not in (m.account_sealed or "")
    page = console.client.get(r.headers["location"]).text
    assert "6222****0123" in page and "6222021234567890123" not in page
    # the registrant sees it in the queue but cannot approve it
    q = console.client.get("/merchants/queue").text
    assert "新店701" in q and f'action="/merchants/{m.id}/status"' not in q
    csrf, _ = _form(console, f"/merchants/{m.id}")
    r = console.client.post(f"/merchants/{m.id}/status", data={
        "csrf_token": csrf, "idempotency_key": "self-1", "status": "active", "back": "queue"})
    assert r.status_code == 403 and "self_approval_refused" in r.text
    assert _merchant(db, 701).status == "pending"
    with db.session() as s:  # the refusal is audited, as the route class audits them
        refused = s.execute(select(AuditEntry).where(
            AuditEntry.action == "access.refused",
            AuditEntry.target == f"POST /merchants/{m.id}/status")).scalars().all()
    assert [e.detail["code"] for e in refused] == ["self_approval_refused"]
    # another admin (the city's) approves it, once per key
    _in(console, Role.CITY_ADMIN)
    q = console.client.get("/merchants/queue").text
    assert f'action="/merchants/{m.id}/status"' in q
    csrf = CSRF.findall(q)[-1]
    data = {"csrf_token": csrf, "idempotency_key": "approve-701", "status": "active",
            "back": "queue"}
    r1 = console.client.post(f"/merchants/{m.id}/status", data=data)
    r2 = console.client.post(f"/merchants/{m.id}/status", data=data)
    assert r1.status_code == r2.status_code == 303, r1.text[:300]
    assert r1.headers["location"] == f"/merchants/queue?done={m.id}&to=active"
    assert _merchant(db, 701).status == "active"
    entries = [e for e in _audits(db, "merchant.status") if e.target == f"merchant:{m.id}"]
    assert len(entries) == 1 and entries[0].actor == "u-city_admin"
    assert entries[0].detail["from"] == "pending" and entries[0].detail["to"] == "active"
    assert "新店701" not in console.client.get("/merchants/queue").text


def test_the_register_is_once_per_key(console, db):
    _in(console, Role.COUNTY_ADMIN)
    r1 = _register(console, 702, key="same-key-702")
    r2 = _register(console, 702, key="same-key-702")
    assert r1.status_code == r2.status_code == 303
    assert r1.headers["location"] == r2.headers["location"]
    assert len([e for e in _audits(db, "merchant.register")
                if e.target == f"merchant:{_merchant(db, 702).id}"]) == 1
    # a new attempt with the same USCC: named on the field, nothing written
    r3 = _register(console, 702)
    assert r3.status_code == 409 and 'id="r-uscc-error"' in r3.text


def test_every_bad_field_is_named_and_nothing_written(console, db):
    _in(console, Role.COUNTY_ADMIN)
    bad_uscc = make_uscc(703)[:-1] + ("0" if make_uscc(703)[-1] != "0" else "1")
    r = _register(console, 703, uscc=bad_uscc, mcc="5944", county_code="140100",
                  account_no="12ab", bank_name="")
    assert r.status_code == 422
    for f in ("uscc", "mcc", "county_code", "account_no", "bank_name"):
        assert f'id="r-{f}-error"' in r.text, f
    assert 'aria-invalid="true"' in r.text
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Merchant)
                         .where(Merchant.name == "新店703")).scalar() == 0
    # the county must be in the admin's region
    r = _register(console, 704, county="150102")
    assert r.status_code == 422 and 'id="r-county_code-error"' in r.text


def test_chinese_page_and_errors(console):
    console.client.cookies.set("cv_lang", "zh")
    _in(console, Role.COUNTY_ADMIN)
    console.client.cookies.set("cv_lang", "zh")
    r = console.client.get("/merchants/new")
    assert "登记商户" in r.text and "收款户名" in r.text
    r = _register(console, 705, mcc="12")
    assert r.status_code == 422 and "MCC" in r.text and "4 位" in r.text


def test_reject_needs_a_reason_and_list_filters(console, db):
    _in(console, Role.COUNTY_ADMIN)
    assert _register(console, 706, payee_name="", bank_name="", account_no="").status_code == 303
    m = _merchant(db, 706)
    assert m.account_sealed is None and m.account_masked is None
    _in(console, Role.PROVINCE_ADMIN)
    csrf, key = _form(console, f"/merchants/{m.id}")
    r = console.client.post(f"/merchants/{m.id}/status", data={
        "csrf_token": csrf, "idempotency_key": key, "status": "suspended", "reason": ""})
    assert r.status_code == 422 and 'id="status-error"' in r.text
    r = console.client.post(f"/merchants/{m.id}/status", data={
        "csrf_token": csrf, "idempotency_key": key, "status": "suspended",
        "reason": "证照不全"})
    assert r.status_code == 303 and _merchant(db, 706).status == "suspended"
    e = [x for x in _audits(db, "merchant.status") if x.target == f"merchant:{m.id}"][-1]
    assert e.detail["reason"] == "证照不全"
    page = console.client.get("/merchants?status=suspended").text
    assert "新店706" in page and ">超市</a>" not in page
    assert "新店706" not in console.client.get("/merchants?status=active").text
    assert "新店706" in console.client.get("/merchants?category=hotel_dining&county=1401").text
    assert "新店706" not in console.client.get("/merchants?category=daily_goods").text
    assert "外省超市" not in console.client.get("/merchants").text  # another province's


def test_bank_details_given_later_sealed_and_audited(console, db):
    _in(console, Role.COUNTY_ADMIN)
    _register(console, 707, payee_name="", bank_name="", account_no="")
    m = _merchant(db, 707)
    csrf = CSRF.findall(console.client.get(f"/merchants/{m.id}").text)[-1]
    r = console.client.post(f"/merchants/{m.id}/bank", data={
        "csrf_token": csrf, "idempotency_key": "bank-707", "payee_name": "某某",
        "bank_name": "建设银行", "account_no": "123"})
    assert r.status_code == 422 and "[account_no]" in r.text
    r = console.client.post(f"/merchants/{m.id}/bank", data={
        "csrf_token": csrf, "idempotency_key": "bank-707b", "payee_name": "某某",
        "bank_name": "建设银行", "account_no": "4367 4200 1234 5678"})
    assert r.status_code == 303
    m = _merchant(db, 707)
    assert m.account_masked == "4367****5678" and "4367420012345678" not in m.account_sealed
    (e,) = [x for x in _audits(db, "merchant.bank") if x.target == f"merchant:{m.id}"]
    assert e.detail == {"before": None, "after": "4367****5678"}


def test_other_regions_and_roles_are_refused(console, db):
    with db.session() as s:
        out = s.execute(select(Merchant.id).where(Merchant.name == "外省超市")).scalar()
    _in(console, Role.COUNTY_ADMIN)
    assert console.client.get(f"/merchants/{out}").status_code in (403, 404)
    _in(console, Role.UNION_ADMIN)
    assert console.client.get("/merchants").status_code == 403
    assert console.client.get("/merchants/new").status_code == 403
    _in(console, Role.AUDITOR)
    r = console.client.get("/merchants")
    assert r.status_code == 200 and 'href="/merchants/new"' not in r.text
    assert console.client.get("/merchants/queue").status_code == 403
