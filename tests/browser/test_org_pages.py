"""Organisations, members and roster imports in a real browser, as a county admin: a file
with bad rows shows every error and writes nothing, a good one imports; axe in Chinese and
English; screenshots at 390 and 1400 px."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.members.models import Member
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads
from tests.world import make_id


def _members(live_server) -> int:
    with live_server.db.session() as s:
        return s.execute(select(func.count()).select_from(Member)).scalar_one()


def _csv(rows) -> bytes:
    return ("姓名,身份证号,手机号,所属工会\n" + "".join(",".join(r) + "\n" for r in rows)
            ).encode("utf-8")


def _upload(page, name: str, content: bytes, button: str) -> None:
    page.locator("input[type=file]").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": content})
    with loads(page):
        page.get_by_role("button", name=button).click()


@both_viewports
@pytest.mark.zh
def test_a_bad_roster_shows_its_errors_and_a_good_one_imports(page, login, live_server,
                                                              screenshot, viewport):
    w = live_server.world.w
    base = 800 if viewport == "phone" else 900  # the server is shared by both runs
    a = w.union_uscc["A"]
    login(page, Role.COUNTY_ADMIN)
    page.goto("/imports/members")
    assert_no_serious_a11y(page)
    before = _members(live_server)
    bad = _csv([(f"新人{base}", make_id(base + 1), "13812345678", a),
                ("", make_id(base + 2), "", a),
                (f"新人{base + 3}", make_id(base + 3), "12345", a),
                (f"新人{base + 4}", make_id(base + 4), "", w.union_uscc["C"])])
    _upload(page, "坏名册.csv", bad, "检查文件")
    alert = page.get_by_role("alert")
    assert "无法导入" in alert.inner_text()
    rows = page.locator("table.row-errors tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(3)] == ["3", "4", "5"]
    assert "超出您的管辖范围" in rows.nth(2).inner_text()
    assert _members(live_server) == before  # nothing written
    assert page.get_by_role("button", name="导入").count() == 0
    assert_no_serious_a11y(page)
    screenshot(page, "errors")
    good = _csv([(f"新人{base}", make_id(base + 1), "13812345678", a),
                 (f"新人{base + 5}", make_id(base + 5), "", a)])
    _upload(page, "名册.csv", good, "检查文件")
    assert "没有错误" in page.locator("main").inner_text()
    assert _members(live_server) == before
    screenshot(page, "preview")
    with loads(page):
        page.get_by_role("button", name="导入 2 名会员").click()
    assert "已导入 2 名会员" in page.get_by_role("status").last.inner_text()
    assert _members(live_server) == before + 2
    assert_no_serious_a11y(page)
    screenshot(page, "imported")
    # the organisations and the union's members, masked
    page.goto("/orgs")
    assert "union A" in page.locator("main").inner_text()
    assert "union C" not in page.locator("main").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "orgs")
    with loads(page):
        page.get_by_role("link", name="union A").first.click()
    text = page.locator("main").inner_text()
    assert f"新*{str(base)[-1]}" in text or "新*" in text
    assert make_id(base + 1) not in text
    assert "无法显示完整身份证号" in text
    assert_no_serious_a11y(page)
    screenshot(page, "members")


@both_viewports
def test_the_pages_in_english_and_the_tree_opens(page, login, screenshot):
    login(page, Role.CITY_ADMIN)
    page.goto("/orgs")
    assert page.locator("html").get_attribute("lang") == "en"
    assert_no_serious_a11y(page)
    county = page.locator("li", has_text="迎泽区总工会").locator("details").first
    county.locator("summary").click()
    county.locator("text=union C").wait_for()
    assert_no_serious_a11y(page)
    screenshot(page, "tree")
    page.goto("/imports/members")
    assert_no_serious_a11y(page)
    page.get_by_role("link", name="union C").count()  # not on this page: fine
    page.goto("/orgs?q=union")
    with loads(page):
        page.get_by_role("link", name="union A").first.click()
    page.get_by_text("Change status").first.click()
    assert page.get_by_label("Reason").first.is_visible()
    assert_no_serious_a11y(page)
    screenshot(page, "members")
