"""Programs in the console: the list and a program's products with their deadlines; the
province admin extends the deadline with a reason through the API's create_extension
(audited, once per attempt key); an earlier date is refused as the API refuses it
(extension_not_later); other roles may read but not extend; both languages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.vouchers.models import Extension, Voucher

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def _in(console, role=Role.PROVINCE_ADMIN):
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console


def _extensions(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Extension)).scalar_one()


def _form(console):
    r = console.client.get(f"/programs/{console.aw.w.program}")
    assert r.status_code == 200, r.text[:300]
    return (re.findall(r'name="csrf_token" value="([^"]*)"', r.text)[-1],
            KEY.search(r.text).group(1))


def _extend(console, until, *, reason="省总工会通知延期", key=None):
    csrf, k = _form(console)
    return console.client.post(f"/programs/{console.aw.w.program}/extend", data={
        "csrf_token": csrf, "idempotency_key": key or k, "until": until, "reason": reason,
        "document": "晋工发〔2020〕1号"})


def test_list_and_detail(console):
    _in(console, Role.COUNTY_ADMIN)
    r = console.client.get("/programs")
    assert r.status_code == 200 and "program p2020" in r.text
    assert 'href="/programs/p2020"' in r.text
    d = console.client.get("/programs/p2020")
    assert d.status_code == 200 and "消费券" in d.text and "2020-07-11" in d.text
    assert 'action="/programs/p2020/extend"' not in d.text  # not the province admin
    assert console.client.get("/programs/nope").status_code == 404


def test_extend_is_audited_and_once_per_key(console, db):
    _in(console)
    csrf, key = _form(console)
    before = _extensions(db)
    data = {"csrf_token": csrf, "idempotency_key": key, "until": "2020-08-31",
            "reason": "省总工会通知延期", "document": ""}
    r = console.client.post("/programs/p2020/extend", data=data)
    assert r.status_code == 303, r.text[:500]
    again = console.client.post("/programs/p2020/extend", data=data)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert _extensions(db) == before + 1
    page = console.client.get(r.headers["location"])
    assert 'id="extended"' in page.text and "2020-09-01 00:00" in page.text  # exclusive
    assert "省总工会通知延期" in page.text
    with db.session() as s:
        audits = s.execute(select(AuditEntry).where(
            AuditEntry.action == "extension.create")).scalars().all()
        assert len(audits) == 1 and audits[0].actor == f"u-{Role.PROVINCE_ADMIN}"
        assert audits[0].detail["reason"] == "省总工会通知延期"
        ext = s.execute(select(Extension)).scalars().one()
        moved = s.execute(select(func.count()).select_from(Voucher).where(
            Voucher.expires_at == ext.new_expires_at)).scalar_one()
        assert moved == ext.vouchers_extended > 0


def test_an_earlier_date_is_refused(console, db):
    _in(console)
    r = _extend(console, "2020-07-01")
    assert r.status_code == 422, r.text[:300]  # as the API answers it
    assert "extension_not_later" in r.text
    assert 'value="2020-07-01"' in r.text  # the form as typed, to correct
    assert _extensions(db) == 0
    r = _extend(console, "not a date")
    assert r.status_code == 422 and _extensions(db) == 0
    r = _extend(console, "2020-08-31", reason="  ")
    assert r.status_code == 422 and _extensions(db) == 0


@pytest.mark.parametrize("role", [Role.COUNTY_ADMIN, Role.UNION_ADMIN, Role.AUDITOR])
def test_only_the_province_admin_extends(console, db, role):
    _in(console, role)
    csrf = console.csrf("/programs/p2020")
    r = console.client.post("/programs/p2020/extend", data={
        "csrf_token": csrf, "idempotency_key": "k-1", "until": "2020-08-31", "reason": "x"})
    assert r.status_code == 403
    assert _extensions(db) == 0


def test_both_languages(console):
    _in(console)
    console.client.cookies.set("cv_lang", "zh")
    zh = console.client.get("/programs/p2020")
    assert "延长使用期" in zh.text and "可用至" in zh.text
    console.client.cookies.set("cv_lang", "en")
    en = console.client.get("/programs/p2020")
    assert "Extend the deadline" in en.text and "Spendable until" in en.text
    assert "¥300.00" in en.text
