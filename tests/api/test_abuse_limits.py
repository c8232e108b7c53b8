"""Login and typed-code limits: wrong passwords lock the account for a while from the address
that sent them (and say so in the audit log), never from elsewhere; wrong codes lock the
cashier out; the right password is refused from the locked address. (More in
test_login_limits.py and test_code_limits.py.)"""

from __future__ import annotations

from sqlalchemy import select

from civicvoucher.api.app import create_app
from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from tests.world import SECRET


def test_wrong_passwords_lock_the_account_from_that_address_and_are_audited(api):
    """Changed on purpose (issue 9): the lock used to hold the account for everyone; now it
    holds the address that sent the wrong passwords, and the owner elsewhere logs in."""
    from fastapi.testclient import TestClient

    with api.db.session() as s:
        uid = create_user(s, username="clerk", role="county_admin", password="right password 1",
                          org_id=api.w.county_a).user.id
    ok = api.call("POST", "/auth/login", key=None,
                  json={"username": "clerk", "password": "right password 1"})
    assert ok.status_code == 200
    me = api.call("GET", "/auth/me", token=ok.json()["access_token"])
    assert me.json()["role"] == "county_admin"
    codes = [api.call("POST", "/auth/login", key=None,
                      json={"username": "clerk", "password": f"guess {i}"}).json()["code"]
             for i in range(6)]
    assert codes == ["login_failed"] * 5 + ["locked_out"]
    right = api.call("POST", "/auth/login", key=None,
                     json={"username": "clerk", "password": "right password 1"})
    assert (right.status_code, right.json()["code"]) == (429, "locked_out")
    assert int(right.headers["Retry-After"]) > 0
    elsewhere = TestClient(api.client.app, client=("198.51.100.20", 50000))
    assert elsewhere.post("/api/v1/auth/login", json={
        "username": "clerk", "password": "right password 1"}).status_code == 200
    with api.db.session() as s:
        refused = s.execute(select(AuditEntry.target, AuditEntry.actor, AuditEntry.detail).where(
            AuditEntry.action == "auth.login", AuditEntry.outcome == "refused")).all()
    # the five wrong passwords, the fifth locking; refusals while locked are not one entry each
    assert len(refused) == 5 and refused[4].detail["locked"] is True
    # an attempt is nobody's: the account is the target, the actor anonymous
    assert {(r.target, r.actor) for r in refused} == {(f"user:{uid}", "anonymous")}


def test_unknown_codes_lock_the_cashier_out(api):
    from fastapi.testclient import TestClient

    app = create_app(api.db, secret_key=SECRET, limits=Limits(code_failures_to_lock=3))
    api.client.close()
    api.client = TestClient(app, raise_server_exceptions=False)
    for i in range(3):
        r = api.call("POST", "/vouchers/lookup", Role.CASHIER, headers={"X-Terminal-Id": "T1"},
                     json={"code": f"ZZZZ{i}ZZZZ"})
        assert r.json()["code"] == "voucher_not_found"
    r = api.call("POST", "/vouchers/lookup", Role.CASHIER, json={"code": api.codes_in[1]})
    assert (r.status_code, r.json()["code"]) == (429, "locked_out")
    # the lock is per cashier account and per terminal: a colleague at another till goes on
    assert api.call("POST", "/vouchers/lookup", Role.MERCHANT_ADMIN,
                    json={"code": api.codes_in[1]}).status_code == 200


def test_guessing_past_the_ip_limit_does_not_grow_the_audit_log(api):
    """Eight guesses at made-up usernames from one IP whose limit is two: the two within the
    limit name no account (counted, not logged one by one); crossing the limit is logged
    once; the refusals after it are not."""
    from fastapi.testclient import TestClient

    app = create_app(api.db, secret_key=SECRET, limits=Limits(login_per_ip=2))
    api.client.close()
    api.client = TestClient(app, raise_server_exceptions=False)
    codes = [api.call("POST", "/auth/login", key=None,
                      json={"username": f"ghost{i}", "password": "whatever"}).json()["code"]
             for i in range(8)]
    assert codes == ["login_failed"] * 2 + ["rate_limited"] * 6
    with api.db.session() as s:
        refused = s.execute(select(AuditEntry.detail).where(
            AuditEntry.action == "auth.login", AuditEntry.outcome == "refused")).scalars().all()
    assert [(d["code"], d.get("bucket")) for d in refused] == [("rate_limited",
                                                                "login:ip:testclient")]
