"""Signing in and out of the console: the API's lockout, cookies only the server reads, CSRF
on every unsafe request, idle and absolute timeouts, no open redirect, the language switch,
and one rule table for both doors."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.models import ApiToken
from civicvoucher.auth.roles import Role
from civicvoucher.console.app import check_console_rules
from civicvoucher.console.routing import ConsoleRoute
from civicvoucher.console.session import COOKIE, LANG_COOKIE

CJK = re.compile(r"[\u4e00-\u9fff]")


def _cookie_header(r, name):
    return next(h for h in r.headers.get_list("set-cookie") if h.startswith(name + "="))


def test_the_login_page_is_chinese_by_default_and_english_on_request(console):
    r = console.client.get("/login")
    assert r.status_code == 200 and '<html lang="zh-CN">' in r.text and "登录" in r.text
    r = console.client.get("/login", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in r.text and "Sign in" in r.text
    assert not CJK.search(r.text.replace("中文", ""))  # the switch names its language in it


def test_signing_in_sets_a_cookie_no_script_can_read(console):
    r = console.login(Role.COUNTY_ADMIN, next_="/")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = _cookie_header(r, COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # loopback: http://127.0.0.1 would never send it back
    home = console.client.get("/")
    assert home.status_code == 200 and "u-county_admin" in home.text


def test_the_cookie_is_secure_off_loopback(console):
    client = console.client
    client.base_url = "https://console.example.org"  # behind the TLS proxy
    r = console.login(Role.COUNTY_ADMIN)
    assert r.status_code == 303, r.text[:300]
    assert "Secure" in _cookie_header(r, COOKIE)


def test_a_wrong_password_says_so_and_sets_nothing(console):
    r = console.login(Role.COUNTY_ADMIN, password="wrong password!")
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_the_console_shares_the_apis_lockout(console):
    from civicvoucher.auth.ratelimit import Limits

    limits = console.client.app.state.cv.limits
    codes = [console.login(Role.UNION_ADMIN, password=f"wrong-{i}").status_code
             for i in range(limits.login_failures_to_lock + 2)]
    assert 429 in codes, codes
    locked = console.login(Role.UNION_ADMIN)  # even the right password, while locked
    assert locked.status_code == 429 and COOKIE not in locked.headers.get("set-cookie", "")
    assert isinstance(limits, Limits)


def test_the_sign_in_form_needs_its_own_token(console):
    r = console.client.post("/login", data={"username": "u-county_admin", "password": "x"})
    assert r.status_code == 403


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil",
                                    "http:/evil"])
def test_no_open_redirect_after_signing_in(console, target):
    r = console.login(Role.COUNTY_ADMIN, next_=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_page_without_a_session_sends_you_to_sign_in_and_back(console):
    r = console.client.get("/?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F%3Fx%3D1"
    frag = console.client.get("/", headers={"HX-Request": "true"})
    assert frag.status_code == 401 and frag.headers["HX-Redirect"].startswith("/login")


def test_unsafe_requests_need_the_csrf_token(console):
    console.login(Role.COUNTY_ADMIN)
    assert console.client.post("/logout").status_code == 403
    assert console.client.post("/logout", data={"csrf_token": "0" * 64}).status_code == 403
    assert console.client.get("/").status_code == 200  # still signed in
    token = console.csrf("/")
    foreign = console.client.post("/logout", data={"csrf_token": token},
                                  headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert console.client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303


def test_signing_out_revokes_the_session(console):
    console.login(Role.COUNTY_ADMIN)
    stolen = console.client.cookies.get(COOKIE)
    r = console.client.post("/logout", data={"csrf_token": console.csrf("/")})
    assert r.status_code == 303
    console.client.cookies.set(COOKIE, stolen)  # the old cookie, replayed
    assert console.client.get("/").status_code == 303
    with console.aw.db.session() as s:
        assert s.execute(select(ApiToken.revoked_at).where(
            ApiToken.prefix == stolen[:12])).scalar() is not None


def test_idle_timeout_and_sliding(console, now):
    console.login(Role.COUNTY_ADMIN)
    now.shift(minutes=20)
    assert console.client.get("/").status_code == 200  # used: the session moves on
    now.shift(minutes=25)  # 45 minutes after signing in, 25 idle
    assert console.client.get("/").status_code == 200
    now.shift(minutes=31)  # idle longer than 30 minutes
    assert console.client.get("/").status_code == 303


def test_absolute_timeout(console, now):
    console.login(Role.COUNTY_ADMIN)
    for _ in range(60):  # busy all day, never idle
        now.shift(minutes=14)
        r = console.client.get("/")
        if r.status_code != 200:
            break
    assert r.status_code == 303
    assert now.at - now.__class__.at <= __import__("datetime").timedelta(hours=12, minutes=14)


def test_the_language_switch_is_remembered_and_needs_the_token(console):
    assert console.client.post("/lang", data={"lang": "en"}).status_code == 403
    token = console.csrf("/login")
    r = console.client.post("/lang", data={"lang": "en", "csrf_token": token, "next": "/login"})
    assert r.status_code == 303 and console.client.cookies.get(LANG_COOKIE) == "en"
    assert "Sign in" in console.client.get("/login").text
    console.login(Role.COUNTY_ADMIN)
    r = console.client.post("/lang", data={"lang": "zh", "csrf_token": console.csrf("/")})
    assert r.status_code == 303 and "退出登录" in console.client.get("/").text


def test_every_console_route_has_a_rule(console):
    assert check_console_rules(console.client.app) == []
    router = APIRouter(route_class=ConsoleRoute)
    with pytest.raises(RuntimeError, match="no rule"):  # refused as it is defined

        @router.get("/nameless", name="console_nowhere_in_the_table")
        def nameless():
            return "x"


def test_a_refused_page_is_audited(console, monkeypatch):
    from civicvoucher.auth import policy

    monkeypatch.setitem(policy.RULES, "console_home",
                        policy.Rule(frozenset({Role.PROVINCE_ADMIN}), "self"))
    console.login(Role.COUNTY_ADMIN)
    r = console.client.get("/")
    assert r.status_code == 403 and "role_forbidden" in r.text
    with console.aw.db.session() as s:
        actions = s.execute(select(AuditEntry.action, AuditEntry.actor)
                            .order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert actions.action == "access.refused" and "county_admin" in actions.actor
