"""Maker-checker deposits through the API (issue 9, item 5; docs/deposits.md).

A union admin used to deposit up to 10^13 fen of "fiscal" money into its own union per call.
Now fiscal money, transfers, and dues above CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE yuan become a
pending request (202, no money moves) until an admin of a federation above approves it.
"""

from __future__ import annotations

from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.auth.tokens import issue_token
from civicvoucher.funds.service import fund_balance
from tests.api.conftest import books_ok


def _balance(api, org: int) -> int:
    with api.db.session() as s:
        return fund_balance(s, org)


def _deposit(api, role, org, amount, source="dues", **kw):
    return api.call("POST", "/funds/deposits", role, token=kw.pop("token", None),
                    json={"org_id": org, "amount_fen": amount, "source": source, **kw})


def _token(api, username: str, role: str, org: int) -> str:
    with api.db.session() as s:
        u = create_user(s, username=username, role=role, password=None, org_id=org).user
        return issue_token(s, user_id=u.id, kind="api", ttl=None)[0]


def _approve(api, rid: int, role=None, token=None, key="new"):
    return api.call("POST", f"/funds/deposit-requests/{rid}/approve", role, token=token, key=key)


def test_fiscal_and_over_threshold_deposits_wait_for_a_checker(api):
    a = api.w.union_a
    before = _balance(api, a)
    # the attack: 10^13 fen of "fiscal" money into the admin's own union
    r = _deposit(api, Role.UNION_ADMIN, a, 10**13, "fiscal")
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["reason"], r.json()["transfer_id"]) == (
        "pending", "fiscal", None)
    # dues above ¥100,000 (the default threshold) wait too; at or below go through at once
    big = _deposit(api, Role.UNION_ADMIN, a, 100_000_01)
    assert (big.status_code, big.json()["reason"]) == (202, "over_threshold")
    small = _deposit(api, Role.UNION_ADMIN, a, 100_000_00)
    assert small.status_code == 201 and small.json()["transfer_id"]
    assert _balance(api, a) == before + 100_000_00  # nothing from the two requests
    # a retry of the request with its key answers the same request
    key = "fiscal-retry-1"
    first = api.call("POST", "/funds/deposits", Role.UNION_ADMIN, key=key,
                     json={"org_id": a, "amount_fen": 500, "source": "fiscal"})
    again = api.call("POST", "/funds/deposits", Role.UNION_ADMIN, key=key,
                     json={"org_id": a, "amount_fen": 500, "source": "fiscal"})
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    # the checker (a county admin above union A) sees them pending
    listed = api.call("GET", "/funds/deposit-requests", Role.COUNTY_ADMIN).json()["items"]
    assert [q["reason"] for q in listed] == ["fiscal", "over_threshold", "fiscal"]
    assert api.call("GET", f"/funds/deposit-requests/{r.json()['id']}",
                    Role.AUDITOR).status_code == 200
    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "fund.deposit.request")).scalar_one() == 3


def test_the_threshold_is_configurable_in_yuan(api, monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE", "5")
    assert _deposit(api, Role.UNION_ADMIN, api.w.union_a, 500).status_code == 201
    assert _deposit(api, Role.UNION_ADMIN, api.w.union_a, 501).status_code == 202
    monkeypatch.setenv("CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE", "five")
    r = _deposit(api, Role.UNION_ADMIN, api.w.union_a, 501)
    assert (r.status_code, r.json()["field"]) == (422, "CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE")


def test_a_checker_of_the_level_above_approves_once(api):
    a = api.w.union_a
    before = _balance(api, a)
    rid = _deposit(api, Role.UNION_ADMIN, a, 700_00, "fiscal").json()["id"]
    # the union admin has no level below it: it may not approve at all
    r = _approve(api, rid, Role.UNION_ADMIN)
    assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")
    # a county admin outside (迎泽) does not see it
    other = _token(api, "county-b-admin", "county_admin", api.w.county_b)
    r = _approve(api, rid, token=other)
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope")
    assert _balance(api, a) == before
    ok = _approve(api, rid, Role.COUNTY_ADMIN, key="approve-1")
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (body["status"], body["checker_name"], body["maker_name"]) == (
        "approved", "u-county_admin", "u-union_admin")
    assert body["transfer_id"] and body["balance_fen"] == before + 700_00
    # approving again: the same key, another key, another checker: the money moved once
    same = _approve(api, rid, Role.COUNTY_ADMIN, key="approve-1")
    assert same.status_code == 200 and same.headers.get("idempotent-replayed") == "true"
    assert _approve(api, rid, Role.COUNTY_ADMIN, key="approve-2").json()["status"] == "approved"
    assert _approve(api, rid, Role.PROVINCE_ADMIN).json()["checker_name"] == "u-county_admin"
    assert _balance(api, a) == before + 700_00
    with api.db.session() as s:
        entries = s.execute(select(AuditEntry.actor, AuditEntry.detail).where(
            AuditEntry.action == "fund.deposit.approve")).all()
    assert [(actor, d["maker_name"], d["transfer_id"]) for actor, d in entries] == [
        ("u-county_admin", "u-union_admin", body["transfer_id"])]
    books_ok(api.db)


def test_self_approval_and_checkers_below_the_maker_are_refused(api):
    a = api.w.union_a
    # a county admin deposits fiscal money into one of its unions: it may not approve itself
    rid = _deposit(api, Role.COUNTY_ADMIN, a, 300_00, "fiscal").json()["id"]
    r = _approve(api, rid, Role.COUNTY_ADMIN)
    assert (r.status_code, r.json()["code"]) == (403, "self_approval_refused")
    r = api.call("POST", f"/funds/deposit-requests/{rid}/reject", Role.COUNTY_ADMIN)
    assert (r.status_code, r.json()["code"]) == (403, "self_approval_refused")
    # the province deposits into union A: a county admin is below the maker
    rid2 = _deposit(api, Role.PROVINCE_ADMIN, a, 300_00, "fiscal").json()["id"]
    r = _approve(api, rid2, Role.COUNTY_ADMIN)
    assert (r.status_code, r.json()["code"]) == (403, "approval_not_allowed")
    assert _approve(api, rid2, Role.PROVINCE_ADMIN).json()["code"] == "self_approval_refused"
    second = _token(api, "province-admin-2", "province_admin", api.w.province)
    assert _approve(api, rid2, token=second).status_code == 200
    # the county's request is approved by the city above it
    assert _approve(api, rid, Role.CITY_ADMIN).json()["status"] == "approved"


def test_the_provinces_own_fiscal_deposit_needs_a_second_province_admin(api):
    p = api.w.province
    before = _balance(api, p)
    rid = _deposit(api, Role.PROVINCE_ADMIN, p, 5_000_000_00, "fiscal").json()["id"]
    assert _approve(api, rid, Role.PROVINCE_ADMIN).json()["code"] == "self_approval_refused"
    city_admin = _approve(api, rid, Role.CITY_ADMIN)  # below the province: not in scope
    assert (city_admin.status_code, city_admin.json()["code"]) == (403, "out_of_scope")
    second = _token(api, "province-admin-2", "province_admin", p)
    ok = _approve(api, rid, token=second)
    assert ok.status_code == 200 and _balance(api, p) == before + 5_000_000_00
    # the city's own fiscal deposit: the province approves, another city admin may not
    # (the city is not strictly above itself)
    rid = _deposit(api, Role.CITY_ADMIN, api.w.city, 100, "fiscal").json()["id"]
    city2 = _token(api, "city-admin-2", "city_admin", api.w.city)
    assert _approve(api, rid, token=city2).json()["code"] == "approval_not_allowed"
    assert _approve(api, rid, Role.PROVINCE_ADMIN).status_code == 200


def test_rejected_requests_move_nothing_and_transfers_wait_for_funds(api):
    a = api.w.union_a
    before = _balance(api, a)
    rid = _deposit(api, Role.UNION_ADMIN, a, 900_00, "fiscal").json()["id"]
    r = api.call("POST", f"/funds/deposit-requests/{rid}/reject", Role.COUNTY_ADMIN,
                 json={"reason": "没有拨款文件"})
    assert (r.status_code, r.json()["status"], r.json()["note"]) == (200, "rejected", "没有拨款文件")
    assert api.call("POST", f"/funds/deposit-requests/{rid}/reject",
                    Role.CITY_ADMIN).json()["checker_name"] == "u-county_admin"
    r = _approve(api, rid, Role.COUNTY_ADMIN)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    assert _balance(api, a) == before
    # a transfer from the city's fund always waits; approving it with the city's fund empty
    # fails and leaves it pending; once the city is funded it goes through
    t = _deposit(api, Role.CITY_ADMIN, a, 400_00, "transfer", from_org_id=api.w.city)
    assert (t.status_code, t.json()["reason"]) == (202, "transfer")
    tid = t.json()["id"]
    r = _approve(api, tid, Role.PROVINCE_ADMIN)
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_funds"), r.text
    assert api.call("GET", f"/funds/deposit-requests/{tid}",
                    Role.CITY_ADMIN).json()["status"] == "pending"
    assert _deposit(api, Role.CITY_ADMIN, api.w.city, 500_00).status_code == 201
    # a county admin is below the paying city: not its checker
    assert _approve(api, tid, Role.COUNTY_ADMIN).json()["code"] == "approval_not_allowed"
    assert _approve(api, tid, Role.PROVINCE_ADMIN).status_code == 200
    assert (_balance(api, a), _balance(api, api.w.city)) == (before + 400_00, 100_00)
    books_ok(api.db)
    from civicvoucher.funds.models import DepositRequest

    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(DepositRequest)).scalar_one() == 2
