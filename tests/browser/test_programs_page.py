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


def _program(live_server, key: str):
    from civicvoucher.programs.models import Product, Program

    with live_server.db.session() as s:
        p = s.execute(select(Program).where(Program.key == key)).scalar()
        if p is None:
            return None
        return [(x.key, list(x.denominations), x.threshold_fen, x.optional) for x in s.execute(
            select(Product).where(Product.program_id == p.id).order_by(Product.id)).scalars()]


@both_viewports
@pytest.mark.zh
@pytest.mark.console_errors(r"status of 422 .*/programs/new")  # the bad field, refused
def test_create_a_program_in_the_form_then_edit_it(page, login, live_server, screenshot,
                                                    viewport):
    import uuid

    key = f"form-{viewport}-{uuid.uuid4().hex[:6]}"
    login(page, Role.PROVINCE_ADMIN)
    page.goto("/programs")
    with loads(page):
        page.get_by_role("link", name="新建活动").click()
    assert page.locator("h1").inner_text() == "新建活动"
    assert_no_serious_a11y(page)
    screenshot(page, "form")
    today = clock.to_local(clock.now()).date()
    page.get_by_label("活动代码").fill(key)
    page.get_by_label("活动名称").fill("表单创建的活动")
    page.locator("#p0-key").fill("voucher")
    page.locator("#p0-name").fill("职工消费券")
    page.locator("#p0-denoms").fill("50×6")
    page.locator("#p0-threshold").fill("12.5")  # not whole yuan: refused
    page.locator("#p0-from").fill(today.isoformat())
    page.locator("#p0-until").fill((today + timedelta(days=60)).isoformat())
    with loads(page):
        page.get_by_role("button", name="添加券种").click()  # a tourism card too
    page.locator("#p1-key").fill("tourism")
    page.locator("#p1-kind").select_option("tourism_card")
    page.locator("#p1-name").fill("旅游年卡")
    page.locator("#p1-denoms").fill("1.5万")
    page.locator("#p1-optional").check()
    with loads(page):
        page.get_by_role("button", name="创建活动").click()
    alert = page.get_by_role("alert")
    assert "第 1 个券种的使用门槛（元）" in alert.inner_text()
    assert page.locator("#p0-threshold").get_attribute("aria-invalid") == "true"
    assert page.locator("#p1-denoms").input_value() == "1.5万"  # the rest kept as typed
    assert _program(live_server, key) is None  # nothing written
    assert_no_serious_a11y(page)
    screenshot(page, "refused")
    page.locator("#p0-threshold").fill("100")
    with loads(page):
        page.get_by_role("button", name="创建活动").click()
    assert page.url.endswith(f"/programs/{key}?saved=created")
    assert _program(live_server, key) == [("voucher", [5000] * 6, 10000, False),
                                          ("tourism", [1_500_000], 0, True)]
    assert_no_serious_a11y(page)
    screenshot(page, "created")

    # not launched yet: the definition may still change
    with loads(page):
        page.get_by_role("link", name="修改活动").click()
    assert page.locator("#p0-denoms").input_value() == "50×6"
    page.locator("#p0-denoms").fill("100×3")
    page.locator("#p1-remove").check()
    with loads(page):
        page.get_by_role("button", name="保存修改").click()
    assert "活动已修改" in page.locator("#saved").inner_text()
    assert _program(live_server, key) == [("voucher", [10000] * 3, 10000, False)]
    assert_no_serious_a11y(page)
    screenshot(page, "edited")


def test_a_launched_program_says_why_it_cannot_be_edited(page, login, live_server):
    w = live_server.world.w
    login(page, Role.PROVINCE_ADMIN)
    page.goto(f"/programs/{w.program}")
    assert page.locator("#edit-closed").count() == 1
    page.goto(f"/programs/{w.program}/edit")
    assert "Vouchers have been issued" in page.locator("#launched").inner_text()
    assert page.locator("form.program-form").count() == 0
    with loads(page):
        page.get_by_role("link", name="Extend the deadline").click()
    assert page.locator("#x-until").count() == 1
    assert_no_serious_a11y(page)
