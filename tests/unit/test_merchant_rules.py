"""Merchant rows: MCC → voucher category table, channels, status, whole-file checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from stdnum.cn import uscc

from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import RowError, ValidationError
from civicvoucher.i18n import localize
from civicvoucher.merchants.rules import (
    CATEGORY_LABEL_ZH,
    CHANNEL_LABEL_ZH,
    MCC_CATEGORIES,
    MERCHANT_ALIASES,
    Category,
    Channel,
    MerchantRow,
    MerchantStatus,
    category_for_mcc,
    parse_channels,
    validate_merchant_row,
    validate_merchant_rows,
)

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def make_uscc(first17: str) -> str:
    """GB 32100 check character, computed independently of stdnum."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return first17 + _USCC_ALPHABET[(31 - total % 31) % 31]


SHOP = make_uscc("92140105MA0H12345")  # 92: individual business (个体工商户)
MART = make_uscc("91140100MA0GRT8X4")


def test_factory_agrees_with_stdnum() -> None:
    assert uscc.is_valid(SHOP) and uscc.is_valid(MART)


def test_labels_cover_every_member() -> None:
    assert set(CATEGORY_LABEL_ZH) == set(Category)
    assert set(CHANNEL_LABEL_ZH) == set(Channel)
    assert CATEGORY_LABEL_ZH[Category.SUPERMARKET_FUEL] == "超市便利加油"
    assert CHANNEL_LABEL_ZH[Channel.GROUPBUY] == "团购"


@pytest.mark.parametrize(
    "mcc,category",
    [
        ("5311", "daily_goods"), ("5331", "daily_goods"), ("5399", "daily_goods"),
        ("5200", "daily_goods"), ("5251", "daily_goods"), ("5651", "daily_goods"),
        ("5691", "daily_goods"), ("5411", "supermarket_fuel"), ("5541", "supermarket_fuel"),
        ("5542", "supermarket_fuel"), ("5983", "supermarket_fuel"), ("5499", "grain_produce"),
        ("5422", "grain_produce"), ("5441", "grain_produce"), ("5451", "grain_produce"),
        ("5462", "grain_produce"), ("7011", "hotel_dining"), ("5812", "hotel_dining"),
        ("5813", "hotel_dining"), ("5814", "hotel_dining"), ("7832", "hotel_dining"),
        ("7996", "hotel_dining"), ("7997", "hotel_dining"), ("7999", "hotel_dining"),
        ("4722", "hotel_dining"), ("5912", "other"), ("8062", "other"), ("4111", "other"),
        ("4121", "other"), ("4131", "other"), ("4900", "other"), ("4814", "other"),
        (" 5411 ", "supermarket_fuel"),
    ],
)  # fmt: skip
def test_category_for_mcc(mcc: str, category: str) -> None:
    assert category_for_mcc(mcc) == Category(category)


def test_table_is_large_and_well_formed() -> None:
    assert len(MCC_CATEGORIES) >= 40
    assert all(len(k) == 4 and k.isdigit() for k in MCC_CATEGORIES)
    assert {c for c, _ in MCC_CATEGORIES.values()} == set(Category)
    assert all(desc for _, desc in MCC_CATEGORIES.values())


@pytest.mark.parametrize(
    "mcc,reason",
    [("5944", "not in the voucher category table"), ("6011", "not in the voucher category"),
     ("541", "4 digits"), ("54111", "4 digits"), ("ABCD", "4 digits"), ("", "4 digits")],
)  # fmt: skip
def test_bad_mcc_is_validation_error(mcc: str, reason: str) -> None:
    with pytest.raises(ValidationError) as exc:
        category_for_mcc(mcc)
    assert exc.value.field == "mcc"
    assert reason in exc.value.message


@pytest.mark.parametrize(
    "text,channels,unknown",
    [
        ("线下", ("offline",), []),
        ("线上、外卖", ("online", "takeaway"), []),
        ("团购;线下，online", ("offline", "online", "groupbuy"), []),
        ("Takeaway; takeaway ,外卖", ("takeaway",), []),
        ("线下,到店", ("offline",), ["到店"]),
        ("", (), []),
    ],
)
def test_parse_channels(text: str, channels: tuple[str, ...], unknown: list[str]) -> None:
    assert parse_channels(text) == (tuple(Channel(c) for c in channels), unknown)


def _row(**over: str) -> dict[str, str]:
    row = {
        "uscc": SHOP,
        "name": "小店区便民超市",
        "mcc": "5411",
        "county_code": "140105",
        "channels": "线下、外卖",
    }
    row.update(over)
    return row


def test_good_row() -> None:
    assert validate_merchant_row(2, _row(uscc=SHOP.lower())) == MerchantRow(
        uscc=SHOP,
        name="小店区便民超市",
        mcc="5411",
        category=Category.SUPERMARKET_FUEL,
        county_code="140105",
        channels=(Channel.OFFLINE, Channel.TAKEAWAY),
        status=MerchantStatus.PENDING,
    )


@pytest.mark.parametrize(
    "word,status",
    [("待审核", "pending"), ("正常", "active"), ("启用", "active"), ("暂停", "suspended"),
     ("ACTIVE", "active")],
)  # fmt: skip
def test_status_words(word: str, status: str) -> None:
    got = validate_merchant_row(2, _row(status=word))
    assert isinstance(got, MerchantRow) and got.status == MerchantStatus(status)


@pytest.mark.parametrize(
    "over,field,reason",
    [
        ({"uscc": ""}, "uscc", "is required"),
        ({"uscc": SHOP[:-1] + ("0" if SHOP[-1] != "0" else "1")}, "uscc", "check character"),
        ({"name": ""}, "name", "merchant name is required"),
        ({"name": "店" * 201}, "name", "longer than 200"),
        ({"mcc": ""}, "mcc", "MCC (merchant category code) is required"),
        ({"mcc": "5944"}, "mcc", "not in the voucher category table"),
        ({"mcc": "59"}, "mcc", "4 digits"),
        ({"county_code": ""}, "county_code", "is required"),
        ({"county_code": "14010"}, "county_code", "6 digits"),
        ({"channels": ""}, "channels", "at least one channel"),
        ({"channels": "线下、直播"}, "channels", "unknown channel '直播'"),
        ({"status": "关闭"}, "status", "unknown status '关闭'"),
    ],
)
def test_bad_rows(over: dict[str, str], field: str, reason: str) -> None:
    got = validate_merchant_row(9, _row(**over))
    assert isinstance(got, list) and len(got) == 1, got
    assert (got[0].row, got[0].field) == (9, field)
    assert reason in got[0].reason


def test_file_with_chinese_headers_and_duplicate_uscc(tmp_path: Path) -> None:
    path = tmp_path / "merchants.csv"
    path.write_bytes(
        (
            "统一社会信用代码,商户名称,商户类别码,所在区县,受理渠道,状态\n"
            f"{SHOP},便民超市,5411,140105,线下,\n"
            f"{MART},大药房,5912,140105,线上、外卖,正常\n"
            f"{SHOP.lower()},便民超市二店,5411,140105,线下,\n"
            f"{make_uscc('91140100MA0GRT8X5')},金店,5944,140105,线下,\n"
        ).encode("gbk")
    )
    good, errors = validate_merchant_rows(read_table(path, aliases=MERCHANT_ALIASES))
    assert [(n, m.name, m.category) for n, m in good] == [
        (2, "便民超市", Category.SUPERMARKET_FUEL),
        (3, "大药房", Category.OTHER),
    ]
    assert errors == [
        RowError(4, "统一社会信用代码 (uscc)", "same unified social credit code as row 2"),
        RowError(
            5,
            "商户类别码 (mcc)",
            "MCC 5944 is not in the voucher category table (not an eligible trade)",
        ),
    ]


def test_file_missing_channels_column(tmp_path: Path) -> None:
    path = tmp_path / "merchants.xlsx"
    write_table(path, ["uscc", "name", "mcc", "county_code"], [[SHOP, "x", "5411", "140105"]])
    good, errors = validate_merchant_rows(read_table(path, aliases=MERCHANT_ALIASES))
    assert good == []
    assert errors == [
        RowError(1, "channels", "column is missing; add a column headed 受理渠道 (or channels)")
    ]


# --- the category column beside the MCC, and where a merchant may be ----------------------

@pytest.mark.parametrize("text", ["粮油果蔬", "grain_produce", "Grain_Produce", " 粮油果蔬 "])
def test_a_named_category_wins_over_the_mcc_default(text: str) -> None:
    row = validate_merchant_row(2, _row(mcc="5411", category=text))
    assert isinstance(row, MerchantRow) and row.category is Category.GRAIN_PRODUCE
    assert validate_merchant_row(2, _row(mcc="5411", category="")).category is (
        Category.SUPERMARKET_FUEL)
    assert validate_merchant_row(2, _row(category="医药 交通 缴费")).category is Category.OTHER


def test_an_unknown_category_or_an_ineligible_mcc_is_still_refused() -> None:
    assert [(e.row, e.field) for e in validate_merchant_row(4, _row(category="珠宝"))] == [
        (4, "category")]
    assert [e.field for e in validate_merchant_row(4, _row(mcc="5944", category="日用百货"))] == [
        "mcc"]


def test_a_file_may_carry_a_category_column(tmp_path: Path) -> None:
    path = tmp_path / "shops.xlsx"
    write_table(path, ["统一社会信用代码", "商户名称", "商户类别码", "类别", "区县代码", "受理渠道"],
                [[SHOP, "粮油店", "5411", "粮油果蔬", "140105", "线下"],
                 [MART, "超市", "5411", "", "140105", "线下"],
                 [make_uscc("92140105MA0H12346"), "店", "5411", "奢侈品", "140105", "线下"]])
    good, errors = validate_merchant_rows(read_table(path, aliases=MERCHANT_ALIASES))
    assert [r.category for _, r in good] == [Category.GRAIN_PRODUCE, Category.SUPERMARKET_FUEL]
    assert [(e.row, e.field) for e in errors] == [(4, "类别 (category)")]


def test_a_city_code_is_not_a_merchant_county() -> None:
    errors = validate_merchant_row(2, _row(county_code="140100"))
    assert [e.field for e in errors] == ["county_code"] and "区县" in zh(errors[0].reason)


def test_a_control_character_in_a_single_merchant_is_named() -> None:
    errors = validate_merchant_row(2, _row(name="超\x00市"))
    assert [(e.field, "U+0000" in e.reason) for e in errors] == [("name", True)]


def test_the_map_wants_a_real_county_inside_the_tree() -> None:
    from civicvoucher.merchants.regions import MerchantMap

    tree = MerchantMap.of(["140000", "140100", "140105", "150000"], env={})
    assert tree.problem("140105") is None and tree.problem("140321") is None
    assert tree.problem("150102") is None
    assert "GB/T 2260" in tree.problem("130999")  # no such county
    assert "GB/T 2260" in tree.problem("140999")  # no such county, even inside the tree
    assert "不在本系统的组织范围内" in zh(tree.problem("440305"))  # real, another province
    assert "撤销" in zh(MerchantMap.of(["110000"], env={}).problem("110103"))  # 崇文区, gone 2010
    allowed = MerchantMap.of(["140000"], env={"CIVICVOUCHER_MERCHANT_REGIONS": "440305, 4403"})
    assert allowed.problem("440305") is None and allowed.problem("440304") is None
    assert allowed.problem("440105") is not None
    # a county the table does not know yet, declared by the deployment itself
    assert MerchantMap.of(["140000", "140199"], env={}).problem("140199") is None
    assert MerchantMap.of(["140000"], env={"CIVICVOUCHER_MERCHANT_REGIONS": "140199"}
                          ).problem("140199") is None


def test_the_allowed_list_is_checked() -> None:
    from civicvoucher.merchants.regions import allowed_regions

    assert allowed_regions({"CIVICVOUCHER_MERCHANT_REGIONS": "44,4403,440305"}) == {
        "44", "4403", "440305"}
    with pytest.raises(ValidationError, match="CIVICVOUCHER_MERCHANT_REGIONS"):
        allowed_regions({"CIVICVOUCHER_MERCHANT_REGIONS": "44030"})


def zh(text) -> str:
    """The Chinese a person reads for ``text`` (the suite runs in English)."""
    return localize(text, "zh")
