"""The issuance page in a real browser, as the county admin (create_issuance: org admins):
choose a program and a fresh union of the county, see the funding check with its shortfall,
confirm a partial issuance, see what was issued; axe in Chinese and English; screenshots at
390 and 1400 px. The world's union A is issued already, so each run makes its own union."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.core.money import format_yuan
from civicvoucher.funds.service import deposit
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.orgs.service import create_org, get_org
from civicvoucher.programs.models import Program
from civicvoucher.vouchers.issuance import plan_issuance
from civicvoucher.vouchers.models import Voucher
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads
from tests.world import SECRET, make_id, make_uscc


def _fresh_union(live_server, n: int) -> tuple[str, int, int]:
    """A union of county A with two active members and a fund for one of them."""
    w = live_server.world.w
    name = f"新建工会{n}"
    with live_server.db.session() as s:
        u = create_org(s, level="union", name=name, uscc=make_uscc(600 + n),
                       unit_type="enterprise", parent_id=w.county_a)
        add_members(s, [(i, MemberRow(name=f"会员{n}{i}", id_number=make_id(600 + 10 * n + i),
                                      phone=None, union=make_uscc(600 + n),
                                      status=MemberStatus.ACTIVE)) for i in (1, 2)], key=SECRET)
        per = s.execute(select(Program.per_member_fen).where(Program.key == w.program)).scalar()
        deposit(s, org_id=u.id, amount_fen=per, source="dues", idem_key=f"browser-issue-{n}")
        s.commit()
        return name, u.id, per


def _vouchers(live_server, union_id: int) -> int:
    with live_server.db.session() as s:
        return s.execute(select(func.count()).select_from(Voucher)
                         .where(Voucher.union_id == union_id)).scalar_one()


@both_viewports
@pytest.mark.zh
def test_preview_then_confirm_a_partial_issuance(page, login, live_server, screenshot,
                                                 viewport):
    name, union_id, per = _fresh_union(live_server, 1 if viewport == "phone" else 2)
    login(page, Role.COUNTY_ADMIN)
    page.goto("/issue")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert_no_serious_a11y(page)
    page.locator("#i-program").select_option(value=live_server.world.w.program)
    page.locator("#i-union").select_option(label=name)
    page.locator('form[action="/issue/preview"]').get_by_label(
        "部分发放：按资金能覆盖的人数发放").check()
    with loads(page):
        page.get_by_role("button", name="核对资金").click()
    assert page.locator("#to-receive").inner_text() == "2"
    assert page.locator("#needed").inner_text() == format_yuan(2 * per)
    assert page.locator("#available").inner_text() == format_yuan(per)
    assert page.locator("#shortfall").inner_text() == format_yuan(per)
    assert _vouchers(live_server, union_id) == 0  # the check wrote nothing
    assert_no_serious_a11y(page)
    screenshot(page, "check")
    with loads(page):
        page.get_by_role("button", name="确认发放").click()
    assert "/issue/issuances/" in page.url
    issued = _vouchers(live_server, union_id)
    assert issued > 0
    assert page.locator("#vouchers-issued").inner_text() == str(issued)
    assert page.locator("#amount-issued").inner_text() == format_yuan(per)
    assert page.locator("#result-shortfall").inner_text() == format_yuan(per)
    assert_no_serious_a11y(page)
    screenshot(page, "done")


def test_the_page_in_english(page, login, live_server, screenshot):
    login(page, Role.UNION_ADMIN)
    page.goto("/issue")
    assert "Issue vouchers" in page.locator("h1").inner_text()
    assert_no_serious_a11y(page)
    page.locator("#i-program").select_option(value=live_server.world.w.program)
    with loads(page):
        page.get_by_role("button", name="Check the funding").click()
    assert "Funding check" in page.content()
    # union A was issued for when the world was built; the roster tests import more members
    # into it, so the members still to receive are read, not assumed to be none
    w = live_server.world.w
    with live_server.db.session() as s:
        prog = s.execute(select(Program).where(Program.key == w.program)).scalar_one()
        waiting = len(plan_issuance(s, prog=prog, union=get_org(s, w.union_a)).items)
    assert page.locator("#to-receive").inner_text() == str(waiting)
    assert ("Nothing to issue" in page.content()) == (waiting == 0)
    assert page.get_by_role("button", name="Confirm issuance").count() == (waiting > 0)
    assert_no_serious_a11y(page)
    screenshot(page, "en")


def _fresh_county(live_server, n: int) -> dict:
    """A county of the city with two unions of two members each; one union can pay for
    one member, the other for both."""
    import uuid

    w = live_server.world.w
    tag = uuid.uuid4().hex[:4]
    with live_server.db.session() as s:
        county = create_org(s, level="county", name=f"杏花岭区总工会{tag}",
                            division_code="140107" if n == 1 else "140108", parent_id=w.city)
        per = s.execute(select(Program.per_member_fen).where(Program.key == w.program)).scalar()
        unions = []
        for j, funded in ((1, 1), (2, 2)):
            code = make_uscc(980 + 2 * n + j)
            u = create_org(s, level="union", name=f"子树工会{tag}-{j}", uscc=code,
                           unit_type="enterprise", parent_id=county.id)
            add_members(s, [(i, MemberRow(name=f"子树{n}{j}{i}",
                                          id_number=make_id(1200 + 20 * n + 4 * j + i),
                                          phone=None, union=code, status=MemberStatus.ACTIVE))
                            for i in (1, 2)], key=SECRET)
            deposit(s, org_id=u.id, amount_fen=funded * per, source="dues",
                    idem_key=f"browser-subtree-{tag}-{j}")
            unions.append(u.id)
        s.commit()
        return {"county": county.id, "name": county.name, "unions": unions, "per": per}


@both_viewports
@pytest.mark.zh
def test_issue_for_a_whole_subtree_with_progress(page, login, live_server, screenshot,
                                                 viewport):
    from playwright.sync_api import expect

    from civicvoucher.vouchers.models import Issuance

    f = _fresh_county(live_server, 1 if viewport == "phone" else 2)
    per = f["per"]
    login(page, Role.CITY_ADMIN)
    page.goto("/issue")
    page.locator("#s-program").select_option(value=live_server.world.w.program)
    page.locator("#s-org").select_option(value=str(f["county"]))
    with loads(page):
        page.get_by_role("button", name="核对各工会资金").click()
    assert page.locator("#sub-unions").inner_text() == "2"
    assert page.locator("#sub-to-receive").inner_text() == "4"
    assert page.locator("#sub-needed").inner_text() == format_yuan(4 * per)
    assert page.locator("#sub-available").inner_text() == format_yuan(3 * per)
    assert page.locator("#sub-shortfall").inner_text() == format_yuan(per)
    short = page.locator(f"#u-{f['unions'][0]}")
    assert format_yuan(per) in short.locator("td.short").inner_text()
    assert "资金不足" in page.locator("#sub-verdict").inner_text()
    for u in f["unions"]:
        assert _vouchers(live_server, u) == 0  # the check wrote nothing
    assert_no_serious_a11y(page)
    screenshot(page, "subtree-check")
    with loads(page):
        page.get_by_role("button", name="逐个工会发放").click()
    assert "/issue/runs/" in page.url
    expect(page.locator("#run-status")).to_have_text("已完成 2 / 2 个工会", timeout=30_000)
    expect(page.locator("#run-progress")).not_to_have_attribute("hx-trigger", "every 1s")
    assert page.locator("#run-shortfall").inner_text() == format_yuan(2 * per)  # all or nothing
    assert page.locator(f"#run-u-{f['unions'][0]} .run-state").inner_text() == "未发放"
    assert page.locator(f"#run-u-{f['unions'][1]} .run-state").inner_text() == "已完成" or \
        page.locator(f"#run-u-{f['unions'][1]} .run-state a").count() == 1
    assert page.locator("#run-amount").inner_text() == format_yuan(2 * per)
    assert_no_serious_a11y(page)
    screenshot(page, "subtree-done")
    # the page reloaded or the confirm resent: the same run, nothing issued twice
    page.reload()
    page.go_back()
    with live_server.db.session() as s:
        made = s.execute(select(func.count()).select_from(Issuance).where(
            Issuance.union_id.in_(f["unions"]))).scalar_one()
    assert made == 2
    assert _vouchers(live_server, f["unions"][0]) == 0
    assert _vouchers(live_server, f["unions"][1]) > 0
