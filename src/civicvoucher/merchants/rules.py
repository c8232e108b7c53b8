"""Merchant rows, voucher categories and the MCC → category table.

Consumption-voucher programmes restrict vouchers to five spending categories; a merchant's
category follows from its merchant category code (MCC, ISO 18245, as used by China UnionPay).
An MCC not in the table (jewellery, cars, real estate, financial services …) is refused rather
than guessed, so an ineligible merchant cannot slip in. The table's category is a default: a
file may name the category beside the MCC (column 类别 / category, the Chinese label or the
key), and that wins, since programmes file some trades differently (one files 5411
supermarkets under 粮油果蔬). The MCC must still be an eligible one. Whether the county is a
real one inside the deployment's map is checked against the database by the service
(``merchants.regions``). Pure: no database.

Bank details (收款户名, 开户行, 银行账号) are optional columns; given, all three are needed
(a payout cannot go to half an address). The account number is digits (spaces and hyphens
as printed on a form are dropped), 8 to 32 of them; the row holds it in clear only until the
service seals it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from civicvoucher.core.tabular import Table, control_problem, validate_rows
from civicvoucher.errors import RowError, ValidationError
from civicvoucher.i18n import N_, msg, terms
from civicvoucher.orgs.rules import division_problem, normalise_code, uscc_problem

NAME_MAX = 200


class Category(StrEnum):
    DAILY_GOODS = "daily_goods"
    GRAIN_PRODUCE = "grain_produce"
    SUPERMARKET_FUEL = "supermarket_fuel"
    HOTEL_DINING = "hotel_dining"
    OTHER = "other"  # pharmacy, transport, bill payment


CATEGORY_LABEL_ZH: dict[Category, str] = {
    Category.DAILY_GOODS: "日用百货",
    Category.GRAIN_PRODUCE: "粮油果蔬",
    Category.SUPERMARKET_FUEL: "超市便利加油",
    Category.HOTEL_DINING: "宾馆餐娱",
    Category.OTHER: "医药、交通、缴费",
}


class Channel(StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"
    TAKEAWAY = "takeaway"
    GROUPBUY = "groupbuy"


CHANNEL_LABEL_ZH: dict[Channel, str] = {
    Channel.OFFLINE: "线下",
    Channel.ONLINE: "线上",
    Channel.TAKEAWAY: "外卖",
    Channel.GROUPBUY: "团购",
}


class MerchantStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"


MERCHANT_STATUS_LABEL_ZH: dict[MerchantStatus, str] = {
    MerchantStatus.PENDING: "待审核",
    MerchantStatus.ACTIVE: "正常",
    MerchantStatus.SUSPENDED: "暂停",
}

terms.register("category", CATEGORY_LABEL_ZH)
terms.register("channel", CHANNEL_LABEL_ZH)
terms.register("merchant_status", MERCHANT_STATUS_LABEL_ZH)

_D, _G, _S, _H, _O = (
    Category.DAILY_GOODS,
    Category.GRAIN_PRODUCE,
    Category.SUPERMARKET_FUEL,
    Category.HOTEL_DINING,
    Category.OTHER,
)

# MCC → (category, what the code means in ISO 18245). Codes absent here are not eligible.
MCC_CATEGORIES: dict[str, tuple[Category, str]] = {
    # 日用百货: general merchandise, home goods, clothing, books, sport
    "5200": (_D, "home supply warehouse stores"),
    "5251": (_D, "hardware stores"),
    "5310": (_D, "discount stores"),
    "5311": (_D, "department stores"),
    "5331": (_D, "variety stores"),
    "5399": (_D, "miscellaneous general merchandise"),
    "5611": (_D, "men's and boys' clothing stores"),
    "5621": (_D, "women's ready-to-wear stores"),
    "5641": (_D, "children's and infants' wear stores"),
    "5651": (_D, "family clothing stores"),
    "5661": (_D, "shoe stores"),
    "5691": (_D, "men's and women's clothing stores"),
    "5699": (_D, "miscellaneous apparel and accessory stores"),
    "5712": (_D, "furniture and home furnishings stores"),
    "5719": (_D, "miscellaneous home furnishing specialty stores"),
    "5722": (_D, "household appliance stores"),
    "5732": (_D, "electronics stores"),
    "5941": (_D, "sporting goods stores"),
    "5942": (_D, "book stores"),
    "5943": (_D, "stationery and office supply stores"),
    "5945": (_D, "hobby, toy and game shops"),
    "5977": (_D, "cosmetic stores"),
    # 粮油果蔬: food specialty stores
    "5422": (_G, "freezer and locker meat provisioners"),
    "5441": (_G, "candy, nut and confectionery stores"),
    "5451": (_G, "dairy products stores"),
    "5462": (_G, "bakeries"),
    "5499": (_G, "miscellaneous food stores (grain, oil, fruit, vegetables)"),
    # 超市便利加油: supermarkets, convenience stores, fuel
    "5300": (_S, "wholesale clubs"),
    "5411": (_S, "grocery stores and supermarkets"),
    "5541": (_S, "service stations"),
    "5542": (_S, "automated fuel dispensers"),
    "5983": (_S, "fuel dealers"),
    # 宾馆餐娱: hotels, dining, entertainment, travel
    "4722": (_H, "travel agencies and tour operators"),
    "5812": (_H, "eating places and restaurants"),
    "5813": (_H, "bars and taverns"),
    "5814": (_H, "fast food restaurants"),
    "7011": (_H, "hotels, motels and resorts"),
    "7032": (_H, "sporting and recreational camps"),
    "7832": (_H, "motion picture theatres"),
    "7922": (_H, "theatrical producers and ticket agencies"),
    "7932": (_H, "billiard and pool establishments"),
    "7933": (_H, "bowling alleys"),
    "7941": (_H, "sports clubs and fields"),
    "7991": (_H, "tourist attractions and exhibits"),
    "7996": (_H, "amusement parks"),
    "7997": (_H, "membership clubs (sports, recreation)"),
    "7999": (_H, "recreation services"),
    # 医药、交通、缴费: pharmacy and health, transport, bill payment
    "4111": (_O, "local and suburban commuter transport"),
    "4112": (_O, "passenger railways"),
    "4121": (_O, "taxicabs"),
    "4131": (_O, "bus lines"),
    "4784": (_O, "tolls and bridge fees"),
    "4814": (_O, "telecommunication services"),
    "4899": (_O, "cable and pay television"),
    "4900": (_O, "utilities: electricity, gas, water"),
    "5912": (_O, "drug stores and pharmacies"),
    "5976": (_O, "orthopaedic goods and prosthetic devices"),
    "7523": (_O, "parking lots and garages"),
    "8011": (_O, "doctors"),
    "8021": (_O, "dentists"),
    "8043": (_O, "opticians and eyeglasses"),
    "8062": (_O, "hospitals"),
    "8099": (_O, "medical and health services"),
}


def category_for_mcc(mcc: str) -> Category:
    """The voucher category of an MCC; a malformed or ineligible MCC is a ValidationError."""
    code = normalise_code(mcc)
    if not re.fullmatch(r"\d{4}", code):
        raise ValidationError(msg("MCC must be 4 digits, got {mcc!r}", mcc=mcc), field="mcc")
    try:
        return MCC_CATEGORIES[code][0]
    except KeyError:
        raise ValidationError(
            msg("MCC {mcc} is not in the voucher category table (not an eligible trade)",
                mcc=code),
            field="mcc",
        ) from None


MERCHANT_ALIASES: dict[str, str] = {
    "统一社会信用代码": "uscc",
    "信用代码": "uscc",
    "商户名称": "name",
    "商户名": "name",
    "名称": "name",
    "商户类别码": "mcc",
    "行业类别码": "mcc",
    "MCC码": "mcc",
    "所在区县": "county_code",
    "区县代码": "county_code",
    "区县": "county_code",
    "行政区划代码": "county_code",
    "受理渠道": "channels",
    "经营渠道": "channels",
    "渠道": "channels",
    "状态": "status",
    "商户状态": "status",
    "类别": "category",
    "商户类别": "category",
    "商户分类": "category",
    "消费类别": "category",
    "用券类别": "category",
    "收款户名": "payee_name",
    "收款人": "payee_name",
    "账户名称": "payee_name",
    "户名": "payee_name",
    "开户行": "bank_name",
    "开户银行": "bank_name",
    "银行账号": "account_no",
    "收款账号": "account_no",
    "账号": "account_no",
}

ACCOUNT_MIN, ACCOUNT_MAX = 8, 32
BANK_MAX = 200
_ACCOUNT_JUNK = re.compile(r"[\s\-－]+")

_CHANNEL_WORDS: dict[str, Channel] = {
    **{label: ch for ch, label in CHANNEL_LABEL_ZH.items()},
    **{ch.value: ch for ch in Channel},
    "group_buy": Channel.GROUPBUY,
    "take_away": Channel.TAKEAWAY,
}
_STATUS_WORDS: dict[str, MerchantStatus] = {
    **{w: MerchantStatus.PENDING for w in ("待审核", "待审", "审核中")},
    **{w: MerchantStatus.ACTIVE for w in ("正常", "启用", "已启用", "有效")},
    **{w: MerchantStatus.SUSPENDED for w in ("暂停", "停用", "已暂停")},
    **{m.value: m for m in MerchantStatus},
}
_CHANNEL_SPLIT = re.compile(r"[,，、;；/\s]+")
_LABEL_JUNK = re.compile(r"[\s,，、;；/·]+")


def _label_key(text: str) -> str:
    return _LABEL_JUNK.sub("", text).casefold()


_CATEGORY_WORDS: dict[str, Category] = {
    **{_label_key(label): cat for cat, label in CATEGORY_LABEL_ZH.items()},
    **{_label_key(cat.value): cat for cat in Category},
    **{_label_key(cat.value.replace("_", " ")): cat for cat in Category},  # 'daily goods'
}


def parse_category(text: str) -> Category | None:
    """'粮油果蔬' / 'grain_produce' / '医药 交通 缴费' → Category, or None if not one."""
    return _CATEGORY_WORDS.get(_label_key(text))


@dataclass(frozen=True, slots=True)  # compact: an import holds every valid row
class MerchantRow:
    """One valid merchant row; ``channels`` in Channel declaration order, no repeats."""

    uscc: str
    name: str
    mcc: str
    category: Category
    county_code: str
    channels: tuple[Channel, ...]
    status: MerchantStatus
    payee_name: str = ""  # bank details: all three or none
    bank_name: str = ""
    account_no: str = ""  # in clear only here: the service seals it

    @property
    def has_bank(self) -> bool:
        return bool(self.account_no)


def normalise_account(text: str) -> str:
    return _ACCOUNT_JUNK.sub("", text or "")


def mask_account(number: str) -> str:
    """'6222021234567890123' → '6222****0123' (what pages and lists show)."""
    return f"{number[:4]}****{number[-4:]}"


def bank_errors(row_no: int, payee: str, bank: str, account: str) -> list[RowError]:
    """Problems with a row's bank details (already stripped; account normalised)."""
    errors: list[RowError] = []
    if not (payee or bank or account):
        return errors
    for column, value, what in (("payee_name", payee, N_("the payee's account name is "
                                                         "required with bank details")),
                                ("bank_name", bank, N_("the bank (开户行) is required with bank"
                                                       " details")),
                                ("account_no", account, N_("the account number is required "
                                                           "with bank details"))):
        if not value:
            errors.append(RowError(row_no, column, what))
        elif column != "account_no" and len(value) > BANK_MAX:
            errors.append(RowError(row_no, column, msg("name is longer than {max} characters",
                                                       max=BANK_MAX)))
    if account and not re.fullmatch(rf"\d{{{ACCOUNT_MIN},{ACCOUNT_MAX}}}", account):
        errors.append(RowError(row_no, "account_no", msg(
            "the account number must be {least} to {most} digits", least=ACCOUNT_MIN,
            most=ACCOUNT_MAX)))
    return errors


def parse_channels(text: str) -> tuple[tuple[Channel, ...], list[str]]:
    """'线下、外卖' / 'offline,online' → (channels in declaration order, unknown words)."""
    found: set[Channel] = set()
    unknown: list[str] = []
    for word in _CHANNEL_SPLIT.split(text.strip()):
        if not word:
            continue
        ch = _CHANNEL_WORDS.get(word.lower())
        if ch is None:
            unknown.append(word)
        else:
            found.add(ch)
    return tuple(ch for ch in Channel if ch in found), unknown


def validate_merchant_row(row_no: int, row: dict[str, str]) -> MerchantRow | list[RowError]:
    """Check one merchant row; returns the normalised row or every problem found in it."""
    errors: list[RowError] = []

    def bad(column: str, reason: str) -> None:
        errors.append(RowError(row_no, column, reason))

    for column, text in row.items():
        if problem := control_problem(text or ""):
            bad(column, problem)
    if errors:
        return errors

    uscc = normalise_code(row.get("uscc", ""))
    if not uscc:
        bad("uscc", N_("unified social credit code is required"))
    elif problem := uscc_problem(uscc):
        bad("uscc", problem)

    name = row.get("name", "").strip()
    if not name:
        bad("name", N_("merchant name is required"))
    elif len(name) > NAME_MAX:
        bad("name", msg("name is longer than {max} characters", max=NAME_MAX))

    mcc = normalise_code(row.get("mcc", ""))
    category: Category | None = None
    if not mcc:
        bad("mcc", N_("MCC (merchant category code) is required"))
    else:
        try:
            category = category_for_mcc(mcc)
        except ValidationError as exc:
            bad("mcc", exc.message)

    raw_category = row.get("category", "").strip()
    if raw_category:
        named = parse_category(raw_category)
        if named is None:
            labels = "、".join(CATEGORY_LABEL_ZH.values())  # the words a file may use
            bad("category", msg("unknown category {value!r}; use one of: {labels}",
                                value=raw_category, labels=labels))
        elif category is not None:
            category = named

    county = normalise_code(row.get("county_code", ""))
    if not county:
        bad("county_code", N_("county division code is required"))
    elif problem := division_problem(county):
        bad("county_code", problem)
    elif county.endswith("00"):
        bad("county_code", msg("{code} is a province or city code; give the county's (6 digits,"
                               " not ending in 00)", code=county))

    channels, unknown = parse_channels(row.get("channels", ""))
    if unknown:
        bad("channels", msg("unknown channel {value!r}; use 线下, 线上, 外卖 or 团购",
                            value=unknown[0]))
    elif not channels:
        bad("channels", N_("at least one channel is required (线下, 线上, 外卖 or 团购)"))

    raw_status = row.get("status", "").strip()
    status = _STATUS_WORDS.get(raw_status.lower()) if raw_status else MerchantStatus.PENDING
    if status is None:
        bad("status", msg("unknown status {value!r}; use 待审核, 正常 or 暂停", value=raw_status))

    payee = row.get("payee_name", "").strip()
    bank = row.get("bank_name", "").strip()
    account = normalise_account(row.get("account_no", ""))
    errors.extend(bank_errors(row_no, payee, bank, account))

    if errors or category is None or status is None:
        return errors
    return MerchantRow(
        uscc=uscc,
        name=name,
        mcc=mcc,
        category=category,
        county_code=county,
        channels=channels,
        status=status,
        payee_name=payee,
        bank_name=bank,
        account_no=account,
    )


def _merchant_unique_keys(row: dict[str, str]) -> list[tuple[str, str, str]]:
    uscc = normalise_code(row.get("uscc", ""))
    if uscc and uscc_problem(uscc) is None:
        return [("uscc", N_("unified social credit code"), uscc)]
    return []


def validate_merchant_rows(table: Table) -> tuple[list[tuple[int, MerchantRow]], list[RowError]]:
    """Validate a whole merchant file; the same USCC twice is an error on the later row."""
    return validate_rows(
        table,
        validate_row=validate_merchant_row,
        required=("uscc", "name", "mcc", "county_code", "channels"),
        aliases=MERCHANT_ALIASES,
        unique_keys=_merchant_unique_keys,
    )
