"""The dashboard page in a real browser as the county admin: the figures show, every chart
draws under the console's CSP (no inline script or style), no chart is wider than a 390 px
phone, a redemption made through the API shows after the next poll, axe finds nothing
serious in Chinese or English, and the screenshots are kept. With the rollup built
(``analytics/rollup.py``), a redemption through the API still shows at the next poll, in
Chinese and in English: once with the changed union computed directly beside the summaries,
once with the poll's own read refreshing the summaries first (bound 0)."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
from sqlalchemy import select

from civicvoucher.analytics import rollup
from civicvoucher.auth.roles import Role
from civicvoucher.funds.service import deposit
from civicvoucher.members.models import Member
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.browser.harness import assert_no_serious_a11y, both_viewports
from tests.world import SECRET, make_id

CHARTS = ("chart-level", "chart-children", "chart-category", "chart-channel", "chart-day")

# What must fit the screen, and how far past its right edge it goes (as the analytics
# report's browser test checks its page).
OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll(
      '.dash-chart, .chart, .chart canvas, .table-wrap, .figures, header, nav, form, h1')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
      out.push(`${el.tagName}#${el.id || (el.closest('[id]') || {}).id} ${r.left}..${r.right}`);
    }
  }
  return {vw, page: document.documentElement.scrollWidth, over: out};
}"""

SIZES = """ids => ids.map(id => {
  const el = document.getElementById(id);
  const c = el && el.querySelector('canvas');
  const chart = el && echarts.getInstanceByDom(el);
  return [id, c ? c.getBoundingClientRect().width : 0, c ? c.getBoundingClientRect().height : 0,
          chart ? chart.getWidth() : 0, el ? el.getBoundingClientRect().width : 0];
})"""


def open_dashboard(page, login):
    login(page, Role.COUNTY_ADMIN)
    page.goto("/dashboard?program=p2020")  # the world's (other tests add newer programs)
    page.wait_for_selector(f"html[data-charts-ready='{len(CHARTS)}']")
    return page


def charts_drawn(page) -> list:
    sizes = page.evaluate(SIZES, list(CHARTS))
    for chart_id, w, h, drawn, box in sizes:
        assert w > 100 and h > 100, (chart_id, w, h)
        assert drawn == pytest.approx(box, abs=2), (chart_id, drawn, box)  # fills its box
    return sizes


_people = itertools.count(900)  # ID numbers of this file's own members (the trace page: 700+)


def spendable_codes(live_server) -> list[str]:
    """A voucher nobody else's test spends: a new member of union B (in 小店区), issued just
    now. Not union A's: the world's member holds those, and the member page needs one left."""
    w = live_server.world.w
    n = next(_people)
    with live_server.db.session() as s:
        deposit(s, org_id=w.union_b, amount_fen=60_000, source="dues",
                idem_key=f"dashpage-b-{n}")
        add_members(s, [(1, MemberRow(name=f"看板{n}", id_number=make_id(n), phone=None,
                                      union=w.union_uscc["B"], status=MemberStatus.ACTIVE))],
                    key=SECRET)
        member = s.execute(select(Member.id).where(Member.union_id == w.union_b)
                           .order_by(Member.id.desc())).scalars().first()
        issue(s, union_id=w.union_b, program=w.program, idem_key=f"dashpage-b-issue-{n}",
              member_ids=[member])
        codes = list(s.execute(select(Voucher.code).where(Voucher.member_id == member))
                     .scalars())
        s.commit()
    return codes


def redeem_through_the_api(live_server, codes: list[str] | None = None) -> int:
    """A cashier of 超市 redeems one of ``codes`` (default: a fresh voucher of union B): the
    amount redeemed."""
    cashier = live_server.account(Role.CASHIER)
    with httpx.Client(base_url=live_server.url, headers={"Accept-Language": "en"}) as http:
        r = http.post("/api/v1/auth/login",
                      json={"username": cashier.username, "password": cashier.password})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for code in reversed(codes or spendable_codes(live_server)):
            r = http.post("/api/v1/redemptions", headers=auth | {
                "Idempotency-Key": str(uuid.uuid4())},
                json={"code": code, "order_amount_fen": 35000})
            if r.status_code == 201:
                return r.json()["amount_fen"]
            assert r.json()["code"] == "voucher_already_redeemed", r.text
    raise AssertionError("every voucher given is spent")


@both_viewports
@pytest.mark.zh
def test_the_county_admin_sees_figures_and_charts_in_chinese(page, login, screenshot,
                                                               viewport):
    open_dashboard(page, login)
    assert page.get_by_role("heading", level=1).inner_text() == "数据看板：小店区总工会"
    issued = page.locator("#fig-issued dd data").first
    assert issued.inner_text().endswith(("万", "元", "亿"))
    assert issued.get_attribute("title").startswith("¥")
    assert page.locator("#table-unions tbody tr").count() == 2  # union A and union B
    charts_drawn(page)
    fit = page.evaluate(OVERFLOW)
    assert fit["over"] == [] and fit["page"] <= fit["vw"], fit
    assert_no_serious_a11y(page)
    screenshot(page, "dashboard-zh")
    page.locator("#chart-category").hover()  # a tooltip under the CSP: no refused style
    page.mouse.move(10, 10)


@pytest.mark.parametrize("viewport", ["phone"])
@pytest.mark.zh
def test_no_chart_wider_than_the_phone_even_after_a_resize(page, login, viewport):
    open_dashboard(page, login)
    page.set_viewport_size({"width": 1000, "height": 844})
    page.wait_for_timeout(300)  # dashpage.js redraws 100 ms after the last resize
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(400)
    sizes = charts_drawn(page)
    assert all(w <= 390 for _, w, *_ in sizes), sizes
    fit = page.evaluate(OVERFLOW)
    assert fit["over"] == [] and fit["page"] <= 390, fit


def test_english_and_a_redemption_shows_after_the_next_poll(page, login, live_server,
                                                            screenshot, monkeypatch):
    # the live server runs in this process: its page polls every 2 s here (10 s deployed)
    monkeypatch.setenv("CIVICVOUCHER_DASHBOARD_POLL_SECONDS", "2")
    open_dashboard(page, login)
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard: 小店区总工会"
    assert page.locator("html").get_attribute("lang") == "en"
    assert_no_serious_a11y(page)
    before = int(page.locator("#fig-redeemed dd data").first.get_attribute("value"))
    paid = redeem_through_the_api(live_server)
    page.wait_for_function(
        "want => Number(document.querySelector('#fig-redeemed dd data').getAttribute('value'))"
        " === want", arg=before + paid, timeout=15_000)
    assert page.locator("html[data-charts-ready='5']").count() == 1  # redrawn after the swap
    charts_drawn(page)
    assert_no_serious_a11y(page)
    box = page.locator("#chart-level").bounding_box()  # a tooltip under the CSP (canvas-drawn)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    screenshot(page, "dashboard-en-after-poll")


@pytest.mark.zh
def test_drill_down_and_breadcrumbs_by_keyboard(page, login):
    open_dashboard(page, login)
    page.get_by_role("link", name="union A").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard?org=*")
    assert page.get_by_role("heading", level=1).inner_text() == "数据看板：union A"
    crumbs = page.get_by_role("navigation", name="位置")
    crumbs.get_by_role("link", name="小店区总工会").click()
    page.wait_for_selector("h1:has-text('小店区总工会')")


@pytest.mark.parametrize(("locale", "bound"), [("zh-CN", 256), ("en-US", 0)])
def test_with_the_rollup_a_redemption_shows_while_the_page_is_open(
        page, login, live_server, screenshot, monkeypatch, locale, bound):
    monkeypatch.setenv("CIVICVOUCHER_DASHBOARD_POLL_SECONDS", "2")
    codes = spendable_codes(live_server)
    db = live_server.db
    with db.session() as s:
        rollup.refresh(s, full=True)
    with db.session() as s:
        assert rollup.usable(s) and rollup.pending(s) == (0, 0)  # every union from summaries
    monkeypatch.setattr(rollup, "DIRTY_UNIONS_MAX", bound)
    open_dashboard(page, login)
    title = "数据看板：小店区总工会" if locale == "zh-CN" else "Dashboard: 小店区总工会"
    assert page.get_by_role("heading", level=1).inner_text() == title
    assert_no_serious_a11y(page)
    value = "#fig-redeemed dd data"
    before = int(page.locator(value).first.get_attribute("value"))
    shown = page.locator(value).first.inner_text()
    table = page.locator("#table-unions tbody").text_content()
    paid = redeem_through_the_api(live_server, codes)
    page.wait_for_function(
        "want => Number(document.querySelector('#fig-redeemed dd data').getAttribute('value'))"
        " === want", arg=before + paid, timeout=15_000)
    assert page.locator(value).first.inner_text() != shown  # the words changed, not only data
    # the unions' table changed with the cards (an out-of-band swap of the poll's fragment)
    page.wait_for_function(
        "old => document.querySelector('#table-unions tbody').textContent !== old",
        arg=table, timeout=5_000)
    with db.session() as s:
        rows, unions = rollup.pending(s)
    if bound == 0:  # the poll's read refreshed first: nothing left live
        assert (rows, unions) == (0, 0)
    else:  # the union is computed directly until the next refresh
        assert unions >= 1
    charts_drawn(page)
    assert_no_serious_a11y(page)
    screenshot(page, f"dashboard-rollup-{locale}")
