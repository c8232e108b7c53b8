"""The cashier's phone page in Chromium, as the world's cashier: type a voucher code, see
the preview, type the amount, confirm, see the receipt; a double tap and a resend of the same
form show the same receipt and the database holds one redemption. Both languages pass axe;
screenshots at 390 and 1400 px."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.vouchers.models import Redemption, Voucher
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads

RECEIPT = re.compile(r"R\d{8}-\d{8}")


@pytest.fixture(scope="module")
def own_codes(live_server) -> list[str]:
    """Vouchers of unions B and C for these tests (the world's union A vouchers stay for the
    member's pages): funded and issued once per session (the keys replay)."""
    from civicvoucher.funds.service import deposit
    from civicvoucher.vouchers.issuance import issue

    w = live_server.world.w
    with live_server.db.session() as s:
        for union in (w.union_b, w.union_c):
            deposit(s, org_id=union, amount_fen=1_000_000, source="dues",
                    idem_key=f"cashier-seed-{union}")
            issue(s, union_id=union, program=w.program, idem_key=f"cashier-issue-{union}")
        return list(s.execute(select(Voucher.code).where(
            Voucher.union_id.in_((w.union_b, w.union_c))).order_by(Voucher.id)).scalars())


def _unspent(live_server, codes: list[str]) -> Voucher:
    with live_server.db.session() as s:
        v = s.execute(select(Voucher).where(Voucher.code.in_(codes),
                                            Voucher.status == "issued")
                      .order_by(Voucher.id)).scalars().first()
        if v is None:
            pytest.skip("every voucher of these tests is spent")
        s.expunge(v)
        return v


def _redemptions_of(live_server, code: str) -> int:
    with live_server.db.session() as s:
        return s.execute(select(func.count()).select_from(Redemption).join(
            Voucher, Voucher.id == Redemption.voucher_id).where(Voucher.code == code)
        ).scalar_one()


@both_viewports
@pytest.mark.zh
def test_a_cashier_redeems_a_voucher_once(page, login, live_server, screenshot, own_codes):
    login(page, Role.CASHIER)
    page.goto("/c")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_role("heading", level=1).inner_text().startswith("收银核销")
    assert_no_serious_a11y(page)
    screenshot(page, "entry-zh")

    code = _unspent(live_server, own_codes).code
    page.get_by_label("券码或二维码").fill(code.lower())  # as typed: any case
    page.get_by_role("button", name="查询消费券").click()
    page.wait_for_url("**/c/preview")
    assert "¥300.00" in page.locator(".preview").inner_text()
    assert "本店可以核销" in page.locator(".verdict").inner_text()
    key = page.locator("input[name=idempotency_key]").input_value()
    assert len(key) >= 16
    assert_no_serious_a11y(page)
    screenshot(page, "preview-zh")

    amount = page.get_by_label("订单金额（元）")
    assert amount.evaluate("e => e === document.activeElement")  # ready to type
    amount.fill("350.50")
    form = {n: page.locator(f"form.confirm input[name={n}]").input_value()
            for n in ("csrf_token", "voucher", "idempotency_key", "order_amount")}
    page.get_by_role("button", name="确认核销").dblclick()  # a double tap
    page.wait_for_url("**/c/receipts/*")
    receipt = page.locator(".receipt")
    number = receipt.locator(".receipt-id").inner_text()
    assert RECEIPT.fullmatch(number)
    text = receipt.inner_text()
    assert "¥350.50" in text and "¥300.00" in text and "¥50.50" in text and "超市" in text
    assert _redemptions_of(live_server, code) == 1
    assert_no_serious_a11y(page)
    screenshot(page, "receipt-zh")

    # the same form sent again (a retry after a flaky network): the same receipt, no second
    again = page.request.post("/c/redeem", form=form, max_redirects=0)
    assert again.status == 303 and again.headers["location"].startswith(page.url.split(
        "?")[0].replace(live_server.url, ""))
    shown = page.request.get(again.headers["location"]).text()
    assert number in shown
    assert _redemptions_of(live_server, code) == 1

    # today's list has it; then the page in English
    page.goto("/c")
    assert number in page.locator(".today").inner_text()
    with loads(page):
        page.get_by_role("button", name="English").click()
    page.wait_for_url("**/c")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text().startswith("Cashier")
    assert_no_serious_a11y(page)
    screenshot(page, "today-en")
    page.get_by_role("link", name=number).click()
    page.wait_for_url("**/c/receipts/*")
    assert page.get_by_role("heading", name="Receipt").is_visible()
    assert_no_serious_a11y(page)


def test_a_spent_voucher_is_refused_in_english(page, login, live_server, screenshot,
                                               own_codes):
    login(page, Role.CASHIER)
    page.goto("/c")
    with live_server.db.session() as s:
        spent = s.execute(select(Voucher.code).where(
            Voucher.code.in_(own_codes), Voucher.status == "redeemed")).scalars().first()
    if spent is None:
        pytest.skip("no spent voucher yet (the redemption test runs first)")
    page.get_by_label("Voucher code or QR code").fill(spent)
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url("**/c/preview")
    verdict = page.locator(".verdict").inner_text()
    assert "Cannot be spent here" in verdict and "voucher_already_redeemed" in verdict
    assert page.get_by_role("button", name="Confirm redemption").count() == 0
    assert_no_serious_a11y(page)
    screenshot(page, "refused-en")


@pytest.mark.parametrize("viewport", ["phone"])
def test_without_a_barcode_detector_the_typed_field_stays(page, login):
    login(page, Role.MERCHANT_ADMIN)
    page.goto("/c")
    has = page.evaluate("() => 'BarcodeDetector' in window")
    scan = page.locator("#scan")
    assert scan.is_hidden() if not has else True
    assert page.get_by_label("Voucher code or QR code").is_visible()
    page.get_by_role("link", name="Settlement").click()  # merchant admins see statements
    page.wait_for_url("**/c/settlement")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Settlement")
    assert_no_serious_a11y(page)


# A camera and a detector that "see" the member's payment QR (the page's code cannot tell
# them from real ones): a canvas stream for getUserMedia, a BarcodeDetector that reads it.
FAKE_CAMERA = """
(() => {
  window.__scanned = %s;
  class FakeDetector {
    constructor(opts) { this.opts = opts; }
    static getSupportedFormats() { return Promise.resolve(["qr_code", "ean_13"]); }
    detect(source) { return Promise.resolve([{ rawValue: window.__scanned, format: "qr_code" }]); }
  }
  window.BarcodeDetector = FakeDetector;
  navigator.mediaDevices.getUserMedia = () => {
    const c = document.createElement("canvas"); c.width = 64; c.height = 64;
    c.getContext("2d").fillRect(0, 0, 64, 64);
    return Promise.resolve(c.captureStream(5));
  };
})();
"""


@pytest.mark.parametrize("viewport", ["phone"])
def test_scanning_the_members_qr_with_the_camera(page, login, live_server, screenshot,
                                                 own_codes):
    import json

    from civicvoucher.api import qr

    v = _unspent(live_server, own_codes)
    cv = live_server.server.server.config.app.state.cv  # the payload the member's app shows
    payload, _ = qr.make_payload(cv.qr_key, v, period_s=cv.qr_period_s)
    code = v.code
    page.add_init_script(FAKE_CAMERA % json.dumps(payload))
    login(page, Role.CASHIER)
    page.goto("/c")
    scan = page.get_by_role("button", name="Scan with the camera")
    scan.wait_for()
    assert_no_serious_a11y(page)
    scan.click()
    page.wait_for_url("**/c/preview")  # read, filled in and looked up
    assert "Can be spent here" in page.locator(".verdict").inner_text()
    assert code not in page.content()  # a scanned voucher never shows its code
    page.get_by_label("Order amount (yuan)").fill("300")
    page.keyboard.press("Enter")
    page.wait_for_url("**/c/receipts/*")
    assert RECEIPT.fullmatch(page.locator(".receipt-id").inner_text())
    assert _redemptions_of(live_server, code) == 1
    screenshot(page, "scanned-receipt")
