"""Funds in the console: balances per organisation (own fund, subtree total, children paged),
deposits through the API's create_deposit (posted at once or a pending request, once per
attempt key, audited as the API audits them), transfers and a distribution down from a
federation (an overdraw refused with nothing written), and the approval queue (a second
person approves; the maker cannot); roles and scope refused by URL; CSRF; both languages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.funds.models import DepositRequest
from civicvoucher.funds.service import deposit, fund_balance
from civicvoucher.ledger.models import Transfer

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def _in(console, role=Role.COUNTY_ADMIN):
    console.client.cookies.clear()  # a second person: a browser of their own
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console


def _csrf(console, path="/funds"):
    r = console.client.get(path)
    return CSRF.findall(r.text)[-1]


def _form(console, org_id, action="deposit"):
    """The page's CSRF token and the attempt key of its ``action`` form (each form has its
    own)."""
    r = console.client.get(f"/funds/orgs/{org_id}")
    assert r.status_code == 200, r.text[:300]
    form = r.text.split(f'action="/funds/orgs/{org_id}/{action}"')[1].split("</form>")[0]
    return CSRF.findall(r.text)[-1], KEY.search(form).group(1)


def _post(console, org_id, action, **data):
    csrf, key = _form(console, org_id, action)
    data.setdefault("csrf_token", csrf)
    data.setdefault("idempotency_key", key)
    return console.client.post(f"/funds/orgs/{org_id}/{action}", data=data)


def _count(db, model, *where) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _balance(db, org_id) -> int:
    with db.session() as s:
        return fund_balance(s, org_id)


def _audits(db, action):
    with db.session() as s:
        return s.execute(select(AuditEntry).where(AuditEntry.action == action)
                         .order_by(AuditEntry.seq)).scalars().all()


def _seed(db, org_id, fen, key):
    with db.session() as s:
        deposit(s, org_id=org_id, amount_fen=fen, source="dues", idem_key=key)
        s.commit()


def test_balances_of_the_subtree_with_children(console, db):
    w = console.aw.w
    _seed(db, w.county_a, 500_00, "t-county")
    _in(console, Role.CITY_ADMIN)
    r = console.client.get("/funds")
    assert r.status_code == 200, r.text[:500]
    assert "太原市总工会" in r.text and f'href="/funds/orgs/{w.county_a}"' in r.text
    total = sum(_balance(db, o) for o in (w.city, w.county_a, w.county_b, w.union_a,
                                          w.union_b, w.union_c))
    subtree = re.search(r'id="subtree-balance">([^<]+)<', r.text).group(1)
    assert subtree == f"¥{total / 100:,.2f}"
    d = console.client.get(f"/funds/orgs/{w.county_a}")
    assert d.status_code == 200 and "union A" in d.text and "union B" in d.text
    assert re.search(r'id="own-balance">¥500\.00<', d.text)
    # the path back goes as far as the city admin's scope, not to the province
    assert f'href="/funds/orgs/{w.city}"' in d.text and "山西省总工会" not in d.text
    # a union's page: its movements (the seed deposit and issuance)
    u = console.client.get(f"/funds/orgs/{w.union_a}")
    assert u.status_code == 200 and "¥10,000.00" in u.text and "Recent" not in u.text


def test_children_are_paged(console, db, monkeypatch):
    from civicvoucher.console.pages import fundspage

    monkeypatch.setattr(fundspage, "PAGE_SIZE", 1)
    _in(console, Role.COUNTY_ADMIN)
    w = console.aw.w
    p1 = console.client.get(f"/funds/orgs/{w.county_a}").text
    p2 = console.client.get(f"/funds/orgs/{w.county_a}?page=2").text
    t1, t2 = (p.split('id="kids-h"')[1].split("</table>")[0] for p in (p1, p2))
    assert ">union A</a>" in t1 and "union B" not in t1
    assert ">union B</a>" in t2 and "union A" not in t2
    assert 'rel="next"' in p1 and 'rel="prev"' in p2 and "rel=\"next\"" not in p2


def test_roles_and_scope_refused_by_url(console, db):
    w, aw = console.aw.w, console.aw
    _in(console, Role.COUNTY_ADMIN)
    before = len(_audits(db, "access.refused"))
    other = console.client.get(f"/funds/orgs/{w.county_b}")
    assert other.status_code == 403 and "out_of_scope" in other.text
    assert console.client.get(f"/funds/orgs/{aw.province2}").status_code == 403
    assert console.client.get("/funds/orgs/999999").status_code == 404
    # a deposit into another county by URL: refused, nothing written
    csrf, key = _form(console, w.county_a)
    n = _count(db, Transfer)
    r = console.client.post(f"/funds/orgs/{w.county_b}/deposit", data={
        "csrf_token": csrf, "idempotency_key": key, "amount": "100", "source": "dues",
        "document": "凭证1"})
    assert r.status_code == 403 and _count(db, Transfer) == n
    assert len(_audits(db, "access.refused")) >= before + 3
    # a union admin reads its own fund, cannot transfer
    _in(console, Role.UNION_ADMIN)
    assert console.client.get(f"/funds/orgs/{w.union_a}").status_code == 200
    assert console.client.get(f"/funds/orgs/{w.county_a}").status_code == 403
    r = console.client.post(f"/funds/orgs/{w.union_a}/transfer", data={
        "csrf_token": _csrf(console), "idempotency_key": "k1", "to_org": w.union_a,
        "amount": "1", "document": "x"})
    assert r.status_code == 403
    # an auditor reads, has no deposit form; a cashier has no funds page at all
    _in(console, Role.AUDITOR)
    page = console.client.get("/funds")
    assert page.status_code == 200 and "/deposit" not in page.text
    _in(console, Role.CASHIER)
    assert console.client.get("/funds").status_code == 403


def test_small_dues_post_at_once_and_a_double_submit_replays(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    before, n = _balance(db, w.union_a), _count(db, Transfer)
    csrf, key = _form(console, w.union_a)
    data = {"csrf_token": csrf, "idempotency_key": key, "amount": "1.5万", "source": "dues",
            "document": "会费凭证 2020-07 第3号"}
    r = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data=data)
    assert r.status_code == 303, r.text[:800]
    again = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data=data)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert _balance(db, w.union_a) == before + 15_000_00 and _count(db, Transfer) == n + 1
    page = console.client.get(r.headers["location"])
    assert 'id="outcome"' in page.text and "¥15,000.00" in page.text
    assert "会费凭证 2020-07 第3号" in page.text  # the document, in the movements
    # the same key with another amount (the back button, an edit): refused, a fresh key given
    other = console.client.post(f"/funds/orgs/{w.union_a}/deposit",
                                data={**data, "amount": "16000"})
    assert other.status_code == 409 and 'id="deposit-error"' in other.text
    fresh = other.text.split(f'action="/funds/orgs/{w.union_a}/deposit"')[1]
    assert KEY.search(fresh).group(1) != key and _count(db, Transfer) == n + 1
    audits = _audits(db, "fund.deposit")
    assert len(audits) == 1 and audits[0].actor == f"u-{Role.COUNTY_ADMIN}"
    assert audits[0].detail["amount_fen"] == 15_000_00


def test_field_errors_name_the_field_and_write_nothing(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    n, q = _count(db, Transfer), _count(db, DepositRequest)
    for amount, source, doc, field_id in (("abc", "dues", "x", "d-amount"),
                                          ("0", "dues", "x", "d-amount"),
                                          ("1.234", "dues", "x", "d-amount"),
                                          ("100", "gift", "x", None),
                                          ("100", "dues", "  ", "d-doc"),
                                          ("100", "transfer", "x", "d-from"),
                                          ("999999999999", "dues", "x", "d-amount"),
                                          ("100", "dues", "a\x01b", "d-doc")):
        r = _post(console, w.union_a, "deposit", amount=amount, source=source, document=doc)
        assert r.status_code == 422, (amount, source, r.status_code, r.text[:400])
        assert 'id="deposit-error"' in r.text
        if field_id:
            assert re.search(rf'id="{field_id}"[^>]*aria-invalid="true"', r.text), field_id
    assert (_count(db, Transfer), _count(db, DepositRequest)) == (n, q)
    # in English too
    console.client.cookies.set("cv_lang", "en")
    r = _post(console, w.union_a, "deposit", amount="abc", source="dues", document="x")
    assert "not an amount of yuan" in r.text
    console.client.cookies.set("cv_lang", "zh")
    r = _post(console, w.union_a, "deposit", amount="abc", source="dues", document="x")
    shown = r.text.split('id="deposit-error">')[1].split("</p>")[0]
    assert shown.startswith("金额：") and "not an amount" not in shown
    # a missing attempt key
    r = _post(console, w.union_a, "deposit", amount="1", source="dues", document="x",
              idempotency_key="")
    assert r.status_code == 422 and "idempotency_key_missing" in r.text


def test_each_form_has_its_own_attempt_key(console):
    _in(console, Role.COUNTY_ADMIN)
    keys = KEY.findall(console.client.get(f"/funds/orgs/{console.aw.w.county_a}").text)
    assert len(keys) == 3 and len(set(keys)) == 3


def test_post_without_csrf_is_refused(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    n = _count(db, Transfer)
    r = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data={
        "idempotency_key": "k-nocsrf", "amount": "100", "source": "dues", "document": "x"})
    assert r.status_code == 403 and "csrf_failed" in r.text
    r = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data={
        "csrf_token": "forged", "idempotency_key": "k-nocsrf", "amount": "100",
        "source": "dues", "document": "x"})
    assert r.status_code == 403 and _count(db, Transfer) == n


def test_fiscal_deposit_waits_and_another_admin_approves(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    before = _balance(db, w.union_a)
    csrf, key = _form(console, w.union_a)
    data = {"csrf_token": csrf, "idempotency_key": key, "amount": "20000", "source": "fiscal",
            "document": "晋财社〔2020〕12号"}
    r = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data=data)
    assert r.status_code == 303 and "requested=" in r.headers["location"]
    again = console.client.post(f"/funds/orgs/{w.union_a}/deposit", data=data)  # a double submit
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    page = console.client.get(r.headers["location"])
    assert "等待第二人批准，资金尚未划转" in page.text.split('id="outcome"')[1][:600]
    assert _balance(db, w.union_a) == before
    with db.session() as s:
        req = s.execute(select(DepositRequest)).scalars().one()
        assert (req.status, req.memo, req.amount_fen) == ("pending", "晋财社〔2020〕12号",
                                                          20_000_00)
    assert len(_audits(db, "fund.deposit.request")) == 1
    # the maker sees it waiting for someone else, and cannot approve it by URL
    q = console.client.get("/funds/requests")
    assert q.status_code == 200 and f'action="/funds/requests/{req.id}/approve"' not in q.text
    refused_before = len(_audits(db, "access.refused"))
    self_ = console.client.post(f"/funds/requests/{req.id}/approve",
                                data={"csrf_token": _csrf(console, "/funds/requests")})
    assert self_.status_code == 403 and "self_approval_refused" in self_.text
    assert 'id="decide-error"' in self_.text
    assert len(_audits(db, "access.refused")) == refused_before + 1
    assert _balance(db, w.union_a) == before
    # the city admin approves; a second click answers the first
    _in(console, Role.CITY_ADMIN)
    q = console.client.get("/funds/requests")
    assert f'action="/funds/requests/{req.id}/approve"' in q.text and "晋财社" in q.text
    csrf = _csrf(console, "/funds/requests")
    a = console.client.post(f"/funds/requests/{req.id}/approve", data={"csrf_token": csrf})
    assert a.status_code == 303, a.text[:500]
    b = console.client.post(f"/funds/requests/{req.id}/approve", data={"csrf_token": csrf})
    assert b.status_code == 303 and b.headers["location"] == a.headers["location"]
    assert _balance(db, w.union_a) == before + 20_000_00
    approved = _audits(db, "fund.deposit.approve")
    assert len(approved) == 1 and approved[0].actor == f"u-{Role.CITY_ADMIN}"
    assert approved[0].detail["maker_name"] == f"u-{Role.COUNTY_ADMIN}"
    done = console.client.get(a.headers["location"])
    assert 'id="done"' in done.text
    assert f"¥{(before + 20_000_00) / 100:,.2f}" in done.text.split('id="done"')[1][:400]
    # rejecting it now is an invalid transition, shown on the page
    r = console.client.post(f"/funds/requests/{req.id}/reject",
                            data={"csrf_token": csrf, "note": "重复"})
    assert r.status_code == 409 and "invalid_transition" in r.text


def test_reject_needs_a_note_and_moves_nothing(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    _post(console, w.union_b, "deposit", amount="300000", source="dues", document="会费")
    with db.session() as s:
        req = s.execute(select(DepositRequest)).scalars().one()
        assert req.reason == "over_threshold"
    _in(console, Role.PROVINCE_ADMIN)
    csrf = _csrf(console, "/funds/requests")
    r = console.client.post(f"/funds/requests/{req.id}/reject", data={"csrf_token": csrf,
                                                                      "note": " "})
    assert r.status_code == 422 and _count(db, DepositRequest,
                                           DepositRequest.status == "pending") == 1
    r = console.client.post(f"/funds/requests/{req.id}/reject",
                            data={"csrf_token": csrf, "note": "凭证不全"})
    assert r.status_code == 303
    assert _balance(db, w.union_b) == 0
    rej = _audits(db, "fund.deposit.reject")
    assert len(rej) == 1 and rej[0].detail["note"] == "凭证不全"
    assert "凭证不全" in console.client.get("/funds/requests").text


def test_a_union_admin_may_not_decide(console, db):
    w = console.aw.w
    _in(console, Role.COUNTY_ADMIN)
    _post(console, w.union_a, "deposit", amount="1", source="fiscal", document="文")
    with db.session() as s:
        rid = s.execute(select(DepositRequest.id)).scalar_one()
    _in(console, Role.UNION_ADMIN)
    q = console.client.get("/funds/requests")
    assert q.status_code == 200 and "/approve" not in q.text
    r = console.client.post(f"/funds/requests/{rid}/approve",
                            data={"csrf_token": _csrf(console, "/funds/requests")})
    assert r.status_code == 403


def test_transfer_down_and_overdraw_refused(console, db):
    w = console.aw.w
    _seed(db, w.county_a, 1_000_00, "t-county-1000")
    _in(console, Role.COUNTY_ADMIN)
    page = console.client.get(f"/funds/orgs/{w.county_a}")
    assert f'action="/funds/orgs/{w.county_a}/transfer"' in page.text
    n, q = _count(db, Transfer), _count(db, DepositRequest)
    # more than the county's fund holds: refused on the page, nothing written
    r = _post(console, w.county_a, "transfer", to_org=w.union_b, amount="1,000.01",
              document="小工发〔2020〕3号")
    assert r.status_code == 409 and "insufficient_funds" in r.text
    assert re.search(r'id="t-amount"[^>]*aria-invalid="true"', r.text)
    assert (_count(db, Transfer), _count(db, DepositRequest)) == (n, q)
    # a union not directly under it: refused
    r = _post(console, w.county_a, "transfer", to_org=w.union_c, amount="1", document="x")
    assert r.status_code == 422 and _count(db, DepositRequest) == q
    # within the balance: a request (a transfer always waits)
    r = _post(console, w.county_a, "transfer", to_org=w.union_b, amount="600",
              document="小工发〔2020〕3号")
    assert r.status_code == 303 and "requested=" in r.headers["location"]
    with db.session() as s:
        req = s.execute(select(DepositRequest)).scalars().one()
        assert (req.source, req.from_org_id, req.org_id) == ("transfer", w.county_a, w.union_b)
    # the county spends meanwhile (another transfer, posted by the system): the approval
    # would overdraw; the service refuses it, the request stays pending, nothing moves
    with db.session() as s:
        deposit(s, org_id=w.union_a, amount_fen=500_00, source="transfer",
                from_org_id=w.county_a, idem_key="t-spend")
        s.commit()
    _in(console, Role.CITY_ADMIN)
    n = _count(db, Transfer)
    r = console.client.post(f"/funds/requests/{req.id}/approve",
                            data={"csrf_token": _csrf(console, "/funds/requests")})
    assert r.status_code == 409 and "insufficient_funds" in r.text
    assert _count(db, Transfer) == n and _balance(db, w.county_a) == 500_00
    assert _count(db, DepositRequest, DepositRequest.status == "pending") == 1
    assert _audits(db, "fund.deposit.approve") == []


def test_distribute_to_every_child_once(console, db):
    w = console.aw.w
    _seed(db, w.county_a, 1_000_00, "t-county-dist")
    _in(console, Role.COUNTY_ADMIN)
    csrf, key = _form(console, w.county_a, "distribute")
    data = {"csrf_token": csrf, "idempotency_key": key, "amount": "400",
            "document": "小工发〔2020〕9号", "children": "2"}
    # too much for both (2 × 600 > 1000): nothing requested
    r = console.client.post(f"/funds/orgs/{w.county_a}/distribute",
                            data={**data, "amount": "600"})
    assert r.status_code == 409 and _count(db, DepositRequest) == 0
    r = console.client.post(f"/funds/orgs/{w.county_a}/distribute", data=data)
    assert r.status_code == 303 and r.headers["location"].endswith("distributed=2")
    again = console.client.post(f"/funds/orgs/{w.county_a}/distribute", data=data)
    assert again.status_code == 303
    with db.session() as s:
        reqs = s.execute(select(DepositRequest).order_by(DepositRequest.org_id)).scalars().all()
    assert [(x.org_id, x.amount_fen) for x in reqs] == [(w.union_a, 400_00), (w.union_b, 400_00)]
    assert len(_audits(db, "fund.deposit.request")) == 2
    # a stale page (the list it showed differs): refused, nothing more
    r = console.client.post(f"/funds/orgs/{w.county_a}/distribute",
                            data={**data, "idempotency_key": "another", "children": "3"})
    assert r.status_code == 422 and _count(db, DepositRequest) == 2
    # approved by the city admin: both unions get the money, the county pays
    _in(console, Role.CITY_ADMIN)
    csrf = _csrf(console, "/funds/requests")
    for x in reqs:
        assert console.client.post(f"/funds/requests/{x.id}/approve",
                                   data={"csrf_token": csrf}).status_code == 303
    assert _balance(db, w.county_a) == 200_00


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_both_languages(console, lang):
    _in(console, Role.COUNTY_ADMIN)
    console.client.cookies.set("cv_lang", lang)
    r = console.client.get("/funds")
    q = console.client.get("/funds/requests")
    assert r.status_code == q.status_code == 200
    if lang == "zh":
        assert "资金" in r.text and "工会经费" in r.text and "入账审批" in q.text
    else:
        assert "Funds of" in r.text and "Union dues" in r.text and "Deposit approvals" in q.text


def test_a_request_outside_the_scope_is_refused_by_url(console, db):
    w = console.aw.w
    _in(console, Role.CITY_ADMIN)
    _post(console, w.union_c, "deposit", amount="100", source="fiscal", document="迎泽")
    with db.session() as s:
        rid = s.execute(select(DepositRequest.id)).scalar_one()
    _in(console, Role.COUNTY_ADMIN)  # 小店: union C is 迎泽's
    assert f"request-{rid}" not in console.client.get("/funds/requests").text
    before = len(_audits(db, "access.refused"))
    r = console.client.post(f"/funds/requests/{rid}/approve",
                            data={"csrf_token": _csrf(console, "/funds/requests")})
    assert r.status_code == 403 and "out_of_scope" in r.text
    assert len(_audits(db, "access.refused")) == before + 1
    assert _count(db, DepositRequest, DepositRequest.status == "pending") == 1
