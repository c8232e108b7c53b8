"""The words the union clerks, admins and IT staff read: import row reasons, sign-in refusals,
scope refusals, key errors. Chinese by default, English on request, from one catalogue."""

from __future__ import annotations

import re
from datetime import date

import pytest
from stdnum.cn import ric, uscc

from civicvoucher import i18n
from civicvoucher.auth import ratelimit
from civicvoucher.auth.errors import RateLimited, Unauthenticated
from civicvoucher.auth.login import login
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.roles import Role, binding_problem
from civicvoucher.core.tabular import ImportLimits, read_table, validate_rows
from civicvoucher.errors import ImportRejected, RowError
from civicvoucher.i18n import Term, localize
from civicvoucher.keys import SecretKeyError, read_sealing_keys
from civicvoucher.members.rules import (
    MEMBER_ALIASES,
    id_number_problem,
    status_change_problem,
    validate_member_row,
)
from civicvoucher.merchants.rules import (
    Category,
    Channel,
    parse_category,
    parse_channels,
    validate_merchant_row,
)
from civicvoucher.orgs.rules import validate_org_row

CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORDS = re.compile(r"[A-Za-z]{3,} [A-Za-z]{3,}")
TODAY = date(2026, 6, 1)


def _union() -> str:
    body = "91140105MA0L12345"
    return body + uscc.calc_check_digit(body)


def _say(text, lang: str) -> str:
    return text.localized(lang) if isinstance(text, Exception) else localize(text, lang)


def zh(text) -> str:
    out = _say(text, "zh")
    assert CJK.search(out), out
    assert not ENGLISH_WORDS.search(out), out  # no English sentence left in the Chinese
    return out


def en(text) -> str:
    out = _say(text, "en")
    assert not CJK.search(out), out
    return out


def test_member_row_reasons_read_as_chinese_for_the_clerk() -> None:
    born_2015 = ric_number("14010520150101001")
    errors = validate_member_row(5, {"name": "", "id_number": born_2015, "phone": "12345",
                                     "union": "某某公司工会", "status": ""}, today=TODAY)
    assert isinstance(errors, list) and [e.field for e in errors] == [
        "name", "id_number", "phone", "union"]
    said = [zh(e.reason) for e in errors]
    assert said[0] == "姓名不能为空"
    assert said[1].startswith("未满16周岁，不能登记为会员")
    assert "手机号码" in said[2] and "统一社会信用代码" in said[3]
    assert en(errors[1].reason) == "a member must be at least 16 years old; born 2015-01-01"
    whole = ImportRejected(errors, total_rows=5)
    assert zh(whole).startswith("未导入任何数据：第 5 行，name 列：姓名不能为空")


def test_an_id_number_reason_never_shows_the_whole_number() -> None:
    good = ric_number("11010119900307123")
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    for value in (wrong_check, good + "E0", good[:15] + "E+17"):
        reason = id_number_problem(value, today=TODAY)
        assert reason is not None
        for text in (zh(reason), en(reason)):
            assert good[:17] not in text and wrong_check not in text
    assert "110*" in localize(id_number_problem(good + "E0", today=TODAY), "zh")


def test_status_changes_are_named_in_the_readers_words() -> None:
    why = status_change_problem("left", "suspended")
    assert zh(why) == "会员状态不能从离会改为停用"
    assert en(why) == "a member cannot go from left to suspended"


def test_org_and_merchant_rows_in_both_languages() -> None:
    org = validate_org_row(3, {"level": "市", "name": "太原市总工会", "division_code": "140000",
                                "parent": "140000"})
    assert isinstance(org, list) and org
    assert "市级代码" in zh(org[0].reason) and "0000" in en(org[0].reason)
    merchant = validate_merchant_row(4, {"uscc": _union(), "name": "某超市", "mcc": "5944",
                                         "county_code": "140100", "channels": "到店"})
    assert isinstance(merchant, list)
    said = {e.field: zh(e.reason) for e in merchant}
    assert "商户类别码 5944 不在消费券类别表中" in said["mcc"]
    assert "区县一级" in said["county_code"]
    assert said["channels"].startswith("未知的渠道“到店”")
    assert en(next(e for e in merchant if e.field == "mcc").reason).startswith("MCC 5944")


def test_file_level_errors_of_an_import(tmp_path) -> None:
    path = tmp_path / "members.csv"
    path.write_text("手机号\n13800000000\n" * 3, encoding="utf-8")
    table = read_table(path, aliases=MEMBER_ALIASES)
    _, errors = validate_rows(table, validate_row=lambda n, r: r, required=["name"],
                              aliases=MEMBER_ALIASES)
    assert zh(errors[0].reason) == "缺少此列，请添加表头为 姓名（或 name） 的一列"
    with pytest.raises(ImportRejected):
        raise ImportRejected(errors, total_rows=3)
    with pytest.raises(Exception) as exc:
        read_table(path, limits=ImportLimits(max_bytes=10))
    said = zh(exc.value.message)
    assert said.startswith("members.csv：文件大小 ") and "10 字节" in said and "未导入任何数据" in said
    assert en(exc.value.message).endswith("over the 10 bytes limit; nothing imported")


def test_duplicate_rows_name_what_repeats() -> None:
    from civicvoucher.core.tabular import Table
    row = {"name": "张三", "id_number": ric_number("14010519900101001"), "union": _union()}
    from civicvoucher.members.rules import validate_member_rows
    _, errors = validate_member_rows(Table(["name", "id_number", "union"], [(2, row), (3, row)]),
                                     today=TODAY)
    assert [(e.row, zh(e.reason)) for e in errors] == [(3, "与第 2 行的身份证号码重复")]
    assert en(errors[0].reason) == "same ID number as row 2"


def test_retry_time_is_said_in_seconds_minutes_or_hours() -> None:
    why = "too many failed logins for this user"
    assert zh(ratelimit.refusal(why, 29.2)) == "该用户登录失败次数过多，请 30 秒后重试"
    assert zh(ratelimit.refusal(why, 15 * 60)) == "该用户登录失败次数过多，请 15 分钟后重试"
    assert en(ratelimit.refusal(why, 1)) == f"{why}; try again in 1 second"
    assert en(ratelimit.refusal(why, 15 * 60)) == f"{why}; try again in 15 minutes"
    assert en(ratelimit.refusal(why, 2 * 3600)) == f"{why}; try again in 2 hours"


def test_login_failures_and_lockout_in_both_languages(sqlite_db) -> None:
    from civicvoucher.auth.service import create_user
    from civicvoucher.orgs.service import create_org

    with sqlite_db.session() as s:
        org = create_org(s, level="province", name="山西省总工会", division_code="140000")
        create_user(s, username="padmin", role="province_admin", password="right-password-1",
                    org_id=org.id)
        s.commit()
    limits = Limits(login_failures_to_lock=2)
    with pytest.raises(Unauthenticated) as wrong:
        login(sqlite_db, username="padmin", password="nope-nope-nope", ip="10.0.0.1",
              limits=limits)
    assert zh(wrong.value) == "用户名或密码错误" and en(wrong.value) == "wrong username or password"
    refused = None
    for _ in range(5):
        try:
            login(sqlite_db, username="padmin", password="nope-nope-nope", ip="10.0.0.1",
                  limits=limits)
        except RateLimited as exc:
            refused = exc
            break
        except Unauthenticated:
            continue
    assert refused is not None
    said = zh(refused)
    assert re.search(r"请 \d+ (秒|分钟|小时)后重试$", said), said
    assert re.search(r"try again in \d+ (seconds?|minutes?|hours?)$", en(refused))


@pytest.mark.zh
def test_scope_roles_and_terms_in_the_default_language() -> None:
    from civicvoucher.auth.errors import OutOfScope

    assert i18n.current() == "zh"
    assert localize(OutOfScope(i18n.msg("member {id} is outside your scope", id=7))
                    .message) == "会员 7 不在您的管辖范围内"
    problem = binding_problem(Role.CITY_ADMIN, org_level="union", merchant_id=None,
                              member_id=None)
    assert zh(problem) == "市级总工会管理员须绑定到市级总工会"
    assert en(problem) == "a city admin is bound to a city organisation"
    assert localize(Term("daily_goods", "category")) == "日用百货"
    assert localize(Term("groupbuy", "channel")) == "团购"
    assert localize(Term("pending", "merchant_status")) == "待审核"
    assert localize(Term("transferred", "member_status")) == "调出"
    assert localize(Term("county", "org_level")) == "县级总工会"
    assert localize(Term("enterprise", "unit_type")) == "企业"
    assert localize(Term("cashier", "role")) == "收银员"
    assert localize(Term("daily_goods", "category"), "en") == "daily goods"


def test_category_and_channel_words_are_read_in_either_language() -> None:
    for word in ("日用百货", "daily_goods", "Daily Goods", "DAILY_GOODS"):
        assert parse_category(word) is Category.DAILY_GOODS, word
    assert parse_category("医药、交通、缴费") is Category.OTHER
    assert parse_category("珠宝") is None
    assert parse_channels("线下、外卖") == ((Channel.OFFLINE, Channel.TAKEAWAY), [])
    assert parse_channels("offline, ONLINE，团购") == (
        (Channel.OFFLINE, Channel.ONLINE, Channel.GROUPBUY), [])
    assert parse_channels("到店") == ((), ["到店"])


def test_key_errors_for_it_staff(tmp_path) -> None:
    path = tmp_path / "keys"
    path.write_text("k1 not-hex\n", encoding="utf-8")
    with pytest.raises(SecretKeyError) as exc:
        read_sealing_keys(path)
    said = localize(exc.value.message, "zh")
    assert said.startswith(f"封装密钥文件 {path} 第 1 行无效"), said
    assert en(exc.value.message).startswith("line 1 of the sealing-keys file")


def test_row_error_reasons_stay_equal_to_their_english() -> None:
    reason = i18n.msg("no grassroots union with code {code}", code="X")
    assert RowError(2, "union", reason) == RowError(2, "union", "no grassroots union with code X")
    assert zh(reason) == "没有统一社会信用代码为 X 的基层工会"


def ric_number(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17 + "0")
