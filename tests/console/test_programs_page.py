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


# ------------------------------------------------------------------ the program form

def _new_form(console, path="/programs/new"):
    r = console.client.get(path)
    assert r.status_code == 200, r.text[:300]
    return (re.findall(r'name="csrf_token" value="([^"]*)"', r.text)[-1],
            KEY.search(r.text).group(1), r)


def _program_data(csrf, key, *, program="lvyou-2027", denoms=("50×6", "1.5万"),
                  threshold=("100", "0"), until=("2027-03-31", "2027-12-31")):
    """Two products: a consumption voucher (six of 50, 满减 100) and an opt-in tourism card."""
    return {
        "csrf_token": csrf, "idempotency_key": key, "action": "save",
        "key": program, "name": "小店区2027年职工消费券", "documents": "晋工发〔2027〕1号\n通知",
        "p_key": ["voucher", "tourism"], "p_kind": ["consumption", "tourism_card"],
        "p_name": ["职工消费券", "旅游年卡"], "p_denoms": list(denoms),
        "p_threshold": list(threshold), "p_region": ["city", "province"],
        "p_from": ["2027-01-01", "2027-01-01"], "p_until": list(until),
        "p_categories": ["0:daily_goods", "0:hotel_dining", "1:hotel_dining"],
        "p_channels": ["0:offline", "0:takeaway", "1:online"], "p_optional": ["1"],
    }


def _programs(db):
    from civicvoucher.programs.models import Program

    with db.session() as s:
        return s.execute(select(func.count()).select_from(Program)).scalar_one()


def test_create_a_program_from_the_form(console, db):
    from civicvoucher.programs.models import Product, Program

    _in(console)
    assert 'href="/programs/new"' in console.client.get("/programs").text
    csrf, key, _ = _new_form(console)
    before = _programs(db)
    r = console.client.post("/programs/new", data=_program_data(csrf, key))
    assert r.status_code == 303, r.text[:2000]
    assert r.headers["location"] == "/programs/lvyou-2027?saved=created"
    with db.session() as s:
        p = s.execute(select(Program).where(Program.key == "lvyou-2027")).scalar_one()
        assert p.per_member_fen == 300_00 + 15_000_00 and list(p.documents) == [
            "晋工发〔2027〕1号", "通知"]
        v, t = s.execute(select(Product).where(Product.program_id == p.id)
                         .order_by(Product.id)).scalars().all()
        assert list(v.denominations) == [5000] * 6 and v.threshold_fen == 10000
        assert v.categories == ["daily_goods", "hotel_dining"]
        assert v.channels == ["offline", "takeaway"] and v.region_scope == "city"
        assert not v.optional and t.optional and t.kind == "tourism_card"
        assert str(v.valid_from) == "2026-12-31 16:00:00"  # Beijing midnight
        assert str(v.expires_at) == "2027-03-31 16:00:00"  # through the last day
        audits = s.execute(select(AuditEntry).where(
            AuditEntry.action == "program.create")).scalars().all()
        assert len(audits) == 1 and audits[0].actor == f"u-{Role.PROVINCE_ADMIN}"
        assert audits[0].target == "program:lvyou-2027"
    again = console.client.post("/programs/new", data=_program_data(csrf, key))  # a double tap
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert _programs(db) == before + 1
    page = console.client.get(r.headers["location"])
    assert 'id="saved"' in page.text and "¥15,300.00" in page.text


def test_a_bad_field_is_named_with_its_row_and_nothing_is_written(console, db):
    _in(console)
    console.client.cookies.set("cv_lang", "zh")
    csrf, key, _ = _new_form(console)
    before = (_programs(db), _count_audit(db))
    data = _program_data(csrf, key, denoms=("50×6", "12.5"))
    data["p_channels"] = ["0:offline"]  # product 2 has no channel
    r = console.client.post("/programs/new", data=data)
    assert r.status_code == 422, r.text[:300]
    assert 'id="p1-denoms-error"' in r.text and "第 2 个券种" in r.text
    assert 'id="p1-channels-error"' in r.text and 'aria-invalid="true"' in r.text
    assert 'id="p0-denoms-error"' not in r.text
    assert 'value="12.5"' in r.text and 'value="50×6"' in r.text  # as typed, to correct
    assert KEY.search(r.text).group(1) == key  # the same attempt, corrected below
    assert (_programs(db), _count_audit(db)) == before
    bad_key = dict(_program_data(csrf, key), key="Bad Key")
    r = console.client.post("/programs/new", data=bad_key)
    assert r.status_code == 422 and 'id="f-key-error"' in r.text and "活动代码" in r.text
    r = console.client.post("/programs/new", data=_program_data(  # the window ends first
        csrf, key, until=("2027-03-31", "2026-12-01")))
    assert r.status_code == 422 and 'id="p1-until-error"' in r.text
    assert "第 2 个券种的截止日" in r.text
    console.client.cookies.set("cv_lang", "en")
    r = console.client.post("/programs/new", data=dict(_program_data(csrf, key),
                                                       p_threshold=["1.5", "0"]))
    assert r.status_code == 422 and "product 1: Threshold (yuan)" in r.text
    assert "whole yuan" in r.text
    good = console.client.post("/programs/new", data=_program_data(csrf, key))
    assert good.status_code == 303 and _programs(db) == before[0] + 1


def _count_audit(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.like("program.%"))).scalar_one()


def test_add_a_product_row_writes_nothing(console, db):
    _in(console)
    csrf, key, _ = _new_form(console)
    data = _program_data(csrf, key)
    data["action"] = "add"
    r = console.client.post("/programs/new", data=data)
    assert r.status_code == 200 and 'id="p2-key"' in r.text and _programs(db) == 1
    data["p_remove"] = ["1"]  # the tourism card ticked for removal: gone when saved
    data["action"] = "save"
    r = console.client.post("/programs/new", data=data)
    assert r.status_code == 303
    page = console.client.get("/programs/lvyou-2027")
    assert "旅游年卡" not in page.text and "职工消费券" in page.text


def test_the_same_key_with_another_definition_is_refused(console, db):
    _in(console)
    csrf, key, _ = _new_form(console)
    data = dict(_program_data(csrf, key), key="p2020")  # the world's program, launched
    r = console.client.post("/programs/new", data=data)
    assert r.status_code == 409 and 'id="f-key-error"' in r.text
    assert "idempotency_key_reused" not in r.text or "p2020" in r.text
    assert _programs(db) == 1


def test_edit_before_launch_then_refused_after(console, db):
    from civicvoucher.funds.service import deposit
    from civicvoucher.programs.models import Product, Program
    from civicvoucher.vouchers.issuance import issue

    _in(console)
    csrf, key, _ = _new_form(console)
    assert console.client.post("/programs/new", data=_program_data(csrf, key)).status_code == 303
    page = console.client.get("/programs/lvyou-2027")
    assert 'id="edit-link"' in page.text
    csrf, key, form = _new_form(console, "/programs/lvyou-2027/edit")
    assert 'value="50×6"' in form.text and 'value="2027-03-31"' in form.text  # as stored
    assert 'value="1:online" checked' in form.text and "readonly" in form.text
    data = _program_data(csrf, key, denoms=("100×3", "1.5万"))
    r = console.client.post("/programs/lvyou-2027/edit", data=data)
    assert r.status_code == 303 and r.headers["location"].endswith("saved=updated")
    assert console.client.post("/programs/lvyou-2027/edit", data=data).headers[
        "location"] == r.headers["location"]  # replayed
    with db.session() as s:
        prog = s.execute(select(Program).where(Program.key == "lvyou-2027")).scalar_one()
        v = s.execute(select(Product).where(Product.program_id == prog.id,
                                            Product.key == "voucher")).scalar_one()
        assert list(v.denominations) == [10000] * 3
        assert len(s.execute(select(AuditEntry).where(
            AuditEntry.action == "program.update")).scalars().all()) == 1
    # another key in the body than the page's program: refused by the API's rule
    csrf, key, _ = _new_form(console, "/programs/lvyou-2027/edit")
    r = console.client.post("/programs/lvyou-2027/edit",
                            data=dict(_program_data(csrf, key), key="p2020"))
    assert r.status_code == 422 and 'id="f-key-error"' in r.text
    # launched: the world's program has issuances
    launched = console.client.get("/programs/p2020/edit")
    assert launched.status_code == 200 and 'id="launched"' in launched.text
    assert 'href="/programs/p2020#extend-h"' in launched.text
    assert 'action="/programs/p2020/edit"' not in launched.text
    assert 'id="edit-closed"' in console.client.get("/programs/p2020").text
    with db.session() as s:  # launch lvyou-2027 too, then the form's POST is refused
        deposit(s, org_id=console.aw.w.union_b, amount_fen=10_000_000, source="dues",
                idem_key="t-lvyou")
        issue(s, union_id=console.aw.w.union_b, program="lvyou-2027", idem_key="t-lvyou-i")
        s.commit()
    csrf = console.csrf("/programs/p2020")
    r = console.client.post("/programs/lvyou-2027/edit", data=_program_data(
        csrf, "k-after", denoms=("300", "1.5万")))
    assert r.status_code == 409 and "program_launched" in r.text and 'id="launched"' in r.text


@pytest.mark.parametrize("role", [Role.COUNTY_ADMIN, Role.CITY_ADMIN, Role.AUDITOR])
def test_only_the_province_admin_creates_or_edits(console, db, role):
    _in(console, role)
    assert console.client.get("/programs/new").status_code == 403
    assert console.client.get("/programs/p2020/edit").status_code == 403
    assert 'href="/programs/new"' not in console.client.get("/programs").text
    csrf = console.csrf("/programs")
    r = console.client.post("/programs/new", data=_program_data(csrf, "k-1"))
    assert r.status_code == 403
    r = console.client.post("/programs/p2020/edit", data=_program_data(csrf, "k-2"))
    assert r.status_code == 403
    assert _programs(db) == 1
    with db.session() as s:
        refused = s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "access.refused")).scalar_one()
    assert refused >= 2


def test_a_post_without_the_csrf_token_is_refused(console, db):
    _in(console)
    _, key, _ = _new_form(console)
    data = _program_data("", key)
    del data["csrf_token"]
    r = console.client.post("/programs/new", data=data)
    assert r.status_code == 403 and "csrf_failed" in r.text
    assert _programs(db) == 1


def test_the_form_in_both_languages(console):
    _in(console)
    console.client.cookies.set("cv_lang", "zh")
    zh = console.client.get("/programs/new")
    assert "新建活动" in zh.text and "券种 1" in zh.text and "日用百货" in zh.text
    console.client.cookies.set("cv_lang", "en")
    en = console.client.get("/programs/new")
    assert "New program" in en.text and "Product 1" in en.text and "daily goods" in en.text
