"""Signing in to the console in a real browser, at phone and desktop width, in both
languages: the form works by keyboard, the pages pass axe, nothing leaves loopback."""

from __future__ import annotations

import pytest

from civicvoucher.auth.roles import Role
from tests.browser.harness import HTTP_4XX, assert_no_serious_a11y, both_viewports, loads


@both_viewports
@pytest.mark.zh
def test_sign_in_and_out_in_chinese(page, login, screenshot):
    page.goto("/")
    assert "/login" in page.url and page.locator("html").get_attribute("lang") == "zh-CN"
    assert_no_serious_a11y(page)
    screenshot(page, "login")
    login(page, Role.COUNTY_ADMIN)
    assert page.get_by_role("heading", level=1).inner_text().startswith("欢迎")
    assert_no_serious_a11y(page)
    screenshot(page, "home")
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url  # signed out: the session is gone


@pytest.mark.console_errors(HTTP_4XX)
@pytest.mark.zh  # a Chinese browser: the page starts in Chinese, the switch makes it English
def test_a_wrong_password_is_told_in_english_after_the_switch(page, live_server):
    page.goto("/login")
    with loads(page):
        page.get_by_role("button", name="English").click()
    page.wait_for_url("**/login")
    page.get_by_label("Username").fill(live_server.account(Role.COUNTY_ADMIN).username)
    page.get_by_label("Password").fill("not the password")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").inner_text() == "wrong username or password"
    assert page.locator("html").get_attribute("lang") == "en"
    assert_no_serious_a11y(page)
