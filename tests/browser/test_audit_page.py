"""The audit log viewer in Chromium, as the browser world's province admin: the list newest
first, a filter by action typed and sent by keyboard, one entry opened, the chain verified on
demand (HTMX). In Chinese and in English, at 390 and 1400 px, with axe finding nothing
serious."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.harness import assert_no_serious_a11y, both_viewports


@pytest.fixture
def deposit(live_server, login):
    """``deposit(page)``: a fund.deposit entry by the province admin, through the API."""
    union = live_server.world.w.union_a

    def do(page) -> None:
        api = login(page, "province_admin", via="api")
        r = page.request.post("/api/v1/funds/deposits",
                              data={"org_id": union, "amount_fen": 100, "source": "dues"},
                              headers={**api.headers, "Idempotency-Key": str(uuid.uuid4()),
                                       "Accept-Language": "en"})
        assert r.status in (200, 201), r.text()

    return do


def _seqs(page) -> list[int]:
    return [int(t.strip().lstrip("#")) for t in
            page.locator(".audit-table tbody tr td:first-child a").all_inner_texts()]


def _filter_by_keyboard(page, action: str) -> None:
    box = page.locator("#af-action")
    box.fill(action)
    box.press("Enter")
    page.wait_for_url("**/audit?*action=*")


@pytest.mark.zh
@both_viewports
def test_province_admin_reads_filters_and_verifies_in_chinese(page, login, screenshot, deposit,
                                                             viewport):
    deposit(page)
    login(page, "province_admin")
    page.goto("/audit")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "审计日志"
    seqs = _seqs(page)
    assert seqs and seqs == sorted(seqs, reverse=True)
    assert_no_serious_a11y(page)
    screenshot(page, "list-zh")

    _filter_by_keyboard(page, "fund.deposit")
    actions = page.locator(".audit-table tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and set(actions) == {"fund.deposit"}

    page.get_by_role("button", name="核验哈希链").click()
    ok = page.locator("#audit-verify-result .audit-ok")
    ok.wait_for()
    assert "链完整" in ok.inner_text()
    assert page.url.endswith("action=fund.deposit") or "action=fund.deposit" in page.url
    assert_no_serious_a11y(page)
    screenshot(page, "filtered-verified-zh")

    first = page.locator(".audit-table tbody tr td:first-child a").first
    seq = first.inner_text().strip().lstrip("#")
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/audit?seq={seq}")
    assert page.locator("h2#audit-entry-h").inner_text() == f"审计记录 {seq}"
    assert "amount_fen" in page.locator(".audit-detail").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "entry-zh")


@both_viewports
def test_province_admin_reads_and_verifies_in_english(page, login, screenshot, deposit, viewport):
    deposit(page)
    login(page, "province_admin")
    page.goto("/audit?action=fund.deposit")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Audit log"
    assert _seqs(page)
    page.get_by_role("button", name="Verify the chain").click()
    page.locator("#audit-verify-result .audit-ok").wait_for()
    assert "Chain intact" in page.locator("#audit-verify-result").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "verified-en")

    page.get_by_role("link", name="Clear the filters").click()
    page.wait_for_url("**/audit")
    assert_no_serious_a11y(page)
