"""The cashier's phone page (/c): look a voucher up (nothing changes), redeem it through the
API's own handler with the page's attempt key (the same key twice: one redemption, the same
receipt), refusals told in zh and en with amounts in yuan, only this merchant's receipts,
merchant staff only."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from civicvoucher.api import qr
from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.programs.models import Product
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import redeem

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
RECEIPT = re.compile(r'data-receipt="(R\d{8}-\d{8})"')


def _preview(console, voucher: str):
    return console.client.post("/c/preview", data={"voucher": voucher,
                                                   "csrf_token": console.csrf("/c")})


def _redeem(console, voucher: str, amount: str, key: str):
    """The confirm form sent; a redemption answers 303 to its receipt, which is followed."""
    r = console.client.post("/c/redeem", data={
        "voucher": voucher, "order_amount": amount, "idempotency_key": key,
        "csrf_token": console.csrf("/c")})
    if r.status_code == 303:
        assert r.headers["location"].startswith("/c/receipts/"), r.headers["location"]
        return console.client.get(r.headers["location"])
    return r


def _count(console, **where) -> int:
    with console.aw.db.session() as s:
        q = select(func.count()).select_from(Redemption)
        for k, v in where.items():
            q = q.where(getattr(Redemption, k) == v)
        return s.execute(q).scalar_one()


def _lang(console, lang: str) -> None:
    console.client.cookies.set("cv_lang", lang)


def test_redeem_through_the_page_and_the_same_key_replays_the_receipt(console):
    console.login(Role.CASHIER)
    _lang(console, "en")
    code = console.aw.codes_in[0]
    r = _preview(console, code.lower())  # typed as people type it
    assert r.status_code == 200, r.text[:500]
    assert "¥300.00" in r.text and "Can be spent here" in r.text
    assert _count(console) == 0  # the preview changes nothing
    key = KEY.search(r.text)[1]
    first = _redeem(console, code.lower(), "1.2万", key)
    assert first.status_code == 200, first.text[:800]
    receipt = RECEIPT.search(first.text)[1]
    assert "¥12,000.00" in first.text and "¥300.00" in first.text and "超市" in first.text
    again = _redeem(console, code.lower(), "1.2万", key)  # a double tap, a resend
    assert again.status_code == 200 and RECEIPT.search(again.text)[1] == receipt
    assert _count(console) == 1
    with console.aw.db.session() as s:
        audits = s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "redemption.create")).scalar_one()
        assert audits == 1  # audited once, with the cashier as the actor
        actor = s.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "redemption.create")).scalar_one()
        assert "cashier" in actor
    page = console.client.get("/c")
    assert receipt in page.text and "¥300.00" in page.text  # today's list and totals
    rid = int(receipt.split("-")[1])
    shown = console.client.get(f"/c/receipts/{rid}")
    assert shown.status_code == 200 and receipt in shown.text
    for path in ("/c/redeem", "/c/preview"):  # the language switch comes back with a GET
        back = console.client.get(path)
        assert back.status_code == 303 and back.headers["location"] == "/c"


def test_a_new_attempt_on_a_spent_voucher_is_refused(console):
    console.login(Role.MERCHANT_ADMIN)
    _lang(console, "en")
    code = console.aw.codes_in[0]
    key = KEY.search(_preview(console, code).text)[1]
    assert _redeem(console, code, "300", key).status_code == 200
    r = _preview(console, code)  # the voucher again: a fresh attempt shows it spent
    assert "voucher_already_redeemed" in r.text and "Confirm redemption" not in r.text
    other = _redeem(console, code, "300", "0" * 8 + "-fresh-key-123")
    assert other.status_code == 409 and "voucher_already_redeemed" in other.text
    assert _count(console) == 1


def test_a_scanned_payload_redeems_and_its_retry_replays(console):
    console.login(Role.CASHIER)
    with console.aw.db.session() as s:
        v = s.get(Voucher, console.aw.voucher_ids_in[1])
        payload, _ = qr.make_payload(console.client.app.state.cv.qr_key, v, period_s=30)
        code = v.code
    r = _preview(console, payload)
    assert r.status_code == 200 and code not in r.text  # the payload never shows the code
    key = KEY.search(r.text)[1]
    first = _redeem(console, payload, "350.5", key)
    assert first.status_code == 200, first.text[:800]
    again = _redeem(console, payload, "350.5", key)
    assert RECEIPT.search(again.text)[1] == RECEIPT.search(first.text)[1]
    assert _count(console) == 1


@pytest.mark.parametrize("lang, below, expired, category", [
    ("en", "the order of ¥299.99 is below the ¥300.00 this voucher needs",
     "expired at 2020-07-11 00:00 +08:00", "category supermarket fuel is not allowed"),
    ("zh", "订单金额 ¥299.99 未达到此券的使用门槛 ¥300.00", "此券已于 2020-07-11 00:00 +08:00 过期",
     "此券不能在超市便利加油类商户使用"),
])
def test_refusals_say_why_in_the_readers_language(console, now, lang, below, expired,
                                                 category):
    console.login(Role.CASHIER)
    _lang(console, lang)
    code = console.aw.codes_in[0]
    key = KEY.search(_preview(console, code).text)[1]
    r = _redeem(console, code, "299.99", key)
    assert r.status_code == 409 and "order_below_threshold" in r.text
    assert below in r.text, r.text[:3000]
    assert f'value="{key}"' in r.text  # the same attempt, corrected: the same key
    ok = _redeem(console, code, "300", key)  # the corrected amount, same key: spent once
    assert ok.status_code == 200 and _count(console) == 1

    with console.aw.db.session() as s:  # this program leaves supermarkets out
        s.execute(update(Product).values(categories=["daily_goods", "hotel_dining"]))
    r = _preview(console, console.aw.codes_in[1])
    assert r.status_code == 200 and "category_not_allowed" in r.text and category in r.text
    assert "Confirm redemption" not in r.text and "确认核销" not in r.text

    now.shift(days=80)  # after the deadline: sign in again (the session timed out)
    console.login(Role.CASHIER)
    r = _preview(console, console.aw.codes_in[2])
    assert "voucher_expired" in r.text and expired in r.text, r.text[:3000]
    assert _count(console) == 1


def test_a_typo_in_the_amount_keeps_the_attempt(console):
    console.login(Role.CASHIER)
    _lang(console, "en")
    code = console.aw.codes_in[0]
    key = KEY.search(_preview(console, code).text)[1]
    r = _redeem(console, code, "12,34", key)
    assert r.status_code == 422 and "order_amount_invalid" in r.text
    assert 'aria-invalid="true"' in r.text and f'value="{key}"' in r.text
    assert _count(console) == 0


def test_an_unknown_code_is_told_and_counted(console):
    console.login(Role.CASHIER)
    _lang(console, "en")
    r = _preview(console, "NOSUCHCODE12345")
    assert r.status_code == 404 and "voucher_not_found" in r.text
    r = _preview(console, "cvh1.1.1.abc")  # a hand-out sheet's QR, not a payment
    assert r.status_code == 422 and "qr_not_for_payment" in r.text


def test_another_merchants_receipt_is_not_visible(console):
    aw = console.aw
    with aw.db.session() as s:  # spent at the other province's merchant
        red = redeem(s, code=aw.codes_out[0], merchant_id=aw.merchant_out,
                     order_amount_fen=30_000, idem_key="elsewhere").redemption
        rid = red.id
    console.login(Role.CASHIER)
    _lang(console, "en")
    r = console.client.get(f"/c/receipts/{rid}")
    assert r.status_code == 403 and "out_of_scope" in r.text  # the API's refusal
    assert "¥300.00" not in r.text.split('id="today-title"')[0]  # nothing of it shown
    page = console.client.get("/c")
    assert f"/c/receipts/{rid}" not in page.text and "No redemptions yet today." in page.text
    # the API refuses it the same way
    api = aw.call("GET", f"/redemptions/{rid}", Role.CASHIER)
    assert api.status_code == r.status_code


@pytest.mark.parametrize("role", [Role.COUNTY_ADMIN, Role.UNION_ADMIN, Role.AUDITOR,
                                  Role.ANALYST, Role.PROVINCE_ADMIN])
def test_other_roles_are_refused(console, role):
    console.login(role)
    assert console.client.get("/c").status_code == 403
    r = console.client.post("/c/redeem", data={
        "voucher": console.aw.codes_in[0], "order_amount": "300",
        "idempotency_key": "k" * 20, "csrf_token": console.csrf("/")})
    assert r.status_code == 403 and _count(console) == 0


def test_settlement_statements_for_the_merchant_admin_only(console):
    from civicvoucher.settlement.service import settle

    aw = console.aw
    with aw.db.session() as s:
        for i, code in enumerate(aw.codes_in[:2]):
            redeem(s, code=code, merchant_id=aw.merchant_in, order_amount_fen=40_000,
                   idem_key=f"s{i}")
        settle(s, cutoff=None, idem_key="run-1")
        redeem(s, code=aw.codes_out[0], merchant_id=aw.merchant_out, order_amount_fen=30_000,
               idem_key="out")
    console.login(Role.MERCHANT_ADMIN)
    _lang(console, "en")
    r = console.client.get("/c/settlement")
    assert r.status_code == 200 and "¥600.00" in r.text, r.text[:2000]
    assert r.text.count("run 1, batch") == 1  # only its own batch
    console.client.post("/logout", data={"csrf_token": console.csrf("/")})
    console.login(Role.CASHIER)
    assert console.client.get("/c/settlement").status_code == 403
    assert 'href="/c/settlement"' not in console.client.get("/c").text  # no link either
