"""The voucher trace page (溯源) in Chromium, as the browser world's county admin (小店):
search a voucher of union A, open its trace, see it issued; the cashier redeems it through
the API; the trace shows it redeemed at 超市. In Chinese and in English, at 390 and 1400 px,
with axe finding nothing serious, by keyboard."""

from __future__ import annotations

import itertools
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from civicvoucher.members.models import Member
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads
from tests.world import SECRET, make_id

_people = itertools.count(700)


@pytest.fixture
def fresh(live_server):
    """A voucher nobody else's test spends: a new member of union A, issued just now."""
    w = live_server.world.w
    n = next(_people)
    id_number = make_id(n)
    with live_server.db.session() as s:
        add_members(s, [(1, MemberRow(name=f"溯源{n}", id_number=id_number, phone=None,
                                      union=w.union_uscc["A"], status=MemberStatus.ACTIVE))],
                    key=SECRET)
        member = s.execute(select(Member.id).where(Member.union_id == w.union_a)
                           .order_by(Member.id.desc())).scalars().first()
        issue(s, union_id=w.union_a, program=w.program, idem_key=f"tracepage-{uuid.uuid4()}",
              member_ids=[member])
        v = s.execute(select(Voucher).where(Voucher.member_id == member)).scalars().one()
        s.commit()
        return {"id": v.id, "code": v.code, "id_number": id_number}


def _redeem(page, login, code: str) -> dict:
    cashier = login(page, "cashier", via="api")
    r = page.request.post("/api/v1/redemptions", data={"code": code, "order_amount_fen": 32000},
                          headers={**cashier.headers, "Idempotency-Key": str(uuid.uuid4()),
                                   "Accept-Language": "en"})
    assert r.status == 201, r.text()
    return r.json()


def _search(page, query: str) -> None:
    page.goto("/trace")
    box = page.locator("#trace-q")
    box.fill(query)
    box.press("Enter")  # the keyboard submits it
    page.locator(".trace-results h2").wait_for()


def _expect_steps(page, names: list[str]) -> None:
    """The trace shows these steps, in order. Playwright's expect waits for the page the last
    click or reload asked for: reading the steps at once can catch the page before it."""
    expect(page.locator(".trace-step .step-name")).to_have_text(names)


@pytest.mark.zh
@both_viewports
def test_county_admin_traces_a_voucher_in_chinese(page, login, screenshot, fresh, viewport):
    login(page, "county_admin")
    _search(page, str(fresh["id"]))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    link = page.get_by_role("link", name=f"券 {fresh['id']}")
    assert link.count() == 1 and "¥300.00" in page.locator(".trace-results").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "search-zh")

    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/trace/{fresh['id']}")
    _expect_steps(page, ["发放", "推送电子券"])
    assert_no_serious_a11y(page)
    screenshot(page, "issued-zh")

    receipt = _redeem(page, login, fresh["code"])
    page.reload()
    _expect_steps(page, ["发放", "推送电子券", "核销"])
    redeemed = page.locator(".step-redeemed").inner_text()
    assert "超市" in redeemed and "¥300.00" in redeemed and "订单 ¥320.00" in redeemed
    assert receipt["receipt_id"] in redeemed and "cashier" in redeemed
    assert "审计记录\n#" in redeemed
    assert_no_serious_a11y(page)
    screenshot(page, "redeemed-zh")


@both_viewports
def test_county_admin_traces_a_voucher_in_english_by_id_number(page, login, screenshot, fresh,
                                                               viewport):
    _redeem(page, login, fresh["code"])
    login(page, "county_admin")
    _search(page, fresh["id_number"])
    results = page.locator(".trace-results")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "1 voucher found" in results.inner_text()
    assert fresh["id_number"] not in page.content()  # not even in the search box
    assert page.locator("#trace-q").input_value() == ""
    assert_no_serious_a11y(page)
    screenshot(page, "search-en")

    page.get_by_role("link", name=f"Voucher {fresh['id']}").click()
    _expect_steps(page, ["issued", "pushed", "redeemed"])
    assert "¥300.00" in page.locator(".step-issued").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "redeemed-en")

    with loads(page):
        page.get_by_role("button", name="中文").click()  # the switch keeps the page
    page.wait_for_url(f"**/trace/{fresh['id']}")
    _expect_steps(page, ["发放", "推送电子券", "核销"])

