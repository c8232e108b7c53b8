"""Spending tables: leverage (拉动效应), redemption rate, breakage, the daily curve and merchant
concentration. All from posted redemptions of the program's consumption vouchers.

Days are local calendar days in the deployment's zone (``CIVICVOUCHER_TIMEZONE``, default
Asia/Shanghai): a redemption at 2020-07-10T17:00Z (01:00 in Beijing) counts on 2020-07-11.
Stored instants are naive UTC: the day is the instant plus the zone's offset at that instant
(``local_day_sql``: offsets from the zone database, so daylight saving is right too).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import duckdb

from civicvoucher.analytics.duck import fetch
from civicvoucher.analytics.tables import FORM_LABEL, LEVEL_LABEL, Column, Table, ratio
from civicvoucher.core import clock
from civicvoucher.merchants.rules import CATEGORY_LABEL_ZH, CHANNEL_LABEL_ZH, Category, Channel

# Posted redemptions of consumption vouchers, with what each is grouped by.
_SPEND = """
CREATE OR REPLACE TEMP TABLE spend AS
SELECT r.id, r.merchant_id, v.union_id, r.channel, r.order_amount_fen, r.amount_fen, r.spent_at,
       v.form,
       COALESCE(u.level, 'unknown') AS level, COALESCE(m.category, 'unknown') AS category
FROM redemptions r
JOIN vouchers v ON v.id = r.voucher_id
JOIN products p ON p.id = v.product_id AND p.kind = 'consumption'
LEFT JOIN unions u ON u.id = v.union_id
LEFT JOIN merchants m ON m.id = r.merchant_id
WHERE r.status = 'posted'
"""

DIMENSIONS = {
    "overall": ("总体", "overall"),
    "level": ("按层级", "by level"),
    "category": ("按商户类别", "by merchant category"),
    "channel": ("按渠道", "by channel"),
}
_CATEGORIES = [c.value for c in Category]
_CHANNELS = [c.value for c in Channel]


def _offset_periods(lo: datetime, hi: datetime, zone) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets (seconds) over [lo, hi] (naive UTC): ``(starts, offset)`` pairs,
    the first one starting at None. A transition is found to the second by bisection."""

    def offset(t: datetime) -> int:
        return int(clock.to_local(t, zone).utcoffset().total_seconds())

    periods: list[tuple[datetime | None, int]] = [(None, offset(lo))]
    t = lo
    while t < hi:
        step = min(t + timedelta(days=1), hi)
        if offset(step) != periods[-1][1]:
            a, b = t, step  # offset(a) is the old one, offset(b) the new one
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                a, b = (mid, b) if offset(mid) == periods[-1][1] else (a, mid)
            periods.append((b.replace(microsecond=0), offset(b)))
        t = step
    return periods


def local_day_sql(con: duckdb.DuckDBPyConnection, column: str = "spent_at",
                  table: str = "redemptions") -> str:
    """A SQL expression for the local calendar day (in the deployment's zone) of the naive-UTC
    TIMESTAMP ``column``: the column plus the zone's offset at that instant, as a DATE. The
    offsets come from the zone database for the span ``table`` covers, so daylight saving is
    right; a constant offset (Beijing) is a single addition."""
    lo, hi = con.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()
    if lo is None:
        return f"CAST({column} AS DATE)"
    periods = _offset_periods(lo, hi, clock.zone())

    def interval(seconds: int) -> str:
        return f"INTERVAL '{seconds} seconds'"

    if len(periods) == 1:
        shift = interval(periods[0][1])
    else:
        whens = " ".join(f"WHEN {column} < TIMESTAMP '{starts:%Y-%m-%d %H:%M:%S}' "
                         f"THEN {interval(prev)}"
                         for (_, prev), (starts, _) in itertools.pairwise(periods))
        shift = f"CASE {whens} ELSE {interval(periods[-1][1])} END"
    return f"CAST({column} + {shift} AS DATE)"


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_SPEND)


def _group_label(dimension: str, group: str) -> str:
    if dimension == "overall":
        return "全部"
    if dimension == "level":
        return LEVEL_LABEL.get(group, (group,))[0]
    if dimension == "category" and group in _CATEGORIES:
        return CATEGORY_LABEL_ZH[Category(group)]
    if dimension == "channel" and group in _CHANNELS:
        return CHANNEL_LABEL_ZH[Channel(group)]
    return group


def _group_rank(dimension: str, group: str) -> tuple[int, str]:
    known = {"level": ["province", "city", "county"], "category": _CATEGORIES,
             "channel": _CHANNELS}.get(dimension, [])
    return (known.index(group), group) if group in known else (len(known), group)


def leverage_table(con: duckdb.DuckDBPyConnection) -> Table:
    """Order amount / voucher amount of posted redemptions, per form, overall and by group.

    Digital rows are always present (the article's figure); paper rows only when paper vouchers
    were redeemed here, which the article's data could not show.
    """
    sql = """
    SELECT form, level, category, channel, GROUPING(level, category, channel) AS gid,
           count(*) AS redemptions, sum(amount_fen) AS voucher_fen,
           sum(order_amount_fen) AS order_fen
    FROM spend
    GROUP BY GROUPING SETS ((form), (form, level), (form, category), (form, channel))
    """
    found = fetch(con, sql)
    forms = ["digital"] + (["paper"] if any(r["form"] == "paper" for r in found) else [])
    rows = []
    for form in forms:
        mine = [r for r in found if r["form"] == form]
        if not any(r["gid"] == 7 for r in mine):  # no redemptions: still an (empty) overall row
            mine.append(dict(form=form, level=None, category=None, channel=None, gid=7,
                             redemptions=0, voucher_fen=0, order_fen=0))
        out = []
        for r in mine:
            dimension, group = "overall", "all"
            for dim in ("level", "category", "channel"):
                if r[dim] is not None:
                    dimension, group = dim, r[dim]
            zh = _group_label(dimension, group)
            out.append({
                "form": form, "form_zh": FORM_LABEL[form][0], "dimension": dimension,
                "dimension_zh": DIMENSIONS[dimension][0], "group": group, "group_zh": zh,
                "redemptions": r["redemptions"], "voucher_fen": r["voucher_fen"],
                "order_fen": r["order_fen"], "extra_fen": r["order_fen"] - r["voucher_fen"],
                "leverage": ratio(r["order_fen"], r["voucher_fen"]),
            })
        dims = list(DIMENSIONS)
        out.sort(key=lambda x: (dims.index(x["dimension"]), _group_rank(x["dimension"],
                                                                         x["group"])))
        rows.extend(out)
    cols = (
        Column("form", "形式代码", "form key", code=True),
        Column("form_zh", "形式", "form"),
        Column("dimension", "维度代码", "dimension key", code=True),
        Column("dimension_zh", "维度", "dimension"),
        Column("group", "分组代码", "group key", code=True),
        Column("group_zh", "分组", "group"),
        Column("redemptions", "核销笔数", "redemptions", "count"),
        Column("voucher_fen", "券抵扣额", "voucher value spent", "fen"),
        Column("order_fen", "带动消费额", "total spending", "fen"),
        Column("extra_fen", "自付额", "paid on top", "fen"),
        Column("leverage", "拉动效应", "leverage", "ratio"),
    )
    return Table(
        "leverage", "拉动效应（消费额 ÷ 券抵扣额）", "Leverage: spending / voucher value", cols,
        rows,
        note_zh="文章只有云闪付数字券的交易数据，纸质券没有留下数据；本系统在同一账本上记录纸质券"
        "核销，因此纸质券的拉动效应也能算出。拉动效应是毛比率，不等于新增消费。",
        note_en="The article had transaction data for digital (UnionPay app) vouchers only; paper"
        " vouchers left none. This system records paper redemptions on the same ledger, so their"
        " leverage is measured too. Leverage is a gross ratio, not additional spending.",
    )


def redemption_rate_table(con: duckdb.DuckDBPyConnection) -> Table:
    sql = """
    WITH iss AS (
        SELECT v.form, count(*) AS vouchers, sum(v.amount_fen) AS issued_fen,
               COALESCE(sum(v.amount_fen) FILTER (WHERE v.status = 'expired'), 0) AS expired_fen,
               COALESCE(sum(v.amount_fen) FILTER (WHERE v.status IN ('issued', 'held')), 0)
                   AS outstanding_fen
        FROM vouchers v JOIN products p ON p.id = v.product_id AND p.kind = 'consumption'
        GROUP BY v.form),
    red AS (SELECT form, count(*) AS redeemed, sum(amount_fen) AS redeemed_fen
            FROM spend GROUP BY form),
    j AS (SELECT COALESCE(iss.form, red.form) AS form, COALESCE(vouchers, 0) AS vouchers,
                 COALESCE(issued_fen, 0) AS issued_fen, COALESCE(redeemed, 0) AS redeemed,
                 COALESCE(redeemed_fen, 0) AS redeemed_fen,
                 COALESCE(expired_fen, 0) AS expired_fen,
                 COALESCE(outstanding_fen, 0) AS outstanding_fen
          FROM iss FULL JOIN red ON iss.form = red.form)
    SELECT COALESCE(form, 'total') AS form, sum(vouchers) AS vouchers,
           sum(issued_fen) AS issued_fen, sum(redeemed) AS redeemed,
           sum(redeemed_fen) AS redeemed_fen, sum(expired_fen) AS expired_fen,
           sum(outstanding_fen) AS outstanding_fen
    FROM j GROUP BY ROLLUP (form)
    ORDER BY form IS NULL, form
    """
    labels = FORM_LABEL | {"total": ("合计", "total")}
    rows = [
        {"form": r["form"], "form_zh": labels.get(r["form"], (r["form"],))[0],
         "vouchers": r["vouchers"] or 0, "issued_fen": r["issued_fen"] or 0,
         "redeemed": r["redeemed"] or 0, "redeemed_fen": r["redeemed_fen"] or 0,
         "redemption_rate": ratio(r["redeemed_fen"], r["issued_fen"]),
         "expired_fen": r["expired_fen"] or 0, "outstanding_fen": r["outstanding_fen"] or 0}
        for r in fetch(con, sql)
    ]
    cols = (
        Column("form", "形式代码", "form key", code=True),
        Column("form_zh", "形式", "form"),
        Column("vouchers", "发放张数", "vouchers issued", "count"),
        Column("issued_fen", "发放额", "issued", "fen"),
        Column("redeemed", "核销笔数", "redemptions", "count"),
        Column("redeemed_fen", "核销额", "redeemed", "fen"),
        Column("redemption_rate", "核销率", "redeemed / issued", "share"),
        Column("expired_fen", "过期未用", "expired (breakage)", "fen"),
        Column("outstanding_fen", "尚未使用", "still outstanding", "fen"),
    )
    return Table("redemption_rate", "核销率（按形式）", "Redemption rate by form", cols, rows)


def breakage_table(con: duckdb.DuckDBPyConnection) -> Table:
    """Expired value by voucher status, beside the ledger's own record of it (must agree)."""
    sql = """
    SELECT 'vouchers_' || p.kind AS measure, count(*) AS n, sum(v.amount_fen) AS amount_fen
    FROM vouchers v JOIN products p ON p.id = v.product_id
    WHERE v.status = 'expired' GROUP BY p.kind
    UNION ALL
    SELECT 'ledger_' || source, transfers, amount_fen FROM ledger_breakage
    """
    found = {r["measure"]: r for r in fetch(con, sql)}

    def get(key: str) -> tuple[int, int]:
        r = found.get(key)
        return (r["n"], r["amount_fen"]) if r else (0, 0)

    spec = [
        ("vouchers_consumption", "过期消费券（券状态）", "expired consumption vouchers (status)"),
        ("vouchers_tourism_card", "过期旅游年卡（券状态）", "expired tourism cards (status)"),
        ("ledger_expire", "账本：过期转回工会经费", "ledger: expiry transfers to union funds"),
        ("ledger_refund_to_fund", "账本：过期后退款转回经费",
         "ledger: refunds after expiry, to union funds"),
    ]
    rows = [dict(measure=k, label_zh=zh, label_en=en, count=get(k)[0], amount_fen=get(k)[1])
            for k, zh, en in spec]
    by_status = sum(r["amount_fen"] for r in rows if r["measure"].startswith("vouchers_"))
    by_ledger = sum(r["amount_fen"] for r in rows if r["measure"].startswith("ledger_"))
    rows += [
        dict(measure="vouchers_total", label_zh="过期合计（券状态）",
             label_en="breakage by voucher status", count=None, amount_fen=by_status),
        dict(measure="ledger_total", label_zh="过期合计（账本）", label_en="breakage by ledger",
             count=None, amount_fen=by_ledger),
        dict(measure="difference", label_zh="差额（应为0）", label_en="difference (should be 0)",
             count=None, amount_fen=by_status - by_ledger),
    ]
    cols = (
        Column("measure", "代码", "key", code=True),
        Column("label_zh", "项目", "item (zh)"),
        Column("label_en", "Item", "item (en)", code=True),
        Column("count", "笔数/张数", "count", "count"),
        Column("amount_fen", "金额", "amount", "fen"),
    )
    return Table("breakage", "过期未用（沉淀）", "Breakage: expired, unspent value", cols, rows)


def daily_table(con: duckdb.DuckDBPyConnection) -> Table:
    day = local_day_sql(con, "spent_at", "spend")
    sql = f"""
    WITH s AS (SELECT *, {day} AS spent_day FROM spend WHERE spent_at IS NOT NULL)
    SELECT strftime(spent_day, '%Y-%m-%d') AS day, count(*) AS redemptions,
           sum(amount_fen) AS voucher_fen, sum(order_amount_fen) AS order_fen,
           COALESCE(sum(amount_fen) FILTER (WHERE form = 'digital'), 0) AS digital_voucher_fen,
           COALESCE(sum(amount_fen) FILTER (WHERE form = 'paper'), 0) AS paper_voucher_fen,
           sum(sum(amount_fen)) OVER (ORDER BY spent_day) AS cumulative_voucher_fen
    FROM s GROUP BY spent_day ORDER BY spent_day
    """
    cols = (
        Column("day", "日期", "day"),
        Column("redemptions", "核销笔数", "redemptions", "count"),
        Column("voucher_fen", "券抵扣额", "voucher value", "fen"),
        Column("order_fen", "消费额", "spending", "fen"),
        Column("digital_voucher_fen", "数字券抵扣", "digital voucher value", "fen"),
        Column("paper_voucher_fen", "纸质券抵扣", "paper voucher value", "fen"),
        Column("cumulative_voucher_fen", "累计抵扣", "cumulative voucher value", "fen"),
    )
    zone = clock.zone().key
    return Table("daily_spending", "每日消费曲线", "Daily spending", cols, fetch(con, sql),
                 note_zh=f"日期按当地时间（{zone}）划分", note_en=f"days are local days ({zone})")


def concentration_table(con: duckdb.DuckDBPyConnection) -> Table:
    """Share of redeemed voucher value taken by the top x% of merchants (ties: lower id first)."""
    sql = """
    WITH pm AS (SELECT merchant_id, sum(amount_fen) AS v FROM spend GROUP BY merchant_id),
    ranked AS (SELECT v, row_number() OVER (ORDER BY v DESC, merchant_id) AS rn,
                      count(*) OVER () AS n FROM pm),
    pct AS (SELECT * FROM (VALUES (1), (10), (20), (50)) AS t(pct))
    SELECT pct.pct, COALESCE(max(n), 0) AS merchants,
           COALESCE((max(n) * pct.pct + 99) // 100, 0) AS top_merchants,
           COALESCE(sum(v) FILTER (WHERE rn <= (n * pct.pct + 99) // 100), 0) AS top_fen,
           COALESCE(sum(v), 0) AS total_fen
    FROM pct LEFT JOIN ranked ON true GROUP BY pct.pct ORDER BY pct.pct
    """
    rows = [
        {"top_pct": r["pct"], "label_zh": f"前{r['pct']}%商户",
         "label_en": f"top {r['pct']}% of merchants", "merchants": r["merchants"],
         "top_merchants": r["top_merchants"], "top_fen": r["top_fen"],
         "total_fen": r["total_fen"], "share": ratio(r["top_fen"], r["total_fen"])}
        for r in fetch(con, sql)
    ]
    cols = (
        Column("top_pct", "前x%", "top x% of merchants", "count"),
        Column("label_zh", "商户分组", "group"),
        Column("merchants", "有核销的商户数", "merchants with redemptions", "count"),
        Column("top_merchants", "其中头部商户数", "top merchants", "count"),
        Column("top_fen", "头部商户核销额", "their redeemed value", "fen"),
        Column("total_fen", "核销总额", "all redeemed value", "fen"),
        Column("share", "占比", "share", "share"),
    )
    return Table("merchant_concentration", "商户集中度", "Merchant concentration", cols, rows)
