"""A program file to start from: every key, with a comment in Chinese and English.

``civicvoucher program template program.toml`` writes it with a spending window that starts
today (local date) and runs ``days`` days, so a new operator can create, issue and redeem at
once; ``examples/program.toml`` in the repository is the same text for fixed dates. The file
is checked by the same validator as any program file (``spec.parse_program_spec``).
"""

from __future__ import annotations

from datetime import date, timedelta

from civicvoucher.merchants.rules import CATEGORY_LABEL_ZH, CHANNEL_LABEL_ZH

_CATEGORIES = "\n".join(f"#   {c.value:<18} {label}" for c, label in CATEGORY_LABEL_ZH.items())
_CHANNELS = "\n".join(f"#   {c.value:<18} {label}" for c, label in CHANNEL_LABEL_ZH.items())

TEMPLATE = """\
# 消费券活动定义文件 · Voucher program file (TOML)
# 创建：civicvoucher program create program.toml（重复执行不会重复创建）
# Create it with: civicvoucher program create program.toml (running it again changes nothing)
#
# 时间均为部署时区（默认北京时间）的当地时间；只写日期表示整天。
# Times are local wall time in the deployment's zone (default Asia/Shanghai); a bare date
# means a whole local day.

# 活动代码：小写字母、数字、- 或 _，之后在命令中用它指代本活动
# Program key: lower-case letters, digits, - or _; commands refer to the program by it
key = "{key}"
# 活动名称（给人看的） · The program's name, as people read it
name = "{name}"
# 依据的文件（通知标题或文号），可写多个 · The notices it rests on (titles or numbers)
documents = ["关于发放职工消费券的通知"]

# 每个 [[products]] 是一种券；每位会员每种券各发一份
# Each [[products]] block is one kind of voucher; every member gets one of each
[[products]]
# 券种代码 · Product key (unique within the program)
key = "voucher"
# 类型：consumption 消费券 | tourism_card 旅游年卡
# Kind: consumption (a spending voucher) | tourism_card (a tourism annual card)
kind = "consumption"
# 券种名称 · The product's name
name = "职工消费券"
# 面额（元，整数）：一张 300 元写 [300]；拆成六张 50 元写 [50, 50, 50, 50, 50, 50]
# Denominations in whole yuan: one 300-yuan voucher is [300]; six of 50 is [50, 50, 50, 50, 50, 50]
denominations_yuan = [100, 100, 100]
# 使用门槛（满减，元）：订单满此金额才能用一张券；0 表示无门槛
# Threshold (满减) in yuan: an order must reach it to use one voucher; 0 means none
threshold_yuan = 0
# 可用商户类别 · Merchant categories where it can be spent:
{categories}
categories = ["daily_goods", "grain_produce", "supermarket_fuel", "hotel_dining", "other"]
# 可用渠道 · Channels where it can be spent:
{channels}
channels = ["offline", "online", "takeaway", "groupbuy"]
# 可用地域，相对于发券的基层工会：county 本县 | city 本市 | province 本省
# Where it can be spent, relative to the issuing union: county | city | province
region_scope = "city"
# 生效日（含） · First day it can be spent (inclusive)
valid_from = {valid_from}
# 截止日（含当天，到 24 时） · Last day it can be spent (through 24:00 of that day)
expires_at = {expires_at}
# true：只发给选择参加的会员（如旅游年卡） · true: only members who opt in (e.g. a tourism card)
optional = false
"""


def program_template(*, start: date, days: int = 90, key: str = "my-program",
                     name: str = "职工消费券活动") -> str:
    """The commented program file, spendable from ``start`` through ``start + days - 1``."""
    if days < 1:
        raise ValueError("days must be at least 1")
    last = start + timedelta(days=days - 1)
    return TEMPLATE.format(key=key, name=name, valid_from=start.isoformat(),
                           expires_at=last.isoformat(), categories=_CATEGORIES,
                           channels=_CHANNELS)
