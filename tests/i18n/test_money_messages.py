"""Issue 10 item 6, the money domains: a cashier, a union official and an operator read their
errors in Chinese by default and in English on request, amounts always as yuan; 15万 is an
amount wherever people type yuan; a program file's errors name the key in the reader's
language, and its categories and channels may be written by their Chinese names."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicvoucher import i18n
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.errors import CivicVoucherError, ValidationError, VoucherNotRedeemable
from civicvoucher.funds.service import check_deposit
from civicvoucher.i18n import Term, localize
from civicvoucher.merchants.rules import Category, Channel
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.vouchers.listing import parse_voucher_status
from civicvoucher.vouchers.rules import SpendCheck, check_redeemable, status_error

CJK = re.compile(r"[\u4e00-\u9fff]")
SENTENCE = re.compile(r"[A-Za-z]{3,} [A-Za-z]{3,}")  # two English words in a row


def both(exc: CivicVoucherError) -> tuple[str, str]:
    return exc.localized("zh"), exc.localized("en")


def assert_zh(text: str, *allowed: str) -> None:
    for a in allowed:  # codes, keys, names: data, not sentences
        text = text.replace(a, "")
    assert CJK.search(text), text
    assert not SENTENCE.search(text), text


def assert_en(text: str) -> None:
    assert not CJK.search(text), text


NOW = datetime(2020, 5, 1, 12)
SPEND = SpendCheck(status="issued", amount_fen=50_00, threshold_fen=100_00,
                   valid_from=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=1),
                   categories=frozenset({Category.DAILY_GOODS}),
                   channels=frozenset({Channel.OFFLINE}), region_prefix="14")
AT = dict(merchant_status="active", merchant_category=Category.DAILY_GOODS,
          merchant_county="140105", merchant_channels=frozenset({Channel.OFFLINE}),
          channel=Channel.OFFLINE, order_amount_fen=80_00, now=NOW)


def refusal(spend=SPEND, **kw) -> VoucherNotRedeemable:
    with pytest.raises(VoucherNotRedeemable) as e:
        check_redeemable(spend, **{**AT, **kw})
    return e.value


def test_the_cashier_reads_the_threshold_in_yuan():
    zh, en = both(refusal())
    assert zh == "订单金额 ¥80.00 未达到此券的使用门槛 ¥100.00"
    assert en == "the order of ¥80.00 is below the ¥100.00 this voucher needs"
    assert "fen" not in zh + en and "/" not in zh  # one language at a time, never fen


@pytest.mark.zh
def test_zh_is_the_default_for_a_cashier():
    assert localize(refusal().message) == "订单金额 ¥80.00 未达到此券的使用门槛 ¥100.00"


@pytest.mark.parametrize("kw, code", [
    (dict(now=NOW + timedelta(days=2)), "voucher_expired"),
    (dict(now=NOW - timedelta(days=2)), "voucher_not_yet_valid"),
    (dict(merchant_category=Category.HOTEL_DINING), "category_not_allowed"),
    (dict(channel=Channel.ONLINE), "channel_not_allowed"),
    (dict(merchant_county="150105"), "region_not_allowed"),
    (dict(merchant_status="suspended"), "merchant_not_active"),
])
def test_every_refusal_at_the_till_in_both_languages(kw, code):
    e = refusal(**kw)
    assert e.code == code
    zh, en = both(e)
    assert_zh(zh, "hotel_dining", "hotel dining", "online", "suspended", "+08:00")
    assert_en(en)


def test_a_spent_voucher_says_its_status_by_name():
    zh, en = both(status_error("redeemed"))
    assert zh == "此券已使用" and en == "voucher is redeemed"
    zh, en = both(status_error("expired"))
    assert zh == "此券已过期" and en == "voucher is expired"


def test_deposits_refused_in_both_languages():
    with pytest.raises(ValidationError) as e:
        check_deposit(None, org_id=1, amount_fen=0, source="dues")
    zh, en = both(e.value)
    assert zh == "入账金额必须大于零" and en == "deposit must be positive"
    with pytest.raises(ValidationError) as e:
        check_deposit(None, org_id=1, amount_fen=100, source="gift")
    zh, en = both(e.value)
    assert "工会经费、财政拨款、上级划拨" in zh and "'gift'" in zh
    assert_zh(zh, "'gift'")
    assert en == "unknown deposit source 'gift' (use dues, fiscal, transfer)"


def test_an_unknown_status_lists_the_choices_in_the_language():
    with pytest.raises(ValidationError) as e:
        parse_voucher_status("lost")
    zh, en = both(e.value)
    assert "未使用、预授权中、已使用、已过期" in zh and "issued" not in zh
    assert_zh(zh, "'lost'")
    assert en == "unknown voucher status 'lost'; use issued, held, redeemed, expired"


def test_status_terms_are_registered():
    assert localize(Term("posted", "redemption_status"), "zh") == "已核销"
    assert localize(Term("paper", "voucher_form"), "zh") == "纸质券"
    assert localize(Term("partial", "issuance_status"), "zh") == "部分发放"
    assert localize(Term("fiscal", "deposit_source"), "zh") == "财政拨款"
    assert localize(Term("tourism_card", "product_kind"), "zh") == "旅游年卡"
    assert localize(Term("tourism_card", "product_kind"), "en") == "tourism card"


# --- 15万 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fen", [
    ("15万", 150_000_00), ("1.5万", 15_000_00), ("2亿", 200_000_000_00),
    ("1,500万", 15_000_000_00), ("15万元", 150_000_00), ("¥15万", 150_000_00),
    ("0.5万", 5_000_00), ("1.234567万", 12_345_67), ("1.2345678901亿", 123_456_789_01),
    (" 3万 ", 30_000_00), ("0.0001万", 1_00),
])
def test_wan_and_yi(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", [
    "万", "亿", "元", "1万亿", "万1", "1.2345678万", "1.23456789012亿", "-1万", "1e3万",
    "1 万", "１万", "1,50万", ".5万", "5.万", "99999999999亿", "15千",
])
def test_wan_is_still_strict(text):
    with pytest.raises(ValueError) as e:
        yuan_to_fen(text)
    zh, en = localize(e.value.args[0], "zh"), localize(e.value.args[0], "en")
    assert_zh(zh, repr(text))
    assert_en(en.replace(repr(text), "").replace("万", "").replace("亿", ""))


@given(st.integers(min_value=0, max_value=99_999_999), st.integers(min_value=0, max_value=6))
def test_wan_is_yuan_times_ten_thousand(n, places):
    """n/10^places 万 is exactly n/10^places × 10,000 yuan, whenever that is whole fen."""
    text = f"{Decimal(n).scaleb(-places):f}万"
    assert yuan_to_fen(text) == int(Decimal(n).scaleb(-places) * 10_000 * 100)


@given(st.integers(min_value=1, max_value=10**9))
def test_wan_agrees_with_plain_yuan(yuan):
    wan, rest = divmod(yuan, 10_000)
    if rest == 0:
        assert yuan_to_fen(f"{wan}万") == yuan_to_fen(str(yuan)) == yuan * 100
    assert yuan_to_fen(f"{yuan / 10_000:.4f}万") == yuan * 100


@given(st.integers(min_value=1, max_value=9))
def test_finer_than_a_fen_is_refused_not_rounded(d):
    with pytest.raises(ValueError, match="finer than a fen"):
        yuan_to_fen(f"0.000000{d}万")


# --- program files ----------------------------------------------------------------------------

PROGRAM = dict(key="p", name="职工消费券", products=[dict(
    key="v", name="消费券", denominations_yuan=[100], categories=["daily_goods"],
    channels=["offline"], valid_from="2020-04-26", expires_at="2020-07-10")])


def program(**product) -> dict:
    d = copy.deepcopy(PROGRAM)
    for k, v in product.items():
        if v is None:
            d["products"][0].pop(k)
        else:
            d["products"][0][k] = v
    return d


def refused(data: dict, source: str | None = "programs.toml") -> ValidationError:
    with pytest.raises(ValidationError) as e:
        parse_program_spec(data, source=source)
    return e.value


def test_categories_and_channels_by_their_chinese_names():
    spec = parse_program_spec(program(categories=["日用百货", "粮油果蔬", "grain_produce"],
                                      channels=["线下", "外卖"]))
    p = spec.products[0]
    assert p.categories == [Category.DAILY_GOODS, Category.GRAIN_PRODUCE, Category.GRAIN_PRODUCE]
    assert p.channels == [Channel.OFFLINE, Channel.TAKEAWAY]
    assert parse_program_spec(program(channels="线下、团购")).products[0].channels == [
        Channel.OFFLINE, Channel.GROUPBUY]


def test_a_wrong_type_names_the_key_in_both_languages():
    e = refused(program(denominations_yuan=["300"]))
    assert e.field == "products.0.denominations_yuan.0"
    zh, en = both(e)
    assert zh == "programs.toml 中 products.0.denominations_yuan.0：应为整数"
    assert en == "in programs.toml, products.0.denominations_yuan.0: should be a whole number"


def test_integers_still_work_and_bounds_are_said():
    assert parse_program_spec(program(denominations_yuan=[50] * 6)).products[0]\
        .denominations_fen == [5000] * 6
    zh, en = both(refused(program(denominations_yuan=[0])))
    assert zh.endswith("：应大于 0") and en.endswith(": must be greater than 0")


def test_an_unknown_category_lists_the_names_people_may_write():
    zh, en = both(refused(program(categories=["吃饭"])))
    assert "日用百货" in zh and "daily_goods" not in zh
    assert_zh(zh, "programs.toml", "products.0.categories.0")
    assert "daily_goods" in en and "hotel_dining" in en
    zh, en = both(refused(program(channels="线下、飞机")))
    assert "products.0.channels.1" in zh and "外卖" in zh


@pytest.mark.parametrize("product", [
    dict(name=None), dict(colour="red"), dict(expires_at="2020-04-01"),
    dict(valid_from="soon"), dict(kind="gift"), dict(key="Bad Key"),
])
def test_program_errors_in_both_languages(product):
    zh, en = both(refused(program(**product)))
    assert_zh(zh, "programs.toml", "products.0", ".name", ".colour", ".valid_from",
              ".kind", ".key", "expires_at", "valid_from", "tourism_card", "consumption",
              "2020-04-26T00:00:00", "2020-04-26", "true", "false")
    assert_en(en)


def test_an_unmapped_pydantic_error_falls_back():
    from civicvoucher.programs.spec import problem

    p = problem({"type": "uuid_type", "loc": ("x",), "msg": "Input should be a valid UUID"})
    assert localize(p, "zh") == "取值无效"
    assert localize(p, "en") == "Input should be a valid UUID"
    zh, _en = both(refused(program(optional=[1])))
    assert zh == "programs.toml 中 products.0.optional：应为 true 或 false"


def test_without_a_file_the_key_alone():
    with i18n.language("zh"):
        assert refused(program(name=None), source=None).localized() == \
            "products.0.name：必须填写"
