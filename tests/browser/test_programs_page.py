"""Programs in a real browser, as the province admin: the list, a program's page, an earlier
date refused (extension_not_later) and nothing written, a later one recorded; axe in Chinese
and English; screenshots at 390 and 1400 px."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.core import clock
from civicvoucher.vouchers.models import Extension
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads


def _extensions(live_server) -> int:
    with live_server.db.session() as s:
        return s.execute(select(func.count()).select_from(Extension)).scalar_one()


@both_viewports
@pytest.mark.zh
@pytest.mark.console_errors(r"status of 422 .*/programs/p2020/extend")  # the refused date
def test_extend_a_programs_deadline(page, login, live_server, screenshot, viewport):
    w = live_server.world.w
    login(page, Role.PROVINCE_ADMIN)
    page.goto("/programs")
    assert_no_serious_a11y(page)
    screenshot(page, "list")
    with loads(page):
        page.get_by_role("link", name=f"program {w.program}").click()
    assert page.url.endswith(f"/programs/{w.program}")
    before = _extensions(live_server)
    today = clock.to_local(clock.now()).date()
    page.locator("#x-until").fill((today + timedelta(days=1)).isoformat())  # before the end
    page.locator("#x-reason").fill("测试")
    with loads(page):
        page.get_by_role("button", name="延长使用期").click()
    assert "extension_not_later" in page.get_by_role("alert").inner_text()
    assert _extensions(live_server) == before
    assert_no_serious_a11y(page)
    screenshot(page, "refused")
    later = today + timedelta(days=200 + (1 if viewport == "phone" else 2))
    page.locator("#x-until").fill(later.isoformat())
    with loads(page):
        page.get_by_role("button", name="延长使用期").click()
    assert page.locator("#extended").count() == 1
    assert _extensions(live_server) == before + 1
    assert later.isoformat() in page.locator("ul.extensions").inner_text() or \
        (later + timedelta(days=1)).isoformat() in page.locator("ul.extensions").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "extended")


def test_programs_in_english(page, login, screenshot):
    login(page, Role.COUNTY_ADMIN)
    page.goto("/programs")
    assert "Programs" in page.locator("h1").inner_text()
    with loads(page):
        page.locator("table.programs a").first.click()
    assert "Spendable until" in page.content()
    assert page.locator("#x-until").count() == 0  # a county admin does not extend
    assert_no_serious_a11y(page)
    screenshot(page, "en")
