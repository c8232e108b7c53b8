"""The harness on what exists today: the API's docs page (vendored Swagger UI) in Debian's
Chromium against the live server, at phone and desktop width; logins of every role; the
axe helper; the console-error and off-loopback verdicts; Playwright leaving asyncio alone
between browser tests."""

from __future__ import annotations

import asyncio
import re

import pytest

from civicvoucher.auth.roles import Role
from tests.browser.harness import (
    AXE_JS,
    HTTP_4XX,
    BrowserLog,
    assert_no_serious_a11y,
    axe,
    both_viewports,
    is_loopback,
)
from tests.browser.world import ROLES

PNG = b"\x89PNG\r\n\x1a\n"


@both_viewports
def test_api_docs_load_offline_with_no_console_error(page, browser_log, screenshot, viewport,
                                                    live_server):
    page.goto("/api/v1/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    page.locator(".opblock").first.wait_for()  # the operations are drawn from openapi.json
    assert page.url.startswith(live_server.url)
    assert page.viewport_size["width"] == {"phone": 390, "desktop": 1400}[viewport]
    assert "civicvoucher API" in page.locator(".swagger-ui .info .title").inner_text()

    # Swagger UI's whole DOM takes axe ~10 s on a busy machine: its header is enough to show
    # the helper works (Swagger UI's own violations are not ours to fix)
    violations = axe(page, context=".swagger-ui .information-container")
    assert isinstance(violations, list)
    assert all({"id", "impact", "help", "nodes"} <= set(v) for v in violations)

    shot = screenshot(page, "api-docs", full_page=False)
    assert shot.read_bytes().startswith(PNG)
    assert viewport in shot.name
    # the hook fails the test on any console error or request off loopback; say it here too
    assert browser_log.console_errors == [] and browser_log.outside_requests == []


def test_every_role_logs_in_with_its_password(page, login, live_server):
    assert set(live_server.world.accounts) == set(ROLES)
    for role in ROLES:
        who = login(page, role, via="api")
        me = page.request.get("/api/v1/auth/me", headers=who.headers)
        assert me.status == 200, me.text()
        assert me.json()["role"] == role.value
        assert me.json()["username"] == live_server.account(role).username


def test_the_member_set_their_own_password(page, login, live_server):
    """The member's account was activated with its code, through the API: a second
    activation with the same code and another password is refused."""
    acct = live_server.account(Role.MEMBER)
    again = page.request.post("/api/v1/auth/activate", data={
        "username": acct.username, "code": live_server.world.member_activation_code,
        "password": "someone-elses-pw"}, headers={"Accept-Language": "en"})
    assert again.status == 401 and again.json()["code"] == "activation_failed"
    who = login(page, "member", via="api", bearer_header=True)
    # with bearer_header the page's own requests carry the token
    page.goto("/api/v1/me/vouchers")
    assert who.token and acct.member_id and '"items"' in page.content()


@pytest.mark.console_errors(HTTP_4XX)
def test_an_expected_4xx_is_allowed_by_its_pattern(page, login, browser_log):
    page.goto("/api/v1/health")
    assert page.evaluate("() => fetch('/api/v1/auth/me').then(r => r.status)") == 401
    page.evaluate("1")
    assert any("status of 401" in e for e in browser_log.console_errors)


@pytest.mark.zh
@pytest.mark.console_errors(HTTP_4XX)
def test_a_zh_test_gets_a_chinese_browser(page):
    answer = page.goto("/api/v1/auth/me")
    assert page.evaluate("navigator.language") == "zh-CN"
    assert answer.status == 401 and answer.headers["content-language"] == "zh-CN"


def test_the_world_has_spendable_vouchers(live_server):
    assert live_server.world.voucher_codes


def test_axe_reports_a_critical_violation_and_the_assertion_fails(page):
    page.set_content("<!doctype html><html lang='en'><title>t</title><main>"
                     "<img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='></main></html>")
    ids = {v["id"]: v["impact"] for v in axe(page)}
    assert ids.get("image-alt") == "critical"
    with pytest.raises(AssertionError, match="image-alt"):
        assert_no_serious_a11y(page)
    page.set_content("<!doctype html><html lang='en'><head><title>ok</title></head><body>"
                     "<main><h1>Fine</h1><p>Nothing wrong here.</p></main></body></html>")
    assert_no_serious_a11y(page)
    assert AXE_JS.is_file()


def test_axe_runs_under_a_strict_content_security_policy(page):
    """A console with ``script-src 'self'`` refuses inline scripts: axe comes same-origin."""
    page.route("**/strict-csp", lambda r: r.fulfill(
        body="<!doctype html><html lang='en'><title>csp</title><main><h1>ok</h1></main></html>",
        content_type="text/html", headers={"Content-Security-Policy": "script-src 'self'"}))
    page.goto("/strict-csp")
    assert axe(page) == []


@pytest.mark.console_errors(r"deliberate")
def test_console_errors_are_collected(page, browser_log):
    page.goto("/api/v1/health")
    page.evaluate("console.error('a deliberate error'); console.log('fine')")
    page.evaluate("1")  # a round trip: the console events are in
    assert [e for e in browser_log.console_errors if "deliberate" in e]
    assert browser_log.problems(None) and not browser_log.problems(
        [re.compile("deliberate")])


@pytest.mark.console_errors  # the blocked fetch also logs "Failed to load resource"
def test_a_request_off_loopback_is_aborted_and_recorded(page, browser_log):
    page.goto("/api/v1/health")
    got = page.evaluate("""() => fetch('http://example.com/x.js').then(() => 'loaded',
                                                                    e => 'refused')""")
    assert got == "refused"
    assert browser_log.outside_requests == ["GET http://example.com/x.js"]
    browser_log.outside_requests.clear()  # else the verdict fails this test, as it should


def test_the_verdict_rules():
    log = BrowserLog(console=[("error", "boom", "http://127.0.0.1:1/a.js"),
                              ("warning", "meh", "")],
                     page_errors=["TypeError: x"], outside_requests=["GET https://cdn/x"])
    assert log.problems(None) == ["console error: boom (http://127.0.0.1:1/a.js)",
                                  "uncaught error: TypeError: x",
                                  "request off loopback (aborted): GET https://cdn/x"]
    assert log.problems([]) == ["request off loopback (aborted): GET https://cdn/x"]
    assert log.problems([re.compile("boom")]) == log.problems(None)[1:]
    assert is_loopback("http://127.0.0.1:8123/x") and is_loopback("data:text/plain,x")
    assert not is_loopback("http://localhost.example/x") and not is_loopback("https://cdn/x")


def test_asyncio_runs_between_browser_tests(browser):
    """Playwright's sync API leaves its loop marked running; the fixtures park it, so the
    rest of the suite (asyncio.run in tests/api) works in the same worker."""
    assert browser.is_connected() is not None
    assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"
