"""Funds in a real browser: the county admin (小店) deposits a fiscal allocation into union B
(it waits for a second person, no money moves), the city admin approves it from the queue,
union B's balance changes; the maker sees no approve button for their own request. A field
error shown in English. axe in Chinese and English at 390 and 1400 px; screenshots."""

from __future__ import annotations

import itertools
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from civicvoucher.auth.roles import Role
from civicvoucher.funds.models import DepositRequest
from civicvoucher.funds.service import fund_balance
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads

_amounts = itertools.count(12_345)


def _balance(live_server, org_id: int) -> int:
    with live_server.db.session() as s:
        return fund_balance(s, org_id)


def _switch(page, login, role) -> None:
    page.context.clear_cookies()
    login(page, role)


@both_viewports
@pytest.mark.zh
def test_a_fiscal_deposit_waits_and_another_admin_approves_it(page, login, live_server,
                                                             screenshot, viewport):
    w = live_server.world.w
    yuan = next(_amounts)
    login(page, Role.COUNTY_ADMIN)
    page.goto("/funds")
    expect(page.locator("h1")).to_contain_text("小店区总工会的资金")
    assert_no_serious_a11y(page)
    screenshot(page, "county")
    with loads(page):
        page.get_by_role("link", name="union B").click()
    assert page.url.endswith(f"/funds/orgs/{w.union_b}")
    before = _balance(live_server, w.union_b)
    page.locator("#d-amount").fill(f"{yuan / 10_000}万")
    page.get_by_label("财政拨款").check()
    page.locator("#d-doc").fill(f"晋财社〔2020〕{yuan}号")
    with loads(page):
        page.get_by_role("button", name="入账", exact=True).click()
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("等待第二人批准")
    expect(outcome).to_contain_text(f"¥{yuan:,}.00")
    assert _balance(live_server, w.union_b) == before
    assert_no_serious_a11y(page)
    screenshot(page, "requested")
    with live_server.db.session() as s:
        rid = s.execute(select(DepositRequest.id).where(
            DepositRequest.memo == f"晋财社〔2020〕{yuan}号")).scalar_one()
    # the maker's own request: shown as waiting for someone else, no approve button
    page.goto("/funds/requests")
    mine = page.locator(f"#request-{rid}")
    expect(mine).to_contain_text("须由另一个人批准")
    assert mine.get_by_role("button").count() == 0
    # the city admin approves it
    _switch(page, login, Role.CITY_ADMIN)
    page.goto("/funds/requests")
    item = page.locator(f"#request-{rid}")
    expect(item).to_contain_text(f"晋财社〔2020〕{yuan}号")
    assert_no_serious_a11y(page)
    screenshot(page, "queue")
    button = page.get_by_role("button", name=f"批准申请 #{rid}")
    button.focus()
    with loads(page):
        page.keyboard.press("Enter")  # by keyboard
    expect(page.locator("#done")).to_contain_text(f"申请 #{rid} 已批准")
    expect(page.locator("#done")).to_contain_text(f"¥{(before + yuan * 100) / 100:,.2f}")
    assert _balance(live_server, w.union_b) == before + yuan * 100
    assert_no_serious_a11y(page)
    screenshot(page, "approved")
    page.goto(f"/funds/orgs/{w.union_b}")
    own = page.locator("#own-balance").inner_text()
    assert own == f"¥{(before + yuan * 100) / 100:,.2f}"
    expect(page.locator("table.funds").last).to_contain_text(f"晋财社〔2020〕{yuan}号")
    screenshot(page, "union-after")


@both_viewports
@pytest.mark.console_errors(r"status of 422 .*/funds/orgs/\d+/deposit")  # the refused amount
def test_funds_in_english_with_a_field_error(page, login, live_server, screenshot, viewport):
    w = live_server.world.w
    login(page, Role.CITY_ADMIN)
    page.goto(f"/funds/orgs/{w.county_a}")
    expect(page.locator("h1")).to_contain_text("Funds of 小店区总工会")
    assert re.fullmatch(r"¥[\d,]+\.\d\d", page.locator("#subtree-balance").inner_text())
    assert_no_serious_a11y(page)
    screenshot(page, "county")
    page.locator("#d-amount").fill("12.345")
    page.locator("#d-doc").fill("voucher 7")
    with loads(page):
        page.get_by_role("button", name="Deposit", exact=True).click()
    alert = page.locator("#deposit-error")
    expect(alert).to_contain_text("more than two decimals")
    assert page.locator("#d-amount").get_attribute("aria-invalid") == "true"
    assert page.locator("#d-doc").input_value() == "voucher 7"  # what was typed stays
    assert_no_serious_a11y(page)
    screenshot(page, "field-error")
    page.goto("/funds/requests")
    expect(page.locator("h1")).to_have_text("Deposit approvals")
    assert_no_serious_a11y(page)
    screenshot(page, "queue")
