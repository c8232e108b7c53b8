"""Worked examples of the API: a cashier redeems, a member shows a QR code, errors speak."""

from __future__ import annotations

from civicvoucher.auth.roles import Role
from tests.api.conftest import books_ok


def test_cashier_redeems_typed_code_and_gets_receipt(api):
    r = api.call("POST", "/vouchers/lookup", Role.CASHIER, json={"code": api.codes_in[0].lower()})
    assert r.status_code == 200, r.text
    assert r.json()["min_order_fen"] == 30000
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 json={"code": api.codes_in[0], "order_amount_fen": 31000})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["receipt_id"].startswith("R20200501-") and body["amount_fen"] == 30000
    books_ok(api.db)


def test_member_qr_payload_redeems_once(api):
    vid = api.voucher_ids_in[0]
    mine = api.call("GET", "/me/vouchers", Role.MEMBER).json()
    assert [v["id"] for v in mine["items"]] == [vid]
    assert mine["items"][0]["code"] is None  # digital: shown as a QR, not as a code
    qr = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER,
                  headers={"Accept": "application/json"}).json()
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 json={"payload": qr["payload"], "order_amount_fen": 30000})
    assert r.status_code == 201, r.text
    again = api.call("POST", "/redemptions", Role.CASHIER,
                     json={"payload": qr["payload"], "order_amount_fen": 30000})
    assert (again.status_code, again.json()["code"]) == (409, "voucher_already_redeemed")
    assert again.headers["content-type"] == "application/problem+json"
    books_ok(api.db)


def test_problem_json_in_chinese_or_english(api):
    zh = api.call("POST", "/redemptions", Role.CASHIER, lang="zh-CN,zh;q=0.9",
                  json={"code": "AAAA-BBBB", "order_amount_fen": 100})
    en = api.call("POST", "/redemptions", Role.CASHIER, lang="en-US",
                  json={"code": "AAAA-BBBB", "order_amount_fen": 100})
    assert zh.status_code == en.status_code == 404
    assert zh.json()["code"] == en.json()["code"] == "voucher_not_found"
    assert zh.json()["title"] == "券码不存在" and en.json()["title"] == "No voucher with this code"
    missing = api.call("POST", "/redemptions", Role.CASHIER, key=None,
                       json={"code": api.codes_in[0], "order_amount_fen": 30000})
    assert (missing.status_code, missing.json()["code"]) == (422, "idempotency_key_required")
    bad = api.call("POST", "/funds/deposits", Role.PROVINCE_ADMIN,
                   json={"org_id": api.w.union_a, "amount_fen": -5, "source": "dues"})
    assert bad.status_code == 422 and bad.json()["field"] == "body.amount_fen"


def test_a_qr_payload_is_single_use_even_after_a_refund_restores_the_voucher(api):
    vid = api.voucher_ids_in[0]
    qr = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER,
                  headers={"Accept": "application/json"}).json()
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 json={"payload": qr["payload"], "order_amount_fen": 30000})
    assert r.status_code == 201, r.text
    back = api.call("POST", f"/redemptions/{r.json()['id']}/refund", Role.MERCHANT_ADMIN,
                    json={"reason": "退货"})
    assert back.status_code == 201 and back.json()["outcome"] == "restored", back.text
    again = api.call("POST", "/redemptions", Role.CASHIER,  # same payload, inside its window
                     json={"payload": qr["payload"], "order_amount_fen": 30000})
    assert (again.status_code, again.json()["code"]) == (409, "qr_already_used"), again.text
    from datetime import timedelta

    from civicvoucher.core import clock
    from tests.world import T0

    clock.set_clock(lambda: T0 + timedelta(seconds=5))  # the member's screen refreshes
    fresh = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER,
                     headers={"Accept": "application/json"}).json()
    assert fresh["payload"] != qr["payload"]
    ok = api.call("POST", "/redemptions", Role.CASHIER,
                  json={"payload": fresh["payload"], "order_amount_fen": 30000})
    assert ok.status_code == 201, ok.text
    books_ok(api.db)
