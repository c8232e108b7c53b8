"""The API's problems in the language Accept-Language asks for: zh-CN by default, en on
request, the whole problem (title, detail, every ``errors[].reason``), Content-Language saying
which. And the door's other words: Chinese channel names accepted, a program updated before
launch (PUT /programs/{program}), refused ``program_launched`` after."""

from __future__ import annotations

import io
import re

import pytest

from civicvoucher.auth.roles import Role
from civicvoucher.core import clock
from civicvoucher.funds.service import deposit
from civicvoucher.vouchers.issuance import issue
from tests.api.conftest import build_api_world
from tests.world import T0, program_spec

CJK = re.compile(r"[\u4e00-\u9fff]")
# two English words in a row: a sentence (codes, field names and placeholders are one word)
ENGLISH = re.compile(r"[A-Za-z]{3,}[ ,;:]+[A-Za-z]{3,}")


@pytest.fixture(autouse=True)
def frozen_clock():
    """The world's program runs in 2020 (as in tests/api/conftest.py)."""
    clock.set_clock(lambda: T0)
    yield
    clock.set_clock(None)


@pytest.fixture
def aw(db):
    w = build_api_world(db)
    yield w
    w.client.close()


def texts(body: dict) -> list[str]:
    out = [body["title"], body["detail"]]
    out += [e["reason"] for e in body.get("errors") or []]
    return out


def assert_zh(r, *allowed: str) -> dict:
    """Every text of the problem Chinese, no English sentence (``allowed``: words it may
    quote, such as a header's name)."""
    assert r.headers["content-language"] == "zh-CN"
    body = r.json()
    for t in texts(body):
        assert CJK.search(t), t
        bare = t
        for a in allowed:
            bare = bare.replace(a, "")
        assert not ENGLISH.search(bare), t
    return body


def assert_en(r, *allowed: str) -> dict:
    """No Chinese (``allowed``: data it may quote, such as a file's column names)."""
    assert r.headers["content-language"] == "en"
    body = r.json()
    for t in texts(body):
        for a in allowed:
            t = t.replace(a, "")
        assert not CJK.search(t), t
    return body


def both(aw, method, path, role, **kw):
    """The same refused call in zh (no Accept-Language: the default) and in en."""
    zh = aw.call(method, path, role, lang="", **kw)
    en = aw.call(method, path, role, lang="en", **kw)
    return zh, en


def test_insufficient_funds_in_yuan(aw):
    # a transfer from the city's fund, which is empty: approving it is refused
    t = aw.call("POST", "/funds/deposits", Role.CITY_ADMIN, json={
        "org_id": aw.w.union_a, "amount_fen": 400_00, "source": "transfer",
        "from_org_id": aw.w.city})
    assert t.status_code == 202, t.text
    path = f"/funds/deposit-requests/{t.json()['id']}/approve"
    zh, en = both(aw, "POST", path, Role.PROVINCE_ADMIN)
    assert zh.status_code == en.status_code == 409, zh.text
    assert zh.json()["code"] == "insufficient_funds"
    b = assert_zh(zh)
    assert b["title"] == "资金不足"
    assert "¥400.00" in b["detail"] and "fen" not in b["detail"]
    e = assert_en(en)
    assert e["title"] == "Insufficient funds" and "¥400.00" in e["detail"]


def test_order_below_threshold(aw):
    spec = program_spec(key="p-threshold", threshold=500)
    with aw.db.session() as s:
        from civicvoucher.programs.service import create_program
        from civicvoucher.programs.spec import parse_program_spec

        create_program(s, spec=parse_program_spec(spec))
        deposit(s, org_id=aw.w.union_b, amount_fen=1_000_000, source="dues", idem_key="b")
        issue(s, union_id=aw.w.union_b, program="p-threshold", idem_key="b-issue", now=T0)
        from sqlalchemy import select

        from civicvoucher.vouchers.models import Voucher

        codes = list(s.execute(select(Voucher.code).where(
            Voucher.union_id == aw.w.union_b)).scalars())
    zh = aw.call("POST", "/redemptions", Role.CASHIER, lang="zh-CN",
                 json={"code": codes[0], "order_amount_fen": 30000})
    en = aw.call("POST", "/redemptions", Role.CASHIER, lang="en",
                 json={"code": codes[1], "order_amount_fen": 30000})
    assert zh.status_code == en.status_code == 409, zh.text
    assert zh.json()["code"] == "order_below_threshold"
    b = assert_zh(zh)
    assert "¥500.00" in b["detail"]
    e = assert_en(en)
    assert "¥500.00" in e["detail"]


HEADERS = ("姓名", "身份证号", "手机号", "所属工会", "状态",  # column names
           "在职", "停用", "离会", "调出")  # the status words a file may use


def _roster(text: str) -> dict:
    return {"files": {"file": ("roster.csv", io.BytesIO(text.encode()), "text/csv")}}


def test_import_row_errors(aw):
    bad = ("姓名,身份证号,手机号,所属工会,状态\n"
           ",110101199001011234,12,{u},在职\n"
           "张三,not-an-id,,{u},whatever\n").format(u=aw.w.union_uscc["A"])
    zh = aw.call("POST", "/members/import", Role.UNION_ADMIN, lang="zh", **_roster(bad))
    en = aw.call("POST", "/members/import", Role.UNION_ADMIN, lang="en", **_roster(bad))
    assert zh.status_code == en.status_code == 422, zh.text
    b = assert_zh(zh)
    assert b["code"] == "import_rejected" and len(b["errors"]) >= 3
    e = assert_en(en, *HEADERS)  # the file's own words are data
    assert len(e["errors"]) == len(b["errors"])


def test_validation_error(aw):
    body = {"code": "ABCD", "order_amount_fen": "100", "channel": "by pigeon", "extra": 1}
    zh, en = both(aw, "POST", "/redemptions", Role.CASHIER, json=body)
    assert zh.status_code == en.status_code == 422
    b = assert_zh(zh)
    reasons = {e["field"]: e["reason"] for e in b["errors"]}
    assert reasons["body.order_amount_fen"] == "须为整数"
    assert reasons["body.extra"] == "不接受此字段"
    assert reasons["body.channel"].startswith("须为以下之一：")
    assert b["detail"].startswith("body.")
    e = assert_en(en)
    en_reasons = {x["field"]: x["reason"] for x in e["errors"]}
    assert en_reasons["body.extra"] == "Extra inputs are not permitted"  # pydantic's own


def test_missing_field_and_lengths(aw):
    zh = aw.call("POST", "/auth/tokens", Role.PROVINCE_ADMIN, lang="zh",
                 json={"name": "x" * 500})
    assert zh.status_code == 422
    b = assert_zh(zh)
    assert any("个字符" in e["reason"] for e in b["errors"]), b


def test_request_too_large(aw):
    big = b'{"code": "' + b"A" * 20_000 + b'"}'
    zh, en = both(aw, "POST", "/redemptions", Role.CASHIER, content=big,
                  headers={"Content-Type": "application/json"})
    assert zh.status_code == en.status_code == 413
    b = assert_zh(zh)
    assert b["code"] == "request_too_large" and "8 KB" in b["detail"]
    e = assert_en(en)
    assert e["detail"] == "the request body is larger than 8 KB"


def test_malformed_json_and_idempotency_key(aw):
    zh = aw.call("POST", "/redemptions", Role.CASHIER, lang="zh", content=b'{"a": 1, "a": 2}',
                 headers={"Content-Type": "application/json"})
    assert zh.status_code == 400
    assert_zh(zh)
    zh = aw.call("POST", "/redemptions", Role.CASHIER, key=None, lang="zh",
                 json={"code": "ABCD", "order_amount_fen": 1})
    assert zh.json()["code"] == "idempotency_key_required"
    assert_zh(zh, "Idempotency-Key", "UUID")


def test_unknown_route_and_role_refusal(aw):
    zh = aw.call("GET", "/nowhere", Role.PROVINCE_ADMIN, lang="zh")
    assert zh.status_code == 404
    assert_zh(zh)
    zh = aw.call("POST", "/expiry-runs", Role.CASHIER, lang="zh",
                 json={"as_of": "2020-04-01T00:00:00"})
    assert zh.status_code == 403
    assert_zh(zh)
    en = aw.call("POST", "/expiry-runs", Role.CASHIER, lang="en",
                 json={"as_of": "2020-04-01T00:00:00"})
    assert assert_en(en)["detail"] == "a cashier may not do this"


def test_chinese_channel_names_accepted(aw):
    r = aw.call("POST", "/vouchers/lookup", Role.CASHIER, json={"code": aw.codes_in[0]})
    assert r.status_code == 200, r.text
    r = aw.call("POST", "/redemptions", Role.CASHIER,
                json={"code": aw.codes_in[0], "order_amount_fen": 30000, "channel": "线下"})
    assert r.status_code == 201, r.text
    assert r.json()["channel"] == "offline"


def _spec_json(**kw) -> dict:
    spec = program_spec(**kw)
    for p in spec["products"]:
        p["valid_from"], p["expires_at"] = str(p["valid_from"]), str(p["expires_at"])
    return spec


def test_program_update_before_launch_then_refused(aw):
    spec = _spec_json(key="p-upd")
    r = aw.call("POST", "/programs", Role.PROVINCE_ADMIN, json=spec)
    assert r.status_code == 201, r.text
    same = aw.call("PUT", "/programs/p-upd", Role.PROVINCE_ADMIN, json=spec)
    assert same.status_code == 200 and same.json()["updated"] is False
    spec2 = _spec_json(key="p-upd", denominations=(200,))
    r = aw.call("PUT", "/programs/p-upd", Role.PROVINCE_ADMIN, json=spec2)
    assert r.status_code == 200, r.text
    assert r.json()["updated"] is True
    assert r.json()["products"][0]["denominations_fen"] == [20000]
    audit = aw.call("GET", "/audit", Role.PROVINCE_ADMIN).json()["items"]
    assert any(e["action"] == "program.update" and e["target"] == "program:p-upd"
               for e in audit)
    # without its key, or by someone who may not define programs: refused
    assert aw.call("PUT", "/programs/p-upd", Role.PROVINCE_ADMIN, key=None,
                   json=spec2).json()["code"] == "idempotency_key_required"
    assert aw.call("PUT", "/programs/p-upd", Role.CITY_ADMIN,
                   json=spec2).json()["code"] == "role_forbidden"
    # the body names another program
    other = aw.call("PUT", f"/programs/{aw.w.program}", Role.PROVINCE_ADMIN, json=spec2)
    assert other.status_code == 422 and other.json()["field"] == "key"
    # launched: the first issuance
    with aw.db.session() as s:
        issue(s, union_id=aw.w.union_a, program="p-upd", idem_key="launch", now=T0)
    spec3 = _spec_json(key="p-upd", denominations=(100,))
    zh = aw.call("PUT", "/programs/p-upd", Role.PROVINCE_ADMIN, lang="zh", json=spec3)
    assert zh.status_code == 409 and zh.json()["code"] == "program_launched"
    assert zh.json()["title"] == "活动已开始发放"
    en = aw.call("PUT", "/programs/p-upd", Role.PROVINCE_ADMIN, json=spec3)
    assert en.json()["title"] == "Program already launched"
