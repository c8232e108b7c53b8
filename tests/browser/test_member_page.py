"""The member's phone pages in Chromium: the voucher list, the payment QR image (decoded here
with zxing-cpp and read back by the API's own verifier), the image rotating by itself, axe in
both languages, screenshots at 390 and 1400 px."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from civicvoucher.api import qr
from civicvoucher.auth.roles import Role
from civicvoucher.vouchers.models import Voucher
from tests.browser.harness import assert_no_serious_a11y, both_viewports


def _app_state(live_server):
    return live_server.server.server.config.app.state.cv


def _payable_voucher(live_server) -> int:
    member_id = live_server.account(Role.MEMBER).member_id
    with live_server.db.session() as s:
        found = s.execute(select(Voucher.id).where(Voucher.member_id == member_id,
                                                   Voucher.status == "issued",
                                                   Voucher.form == "digital")
                          .order_by(Voucher.id)).scalars().first()
    assert found, "the browser world's member has no unspent voucher left (another test spent it)"
    return found


def _decode(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, found
    return found[0].text


def _verified(live_server, payload: str) -> int:
    """The voucher id the API's verifier reads off a payload (qr_invalid/expired raise)."""
    with live_server.db.session() as s:
        return qr.read_payload(s, _app_state(live_server).qr_key, payload).id


def _image_loaded(page) -> None:
    page.wait_for_function("() => { const i = document.getElementById('qr');"
                           " return i && i.complete && i.naturalWidth > 0; }")


@both_viewports
def test_the_member_sees_their_vouchers_and_pays_with_the_qr(page, login, live_server,
                                                             screenshot, viewport):
    login(page, Role.MEMBER)
    page.goto("/m")
    page.get_by_role("heading", name="My vouchers").wait_for()
    vid = _payable_voucher(live_server)
    assert page.locator(".m-voucher").count() >= 1
    assert re.search(r"¥\d[\d,]*\.\d\d", page.locator(".m-amount").first.inner_text())
    assert page.get_by_text("daily goods").first.is_visible()
    assert_no_serious_a11y(page)
    screenshot(page, "vouchers")

    page.locator(f'a[href="/m/vouchers/{vid}"]').click()
    page.wait_for_url(f"**/m/vouchers/{vid}")
    _image_loaded(page)
    assert page.get_by_text("Show this code to the cashier").is_visible()
    assert re.search(r"New code in \d+ s", page.locator("#qr-left").inner_text())
    assert page.locator("#qr-status").get_attribute("aria-live") == "polite"

    # what the screen shows is a QR of a payment payload the API accepts, for this voucher
    shown = _decode(page.locator("#qr").screenshot())
    assert shown.startswith(f"cv1.{vid}.") and _verified(live_server, shown) == vid
    # and the image the page fetches is the API's: the same payload as its JSON form
    src = page.locator("#qr").get_attribute("src")
    fetched = page.request.get(src)
    assert fetched.status == 200 and fetched.headers["content-type"] == "image/png"
    assert _verified(live_server, _decode(fetched.body())) == vid
    assert_no_serious_a11y(page)
    screenshot(page, "qr")

    for path in ("/m/merchants", "/m/history"):
        page.goto(path)
        assert_no_serious_a11y(page)
        screenshot(page, path.rsplit("/", 1)[-1])


@pytest.mark.zh
@both_viewports
def test_the_member_pages_in_chinese(page, login, live_server, screenshot, viewport):
    login(page, Role.MEMBER)
    page.goto("/m")
    page.get_by_role("heading", name="我的消费券").wait_for()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_text("日用百货").first.is_visible()
    assert_no_serious_a11y(page)
    screenshot(page, "vouchers-zh")
    vid = _payable_voucher(live_server)
    page.goto(f"/m/vouchers/{vid}")
    _image_loaded(page)
    assert page.get_by_text("请向收银员出示此码").is_visible()
    assert_no_serious_a11y(page)
    screenshot(page, "qr-zh")
    page.goto("/m/merchants")
    page.get_by_label("类别").select_option("supermarket_fuel")
    page.get_by_role("button", name="查找商户").click()
    page.wait_for_url("**/m/merchants?*")
    assert "category=supermarket_fuel" in page.url
    assert page.locator(".m-merchant .m-name").all_inner_texts() == ["超市"]
    assert_no_serious_a11y(page)
    screenshot(page, "merchants-zh")
    page.goto("/m/history")
    assert_no_serious_a11y(page)


def test_the_qr_image_rotates_by_itself(page, login, live_server):
    """With a short period (8 s: swapped 3 s after it loads), the page fetches a new image with
    a new payload, and both were payloads the API accepted when shown."""
    st = _app_state(live_server)
    before = st.qr_period_s
    st.qr_period_s = 8
    try:
        login(page, Role.MEMBER)
        vid = _payable_voucher(live_server)
        page.goto(f"/m/vouchers/{vid}")
        _image_loaded(page)
        first = _decode(page.locator("#qr").screenshot())
        assert _verified(live_server, first) == vid
        src = page.locator("#qr").get_attribute("src")
        page.wait_for_function(
            "(old) => { const i = document.getElementById('qr');"
            " return i.getAttribute('src') !== old && i.dataset.generation === '1'; }",
            arg=src, timeout=20_000)
        new_src = page.locator("#qr").get_attribute("src")
        assert new_src.startswith(f"/m/vouchers/{vid}/qr?n=1-")  # cache-busting query
        second = _decode(page.locator("#qr").screenshot())
        assert second != first and _verified(live_server, second) == vid
        assert "new code" in page.locator("#qr-status").inner_text().lower()
    finally:
        st.qr_period_s = before


@pytest.mark.zh
@both_viewports
def test_the_history_shows_a_refunded_purchase(page, login, live_server, screenshot, viewport):
    """The member's voucher is spent at 超市 and refunded (restored: it stays payable for the
    other tests); the history shows both, local time, amounts in yuan."""
    from civicvoucher.vouchers.redemption import redeem, refund

    vid = _payable_voucher(live_server)
    with live_server.db.session() as s:
        done = redeem(s, code=s.get(Voucher, vid).code,
                      merchant_id=live_server.world.w.merchants["超市"],
                      order_amount_fen=45_050, channel="offline",
                      idem_key=f"member-page-history-{viewport}")
        s.commit()
        rid = done.redemption.id
    with live_server.db.session() as s:
        refund(s, redemption_id=rid, idem_key=f"member-page-history-refund-{viewport}")
        s.commit()
    login(page, Role.MEMBER)
    page.goto("/m/history")
    page.get_by_role("heading", name="消费记录").wait_for()
    card = page.locator(".m-spent").first
    text = card.inner_text()
    assert "超市" in text and "¥450.50" in text and "¥300.00" in text
    assert "已退款" in text and "已退回消费券" in text and "+08:00" in text
    assert_no_serious_a11y(page)
    screenshot(page, "history-zh")
