"""Merchants and settlement in Chromium, as the browser world's people: the county admin
(小店) registers a merchant by form, with bank details, and it is pending; the city admin
approves it from the queue and it is active. The province admin runs a settlement from the
page and downloads the bank's payout file. In Chinese and in English, at 390 and 1400 px,
axe finding nothing serious."""

from __future__ import annotations

import csv
import io
import itertools
import random
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from civicvoucher.members.models import Member
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.service import set_bank_details
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import redeem
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads
from tests.world import SECRET, make_id, make_uscc

_n = itertools.count(random.randrange(100_000, 900_000, 1000))
WORDS = {
    "en": {"register": "Register (pending)", "approve": "Approve", "uscc": "Unified social credit code",
           "name": "Merchant name", "mcc": "MCC (merchant category code)",
           "county": "County division code", "payee": "Payee account name",
           "bank": "Bank (branch)", "account": "Account number", "pending": "pending",
           "active": "active", "run": "Run settlement", "xlsx": "Download XLSX"},
    "zh": {"register": "登记（待审核）", "approve": "审核通过", "uscc": "统一社会信用代码",
           "name": "商户名称", "mcc": "商户类别码（MCC）", "county": "区县行政区划代码",
           "payee": "收款户名", "bank": "开户行", "account": "银行账号", "pending": "待审核",
           "active": "正常", "run": "执行结算", "xlsx": "下载 Excel（XLSX）"},
}


def _onboard_and_approve(page, login, screenshot, lang):
    w = WORDS[lang]
    n = next(_n)
    uscc, name = make_uscc(n), f"浏览器新店{n}"
    login(page, "county_admin")
    page.goto("/merchants/new")
    assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
    # first a wrong check character: the field is named, nothing registered
    page.get_by_label(w["uscc"], exact=True).fill(uscc[:-1] + ("0" if uscc[-1] != "0" else "1"))
    page.get_by_label(w["name"], exact=True).fill(name)
    page.get_by_label(w["mcc"], exact=True).fill("5812")
    page.get_by_label(w["county"], exact=True).fill("140105")
    page.get_by_label(w["payee"], exact=True).fill(f"{name}有限公司")
    page.get_by_label(w["bank"], exact=True).fill("中国工商银行太原小店支行")
    page.get_by_label(w["account"], exact=True).fill("6222 0200 0000 0000 018")
    with loads(page):
        page.get_by_role("button", name=w["register"]).click()
    expect(page.locator("#r-uscc-error")).to_be_visible()
    assert page.get_by_label(w["uscc"], exact=True).get_attribute("aria-invalid") == "true"
    assert_no_serious_a11y(page)
    screenshot(page, f"register-error-{lang}")
    page.get_by_label(w["uscc"], exact=True).fill(uscc)
    page.get_by_label(w["account"], exact=True).fill("6222 0200 0000 0000 018")
    with loads(page):
        page.get_by_role("button", name=w["register"]).click()
    expect(page.locator("#registered")).to_be_visible()
    expect(page.locator("#m-status")).to_have_text(w["pending"])
    expect(page.locator("#m-account")).to_have_text("6222****0018")
    assert_no_serious_a11y(page)
    screenshot(page, f"registered-{lang}")

    page.context.clear_cookies()
    login(page, "city_admin")
    page.goto("/merchants/queue")
    card = page.locator("section.card", has=page.get_by_role("heading", name=name))
    expect(card).to_have_count(1)
    assert_no_serious_a11y(page)
    screenshot(page, f"queue-{lang}")
    with loads(page):
        card.get_by_role("button", name=w["approve"]).click()
    expect(page.locator("#decided")).to_be_visible()
    expect(page.get_by_role("heading", name=name)).to_have_count(0)
    return uscc


# the first try's wrong check character answers 422, as a form with an error does
WRONG_FORM = pytest.mark.console_errors(r"status of 422 .*/merchants/new")


@pytest.mark.zh
@WRONG_FORM
@both_viewports
def test_onboard_then_another_admin_approves_zh(page, login, screenshot, live_server, viewport):
    uscc = _onboard_and_approve(page, login, screenshot, "zh")
    with live_server.db.session() as s:
        m = s.execute(select(Merchant).where(Merchant.uscc == uscc)).scalar_one()
        assert m.status == "active" and "6222020000000000018" not in m.account_sealed


@WRONG_FORM
@both_viewports
def test_onboard_then_another_admin_approves_en(page, login, screenshot, live_server, viewport):
    uscc = _onboard_and_approve(page, login, screenshot, "en")
    page.goto("/merchants?status=active")
    expect(page.get_by_role("link", name=f"浏览器新店{int(uscc[8:17])}")).to_have_count(1)
    assert_no_serious_a11y(page)
    screenshot(page, "list-en")


@pytest.fixture
def spent(live_server):
    """A voucher of a new member of union A spent at 超市, and bank details for every merchant
    of the world that has none (a run settles whatever is posted; its file needs them all)."""
    w = live_server.world.w
    n = next(_n) % 100_000
    with live_server.db.session() as s:
        add_members(s, [(1, MemberRow(name=f"结算{n}", id_number=make_id(n), phone=None,
                                      union=w.union_uscc["A"], status=MemberStatus.ACTIVE))],
                    key=SECRET)
        member = s.execute(select(Member.id).where(Member.union_id == w.union_a)
                           .order_by(Member.id.desc())).scalars().first()
        issue(s, union_id=w.union_a, program=w.program, idem_key=f"settle-{uuid.uuid4()}",
              member_ids=[member])
        code = s.execute(select(Voucher.code).where(Voucher.member_id == member)).scalars().first()
        redeem(s, code=code, merchant_id=w.merchants["超市"], order_amount_fen=32000,
               idem_key=f"settle-spend-{uuid.uuid4()}")
        for m in s.execute(select(Merchant).where(Merchant.account_sealed.is_(None))).scalars():
            set_bank_details(s, merchant_id=m.id, payee_name=f"{m.name}有限公司",
                             bank_name="中国银行太原分行", account_no=f"6013{m.id:015d}")


def _settle_and_download(page, login, screenshot, lang):
    w = WORDS[lang]
    login(page, "province_admin")
    page.goto("/settlement")
    assert_no_serious_a11y(page)
    screenshot(page, f"runs-{lang}")
    with loads(page):
        page.get_by_role("button", name=w["run"]).click()
    expect(page.locator("#run-done")).to_be_visible()
    assert_no_serious_a11y(page)
    screenshot(page, f"run-{lang}")
    with page.expect_download() as dl:
        page.get_by_role("link", name=w["xlsx"]).click()
    assert dl.value.suggested_filename.endswith("-bank.xlsx")
    r = page.request.get(page.locator("#export-csv").get_attribute("href"))
    assert r.status == 200
    rows = list(csv.reader(io.StringIO(r.body().decode("utf-8-sig"))))
    assert rows[0][3] in ("银行账号",) and len(rows) >= 2
    with loads(page):
        page.locator("table.batches a").first.click()
    expect(page.locator("#batch-total")).to_be_visible()
    assert_no_serious_a11y(page)
    screenshot(page, f"batch-{lang}")


@pytest.mark.zh
@both_viewports
def test_settlement_run_and_bank_file_zh(page, login, screenshot, spent, viewport):
    _settle_and_download(page, login, screenshot, "zh")


@both_viewports
def test_settlement_run_and_bank_file_en(page, login, screenshot, spent, viewport):
    _settle_and_download(page, login, screenshot, "en")
