"""The must-show journey of issue 11, in one browser world, across roles, in Chinese:

1. a county admin uploads a members file for their new union: a bad row shows its error and
   nothing is written; the corrected file imports;
2. the province admin creates a program in the form;
3. the county admin checks the union's funding (the shortfall shown, nothing to confirm),
   the fund is topped up, checks again and confirms the issuance;
4. a member of the new roster sees the voucher and its QR on /m;
5. the cashier types the code on /c and redeems it; a second tap (the same attempt sent
   again) replays the same receipt;
6. the union's dashboard figures moved by what was issued and redeemed;
7. the voucher's trace shows every step.

axe on every page; no console errors. Its own county, union, county admin and member (made
through the services, as a federation would), so the world's other tests are not touched:
the cashier and the province admin are the world's. The fund's top-up is made through the
funds service: the console has no deposit page.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from civicvoucher.auth import credentials
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.core import clock
from civicvoucher.core.money import format_yuan
from civicvoucher.funds.service import deposit
from civicvoucher.members.models import Member
from civicvoucher.orgs.service import create_org
from civicvoucher.programs.models import Program
from civicvoucher.vouchers.models import Redemption, Voucher
from tests.browser.harness import assert_no_serious_a11y, loads
from tests.world import SECRET, make_id, make_uscc

RECEIPT = re.compile(r"R\d{8}-\d{8}")
PASSWORD = "journey-county-pw"
MEMBER_PASSWORD = "journey-member-pw"


def _csv(rows) -> bytes:
    return ("姓名,身份证号,手机号,所属工会\n" + "".join(",".join(r) + "\n" for r in rows)
            ).encode("utf-8")


def _sign_in(page, username: str, password: str) -> None:
    page.context.clear_cookies()
    page.goto("/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with loads(page):
        page.locator('form[action="/login"] [type=submit]').click()
    assert "/login" not in page.url


def _figure(page, name: str) -> int:
    return int(page.locator(f"#fig-{name} dd data").first.get_attribute("value"))


@pytest.fixture
def place(live_server):
    """A new county of the city with one union (no members yet) and its county admin."""
    w = live_server.world.w
    n = uuid.uuid4().hex[:6]
    with live_server.db.session() as s:
        county = create_org(s, level="county", name=f"万柏林区总工会{n}",
                            division_code="140109", parent_id=w.city)
        uscc = make_uscc(770 + int(n, 16) % 200)
        union = create_org(s, level="union", name=f"旅程工会{n}", uscc=uscc,
                           unit_type="enterprise", parent_id=county.id)
        admin = create_user(s, username=f"journey-county-{n}", role=Role.COUNTY_ADMIN,
                            password=PASSWORD, org_id=county.id)
        s.commit()
        return {"n": n, "county": county.id, "union": union.id, "union_name": union.name,
                "uscc": uscc, "admin": admin.user.username}


def _member_login(live_server, member_id: int, n: str) -> str:
    """The member's account, made as a union makes it (invited) and activated by the member
    over HTTP with the one-time code, as world.activate_member does."""
    with live_server.db.session() as s:
        new = create_user(s, username=f"journey-member-{n}", role=Role.MEMBER,
                          member_id=member_id)
        inv = credentials.invite(s, user_id=new.user.id, key=credentials.activation_key(SECRET))
        code = credentials.format_code(inv.code)
        s.commit()
    r = httpx.post(f"{live_server.url}/api/v1/auth/activate", headers={"Accept-Language": "en"},
                   json={"username": f"journey-member-{n}", "code": code,
                         "password": MEMBER_PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return f"journey-member-{n}"


@pytest.mark.zh
@pytest.mark.console_errors(r"status of 422 .*/programs/new")  # the bad field, refused
def test_the_journey(page, live_server, place, screenshot):
    db = live_server.db
    n, base = place["n"], 1500 + int(place["n"], 16) % 400
    ids = [make_id(base + i, "140109") for i in (1, 2)]

    # 1. the county admin imports the union's roster: a bad row first, nothing written
    _sign_in(page, place["admin"], PASSWORD)
    page.goto("/imports/members")
    assert_no_serious_a11y(page)
    with db.session() as s:
        before = s.execute(select(func.count()).select_from(Member)).scalar_one()
    bad = _csv([(f"旅客{n}甲", ids[0], "13812345678", place["uscc"]),
                (f"旅客{n}乙", ids[1][:-1] + ("0" if ids[1][-1] != "0" else "1"), "",
                 place["uscc"])])  # the second ID number's check digit is wrong
    page.locator("input[type=file]").set_input_files(
        {"name": "名册.csv", "mimeType": "text/csv", "buffer": bad})
    with loads(page):
        page.get_by_role("button", name="检查文件").click()
    assert "无法导入" in page.get_by_role("alert").inner_text()
    assert page.locator("table.row-errors tbody tr").count() == 1
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Member)).scalar_one() == before
    assert_no_serious_a11y(page)
    screenshot(page, "1-roster-refused")
    good = _csv([(f"旅客{n}甲", ids[0], "13812345678", place["uscc"]),
                 (f"旅客{n}乙", ids[1], "", place["uscc"])])
    page.locator("input[type=file]").set_input_files(
        {"name": "名册.csv", "mimeType": "text/csv", "buffer": good})
    with loads(page):
        page.get_by_role("button", name="检查文件").click()
    with loads(page):
        page.get_by_role("button", name="导入 2 名会员").click()
    assert "已导入 2 名会员" in page.get_by_role("status").last.inner_text()
    with db.session() as s:
        members = list(s.execute(select(Member.id).where(Member.union_id == place["union"])
                                 .order_by(Member.id)).scalars())
    assert len(members) == 2
    assert_no_serious_a11y(page)

    # 2. the province admin creates the program in the form (a bad amount first)
    pa = live_server.account(Role.PROVINCE_ADMIN)
    _sign_in(page, pa.username, pa.password)
    page.goto("/programs")
    with loads(page):
        page.get_by_role("link", name="新建活动").click()
    today = clock.to_local(clock.now()).date()
    key = f"journey-{n}"
    page.locator("#f-key").fill(key)
    page.locator("#f-name").fill(f"旅程消费券{n}")
    page.locator("#f-documents").fill("晋工发〔2026〕11号")
    page.locator("#p0-key").fill("voucher")
    page.locator("#p0-name").fill("职工消费券")
    page.locator("#p0-denoms").fill("100元×0")  # no voucher at all: refused
    page.locator("#p0-from").fill((today - timedelta(days=1)).isoformat())
    page.locator("#p0-until").fill((today + timedelta(days=30)).isoformat())
    with loads(page):
        page.get_by_role("button", name="创建活动").click()
    assert "第 1 个券种的面额" in page.locator("#p0-denoms-error").inner_text()
    assert page.locator("#p0-denoms").get_attribute("aria-invalid") == "true"
    with db.session() as s:
        assert s.execute(select(Program.id).where(Program.key == key)).first() is None
    assert_no_serious_a11y(page)
    page.locator("#p0-denoms").fill("50×2")
    with loads(page):
        page.get_by_role("button", name="创建活动").click()
    assert page.url.endswith(f"/programs/{key}?saved=created")
    assert "活动已创建" in page.locator("#saved").inner_text()
    assert_no_serious_a11y(page)
    screenshot(page, "2-program-created")

    # 3. the county admin checks the union's funding: short, nothing to confirm; topped up,
    #    checked again and confirmed
    _sign_in(page, place["admin"], PASSWORD)
    page.goto("/issue")
    page.locator("#i-program").select_option(value=key)
    page.locator("#i-union").select_option(label=place["union_name"])
    with loads(page):
        page.get_by_role("button", name="核对资金").click()
    assert page.locator("#to-receive").inner_text() == "2"
    assert page.locator("#shortfall").inner_text() == format_yuan(20000)
    assert page.get_by_role("button", name="确认发放").count() == 0
    assert_no_serious_a11y(page)
    screenshot(page, "3-shortfall")
    with db.session() as s:
        deposit(s, org_id=place["union"], amount_fen=20000, source="dues",
                idem_key=f"journey-{n}")
        s.commit()
    page.goto(f"/dashboard?org={place['union']}&program={key}")
    issued_before, redeemed_before = _figure(page, "issued"), _figure(page, "redeemed")
    page.goto("/issue")
    page.locator("#i-program").select_option(value=key)
    page.locator("#i-union").select_option(label=place["union_name"])
    with loads(page):
        page.get_by_role("button", name="核对资金").click()
    assert page.locator("#shortfall").inner_text() == format_yuan(0)
    with loads(page):
        page.get_by_role("button", name="确认发放").click()
    assert page.locator("#vouchers-issued").inner_text() == "4"
    assert page.locator("#amount-issued").inner_text() == format_yuan(20000)
    assert_no_serious_a11y(page)

    # 4. the member sees the voucher and its QR
    username = _member_login(live_server, members[0], n)
    _sign_in(page, username, MEMBER_PASSWORD)
    page.goto("/m")
    expect(page.locator(".m-voucher")).to_have_count(2)
    assert_no_serious_a11y(page)
    screenshot(page, "4-member")
    with db.session() as s:
        vid, code = s.execute(select(Voucher.id, Voucher.code).where(
            Voucher.member_id == members[0]).order_by(Voucher.id)).first()
    page.locator(f'a[href="/m/vouchers/{vid}"]').click()
    page.wait_for_url(f"**/m/vouchers/{vid}")
    page.wait_for_function("() => { const i = document.getElementById('qr');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert_no_serious_a11y(page)
    screenshot(page, "4-qr")

    # 5. the cashier types the code and redeems it; a second tap replays the receipt
    cashier = live_server.account(Role.CASHIER)
    _sign_in(page, cashier.username, cashier.password)
    page.goto("/c")
    page.get_by_label("券码或二维码").fill(code)
    page.get_by_role("button", name="查询消费券").click()
    page.wait_for_url("**/c/preview")
    assert "¥50.00" in page.locator(".preview").inner_text()
    assert_no_serious_a11y(page)
    page.get_by_label("订单金额（元）").fill("80")
    form = {x: page.locator(f"form.confirm input[name={x}]").input_value()
            for x in ("csrf_token", "voucher", "idempotency_key", "order_amount")}
    page.get_by_role("button", name="确认核销").click()
    page.wait_for_url("**/c/receipts/*")
    number = page.locator(".receipt .receipt-id").inner_text()
    assert RECEIPT.fullmatch(number)
    again = page.request.post("/c/redeem", form=form, max_redirects=0)  # the second tap
    assert again.status == 303
    assert number in page.request.get(again.headers["location"]).text()
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Redemption).where(
            Redemption.voucher_id == vid)).scalar_one() == 1
    assert_no_serious_a11y(page)
    screenshot(page, "5-receipt")

    # 6. the union's dashboard moved by what was issued and redeemed
    _sign_in(page, place["admin"], PASSWORD)
    page.goto(f"/dashboard?org={place['union']}&program={key}")
    assert _figure(page, "issued") == issued_before + 20000
    assert _figure(page, "redeemed") == redeemed_before + 5000
    assert_no_serious_a11y(page)
    screenshot(page, "6-dashboard")

    # 7. the voucher's trace: every step
    page.goto(f"/trace/{vid}")
    expect(page.locator(".trace-step .step-name")).to_have_text(["发放", "推送电子券", "核销"])
    redeemed = page.locator(".step-redeemed").inner_text()
    assert number in redeemed and "¥50.00" in redeemed
    assert_no_serious_a11y(page)
    screenshot(page, "7-trace")
