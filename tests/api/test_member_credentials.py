"""A member's credential is the member's alone (issue 9, item 5).

The attack: a union admin created a member login with a password of its choosing, logged in
as the member, fetched a QR payload, and a cashier redeemed it. Now an admin may only invite
(a one-time code); the member sets the password with ``POST /auth/activate``; any member
credential the member did not set is refused by login and by token authentication.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.errors import RateLimited, Unauthenticated
from civicvoucher.auth.models import ApiToken, ApiUser
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.auth.tokens import issue_token, token_hash
from civicvoucher.core import clock
from civicvoucher.members.models import Member
from civicvoucher.members.service import change_member
from tests.world import SECRET, T0

PASSWORD = "the member's own 1"


def _second_member(api) -> int:
    with api.db.session() as s:
        return s.execute(select(Member.id).where(Member.union_id == api.w.union_a)
                         .order_by(Member.id).offset(1)).scalars().first()


def _invite_new(api, name: str = "m-new", **extra):
    r = api.call("POST", "/auth/users", Role.UNION_ADMIN,
                 json={"username": name, "role": "member", "member_id": _second_member(api),
                       **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _activate(api, code: str, password: str = PASSWORD, **who):
    who = who or {"username": "m-new"}
    return api.call("POST", "/auth/activate", key=None,
                    json={**who, "code": code, "password": password})


def _login(api, username: str, password: str):
    return api.call("POST", "/auth/login", key=None,
                    json={"username": username, "password": password})


def _count(api, model, *where) -> int:
    with api.db.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_an_admin_creating_a_member_with_a_password_is_a_400_naming_the_field(api):
    n = _count(api, ApiUser)
    for caller in (Role.UNION_ADMIN, Role.COUNTY_ADMIN, Role.PROVINCE_ADMIN):
        r = api.call("POST", "/auth/users", caller,
                     json={"username": f"m-{caller}", "role": "member",
                           "member_id": _second_member(api), "password": "chosen by admin 1"})
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            400, "member_password_not_allowed", "password"), r.text
    assert _count(api, ApiUser) == n
    from civicvoucher.auth import credentials

    with api.db.session() as s, pytest.raises(credentials.MemberPasswordRefused):
        create_user(s, username="m-svc", role="member", member_id=_second_member(api),
                    password="chosen by admin 1")


def test_the_attack_path_is_refused_at_every_step(api):
    """Admin-created member → login → QR payload → redemption: no step works for the admin."""
    # 1. the admin picks the member's password: refused, nothing created
    r = api.call("POST", "/auth/users", Role.UNION_ADMIN,
                 json={"username": "m-new", "role": "member", "member_id": _second_member(api),
                       "password": "chosen by admin 1"})
    assert r.status_code == 400, r.text
    assert _login(api, "m-new", "chosen by admin 1").status_code == 401
    # 2. created without one, there is no password to log in with, whatever the admin guesses
    made = _invite_new(api)
    uid = made["id"]
    assert _login(api, "m-new", "chosen by admin 1").status_code == 401
    # 3. no token can be had for it: not from login's last step or the CLI's token create,
    #    and a token row slipped in by hand does not authenticate
    with api.db.session() as s:
        assert s.get(ApiUser, uid).password_hash is None
        with pytest.raises(Unauthenticated):
            issue_token(s, user_id=uid, kind="access")
        s.add(ApiToken(user_id=uid, kind="api", token_hash=token_hash("cvk_by-hand"),
                       prefix="cvk_by-hand", created_at=T0))
    # 4. so no QR payload for a cashier to redeem
    vid = api.voucher_ids_in[1]
    r = api.call("GET", f"/me/vouchers/{vid}/qr", token="cvk_by-hand")
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated"), r.text
    # members cannot mint API tokens for an integration (an admin's way around the password)
    r = api.call("POST", "/auth/tokens", Role.MEMBER, json={"name": "x"})
    assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")


def test_activation_sets_the_members_own_password_once(api):
    made = _invite_new(api)
    code = made["activation_code"]
    assert len(code) == 11 and code[5] == "-" and made["activation_expires_at"].startswith(
        "2020-05-08T")  # 7 days, shown in local time
    with api.db.session() as s:  # never in clear at rest: only its HMAC
        u = s.get(ApiUser, made["id"])
        assert code.replace("-", "") not in repr(
            [u.activation_hash, u.username, u.password_hash]) and len(u.activation_hash) == 64
        detail = s.execute(select(AuditEntry.detail).where(AuditEntry.action == "user.create")
                           .order_by(AuditEntry.seq.desc())).scalars().first()
        assert detail["activation"]["delivery"] == "slip" and code not in str(detail)
    # typed loosely: lower case, spaces instead of the dash, O for 0 and so on
    typed = code.lower().replace("-", " ")
    ok = _activate(api, typed)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"user_id": made["id"], "username": "m-new",
                         "member_id": _second_member(api), "activated": True}
    # the member logs in with their own password and can pay
    token = _login(api, "m-new", PASSWORD).json()["access_token"]
    mine = api.call("GET", "/me/vouchers", token=token).json()["items"]
    assert api.call("GET", f"/me/vouchers/{mine[0]['id']}/qr", token=token).status_code == 200
    # the same code again with the same password: the same answer (a lost reply retried)
    again = _activate(api, code)
    assert again.status_code == 200 and again.json() == ok.json()
    # with another password: refused, the member's password stands
    other = _activate(api, code, "another password 2")
    assert (other.status_code, other.json()["code"]) == (401, "activation_failed")
    assert _login(api, "m-new", "another password 2").status_code == 401
    assert _login(api, "m-new", PASSWORD).status_code == 200
    assert _count(api, AuditEntry, AuditEntry.action == "auth.activate",
                  AuditEntry.outcome == "ok") == 1


def test_activation_by_member_id(api):
    made = _invite_new(api)
    r = _activate(api, made["activation_code"], member_id=_second_member(api))
    assert r.status_code == 200, r.text
    assert _login(api, "m-new", PASSWORD).status_code == 200


def test_wrong_expired_and_reused_codes_are_refused(api):
    made = _invite_new(api)
    code = made["activation_code"]
    wrong = "ZZZZZ-ZZZZZ" if code != "ZZZZZ-ZZZZZ" else "YYYYY-YYYYY"
    for bad in (wrong, "short", code[:-1] + "U"):
        r = _activate(api, bad)
        assert (r.status_code, r.json()["code"]) == (401, "activation_failed"), r.text
    # the same code for another member user (or an unknown name) does nothing
    assert _activate(api, code, username="u-member").status_code == 401
    assert _activate(api, code, username="nobody").status_code == 401
    # expired: 7 days on
    clock.set_clock(lambda: T0 + timedelta(days=7, seconds=1))
    r = _activate(api, code)
    assert (r.status_code, r.json()["code"]) == (401, "activation_failed")
    clock.set_clock(lambda: T0 + timedelta(days=6))
    assert _activate(api, code).status_code == 200
    with api.db.session() as s:
        assert s.get(ApiUser, made["id"]).credential_origin == "self"


def test_activation_is_rate_limited_per_ip_and_per_member_without_locking_the_member(api):
    from civicvoucher.auth import credentials

    made = _invite_new(api)
    key = credentials.activation_key(SECRET)

    def attempt(code: str, ip: str):
        return credentials.activate(api.db, code=code, password=PASSWORD, ip=ip, key=key,
                                    username="m-new")

    # 10 wrong codes lock the guessing IP (and only it)
    for _ in range(credentials.IP_FAILURES_TO_LOCK):
        with pytest.raises(credentials.ActivationFailed):
            attempt("ZZZZZZZZZZ", "203.0.113.9")
    with pytest.raises(RateLimited) as locked:
        attempt(made["activation_code"], "203.0.113.9")
    assert locked.value.code == "locked_out"
    # per member: at most PER_MEMBER tries a minute (those 10 were), from anywhere; no lock
    assert credentials.PER_MEMBER == credentials.IP_FAILURES_TO_LOCK
    with pytest.raises(RateLimited) as limited:
        attempt(made["activation_code"], "192.0.2.1")
    assert limited.value.code == "rate_limited"
    # a minute later the real member, from their own address, activates
    clock.set_clock(lambda: T0 + timedelta(minutes=1, seconds=1))
    done = attempt(made["activation_code"], "192.0.2.200")
    assert done.user_id == made["id"] and not done.replayed
    # the API answers the limit as 429 problem+json
    for _ in range(credentials.IP_FAILURES_TO_LOCK):
        _activate(api, "ZZZZZ-ZZZZZ", username="nobody")
    r = _activate(api, "ZZZZZ-ZZZZZ", username="nobody")
    assert (r.status_code, r.json()["code"]) == (429, "locked_out")


def test_reinvite_voids_the_code_clears_the_password_and_revokes_tokens(api):
    made = _invite_new(api)
    assert _activate(api, made["activation_code"]).status_code == 200
    token = _login(api, "m-new", PASSWORD).json()["access_token"]
    assert api.call("GET", "/me/vouchers", token=token).status_code == 200
    # a city admin may not make or invite members; a union admin of another union is out
    r = api.call("POST", f"/auth/users/{made['id']}/invite", Role.CITY_ADMIN)
    assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")
    again = api.call("POST", f"/auth/users/{made['id']}/invite", Role.UNION_ADMIN)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["cleared_password"] is True and body["voided_previous"] is False
    assert api.call("GET", "/me/vouchers", token=token).status_code == 401
    assert _login(api, "m-new", PASSWORD).status_code == 401
    third = api.call("POST", f"/auth/users/{made['id']}/invite", Role.COUNTY_ADMIN).json()
    assert third["voided_previous"] is True and third["cleared_password"] is False
    assert _activate(api, body["activation_code"], "a new password 3").status_code == 401
    assert _activate(api, third["activation_code"], "a new password 3").status_code == 200
    assert _login(api, "m-new", "a new password 3").status_code == 200
    with api.db.session() as s:
        invites = s.execute(select(AuditEntry.actor, AuditEntry.detail)
                            .where(AuditEntry.action == "user.invite")
                            .order_by(AuditEntry.seq)).all()
    assert [(a, d["cleared_password"], d["voided_previous"]) for a, d in invites] == [
        ("u-union_admin", True, False), ("u-county_admin", False, True)]
    # only member users are invited
    with api.db.session() as s:
        cashier = s.execute(select(ApiUser.id).where(ApiUser.username == "u-cashier")).scalar()
    r = api.call("POST", f"/auth/users/{cashier}/invite", Role.PROVINCE_ADMIN)
    assert (r.status_code, r.json()["code"]) == (404, "user_not_found")


def test_the_code_goes_by_sms_only_to_the_phone_on_file(api):
    from civicvoucher.auth import credentials

    member = _second_member(api)
    with api.db.session() as s:
        change_member(s, member, key=SECRET, audit=lambda *a, **k: None, phone="13812345678")
    # no gateway configured: refused plainly, nothing created
    r = api.call("POST", "/auth/users", Role.UNION_ADMIN,
                 json={"username": "m-new", "role": "member", "member_id": member,
                       "send_code_to_phone": "13812345678"})
    assert (r.status_code, r.json()["code"]) == (409, "sms_gateway_unavailable"), r.text
    outbox = credentials.MemoryOutbox()
    credentials.set_notifier(outbox)
    try:
        r = api.call("POST", "/auth/users", Role.UNION_ADMIN,
                     json={"username": "m-new", "role": "member", "member_id": member,
                           "send_code_to_phone": "13900000000"})
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            422, "phone_not_on_file", "send_code_to_phone")
        assert outbox.sent == []
        made = _invite_new(api, send_code_to_phone="+86 138 1234 5678")
    finally:
        credentials.set_notifier(None)
    assert made["activation_code"] is None and made["activation_sent_to"] == "138****5678"
    [(phone, text)] = outbox.sent
    assert phone == "13812345678" and "激活码" in text
    code = text.split("激活码：")[1][:11]
    assert _activate(api, code).status_code == 200


def test_the_activation_code_is_never_stored_for_a_replay(api):
    """The idempotency table keeps answers for replays: the code is withheld there (the
    retry says so), so nobody reading the database can activate the member."""
    from civicvoucher.auth.models import IdempotencyRecord

    body = {"username": "m-replay", "role": "member", "member_id": _second_member(api)}
    first = api.call("POST", "/auth/users", Role.UNION_ADMIN, key="invite-1", json=body)
    assert first.status_code == 201, first.text
    code = first.json()["activation_code"]
    assert code
    again = api.call("POST", "/auth/users", Role.UNION_ADMIN, key="invite-1", json=body)
    assert again.status_code == 201, again.text
    assert again.json()["activation_code"] is None
    assert "activation_code" in again.headers["X-CV-Secret-Withheld"]
    with api.db.session() as s:
        stored = b"".join(s.execute(select(IdempotencyRecord.body)).scalars().all())
    assert code.encode() not in stored and code.replace("-", "").encode() not in stored
    doc = api.client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert doc["UserOut"]["properties"]["activation_code"]["x-shown-once"] is True
    assert doc["InviteOut"]["properties"]["activation_code"]["x-shown-once"] is True
