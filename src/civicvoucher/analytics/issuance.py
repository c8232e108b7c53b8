"""Issuance tables: expected vs issued by level, digital vs paper, county guarantee groups,
tourism cards. Every sum is SQL over the staged tables (see ``duck.stage``)."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from civicvoucher.analytics.duck import fetch
from civicvoucher.analytics.tables import (
    FORM_LABEL,
    LEVEL_LABEL,
    LEVELS,
    Column,
    Table,
    level_order,
    ratio,
)

# Guarantee groups as the article counts them, in display order: (group as the article names
# it, slug for headline keys, Chinese label, SQL condition on the guaranteed share).
GUARANTEE_GROUPS = (
    ("100%", "100", "100%", "share = 1.0"),
    ("50% to <100%", "50_to_100", "50%至不足100%", "share >= 0.5 AND share < 1.0"),
    ("under 50%", "under_50", "不足50%", "share > 0 AND share < 0.5"),
    ("0%", "0", "0%", "share = 0"),
)
UNASSIGNED = "unassigned"

# One row per grassroots union: its level, county code, members and consumption vouchers.
_PER_UNION = """
CREATE OR REPLACE TEMP TABLE per_union AS
WITH cons AS (SELECT id FROM products WHERE kind = 'consumption'),
iss AS (
    SELECT union_id,
           COALESCE(sum(amount_fen) FILTER (WHERE form = 'digital'), 0) AS digital_fen,
           COALESCE(sum(amount_fen) FILTER (WHERE form = 'paper'), 0) AS paper_fen,
           count(*) FILTER (WHERE form = 'digital') AS digital_count,
           count(*) FILTER (WHERE form = 'paper') AS paper_count,
           count(DISTINCT member_id) AS members_issued
    FROM vouchers WHERE product_id IN (SELECT id FROM cons) GROUP BY union_id)
SELECT u.id, u.level, u.parent_code, u.path, COALESCE(m.active, 0) AS members,
       COALESCE(i.digital_fen, 0) AS digital_fen, COALESCE(i.paper_fen, 0) AS paper_fen,
       COALESCE(i.digital_count, 0) AS digital_count, COALESCE(i.paper_count, 0) AS paper_count,
       COALESCE(i.members_issued, 0) AS members_issued
FROM unions u LEFT JOIN members m ON m.union_id = u.id LEFT JOIN iss i ON i.union_id = u.id
"""

_FACE = "(SELECT COALESCE(sum(face_value_fen), 0) FROM products WHERE kind = 'consumption')"

# Every level the report covers gets a row (zeros when no union sits there), then the total.
_BY_LEVEL = """
WITH levels AS ({levels} SELECT DISTINCT level FROM per_union)
SELECT COALESCE(levels.level, 'total') AS level, COALESCE(sum(members), 0) AS members,
       COALESCE(sum(members), 0) * {face} AS expected_fen,
       COALESCE(sum(digital_fen), 0) AS digital_fen, COALESCE(sum(paper_fen), 0) AS paper_fen,
       COALESCE(sum(digital_fen + paper_fen), 0) AS issued_fen,
       COALESCE(sum(digital_count), 0) AS digital_count,
       COALESCE(sum(paper_count), 0) AS paper_count,
       COALESCE(sum(members_issued), 0) AS members_issued
FROM levels LEFT JOIN per_union p ON p.level = levels.level GROUP BY ROLLUP (levels.level)
"""


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_PER_UNION)


def by_level(con: duckdb.DuckDBPyConnection, levels: tuple[str, ...] = LEVELS) -> list[dict]:
    """Raw sums per level (``levels`` always, then any other level a union has) and the total,
    in that order."""
    fixed = "".join(f"SELECT '{lv}' AS level UNION " for lv in levels if lv in LEVELS)
    rows = fetch(con, _BY_LEVEL.format(levels=fixed, face=_FACE))
    return sorted(rows, key=lambda r: level_order(r["level"]))


def has_tourism(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the program has a tourism-card product (else no tourism table at all)."""
    return bool(con.execute("SELECT count(*) FROM products WHERE kind = 'tourism_card'")
                .fetchone()[0])


def _labels(level: str) -> dict:
    zh, en = LEVEL_LABEL.get(level, (level, level))
    return {"level": level, "level_zh": zh, "level_en": en}


def expected_issued_table(levels: list[dict]) -> Table:
    cols = (
        Column("level", "层级代码", "level key", code=True),
        Column("level_zh", "层级", "level"),
        Column("members", "在册会员", "active members", "count"),
        Column("expected_fen", "应发额", "expected", "fen"),
        Column("issued_fen", "实发额", "issued", "fen"),
        Column("shortfall_fen", "缺口", "shortfall", "fen"),
        Column("issue_rate", "发放率", "issued / expected", "share"),
    )
    rows = [
        {**_labels(r["level"]), "members": r["members"], "expected_fen": r["expected_fen"],
         "issued_fen": r["issued_fen"], "shortfall_fen": r["expected_fen"] - r["issued_fen"],
         "issue_rate": ratio(r["issued_fen"], r["expected_fen"])}
        for r in levels
    ]
    return Table(
        "expected_issued", "应发与实发（按层级）", "Expected vs issued by level", cols, rows,
        note_zh="层级指基层工会上级总工会的层级；应发 = 在册会员 × 消费券面值；实发含各种状态的券。",
        note_en="Level = the level of a grassroots union's parent federation. Expected = active"
        " members x the consumption voucher's face value; issued counts vouchers in any status.",
    )


def issued_by_form_table(levels: list[dict]) -> Table:
    cols = (
        Column("level", "层级代码", "level key", code=True),
        Column("level_zh", "层级", "level"),
        Column("digital_fen", FORM_LABEL["digital"][0], "digital", "fen"),
        Column("paper_fen", FORM_LABEL["paper"][0], "paper", "fen"),
        Column("issued_fen", "合计", "total", "fen"),
        Column("digital_count", "数字券张数", "digital vouchers", "count"),
        Column("paper_count", "纸质券张数", "paper vouchers", "count"),
        Column("digital_share", "数字化占比", "digital share", "share"),
    )
    rows = [
        {**_labels(r["level"]), **{k: r[k] for k in ("digital_fen", "paper_fen", "issued_fen",
                                                     "digital_count", "paper_count")},
         "digital_share": ratio(r["digital_fen"], r["issued_fen"])}
        for r in levels
    ]
    return Table("issued_by_form", "实发额（按层级与形式）", "Issued by level and form", cols, rows)


def guarantee_table(con: duckdb.DuckDBPyConnection,
                    guarantee_by_county: Mapping[str, float]) -> Table:
    """Issuance of county-level unions, grouped by the county budget's guarantee of union funds.

    ``counties`` counts the counties listed in ``guarantee_by_county`` per group; the money
    columns come from the unions whose parent is a county federation with that code.
    """
    bad = {c: g for c, g in guarantee_by_county.items() if not 0.0 <= float(g) <= 1.0}
    if bad:
        raise ValueError(f"guarantee shares must be between 0 and 1: {bad}")
    con.execute("CREATE OR REPLACE TEMP TABLE guarantee (code VARCHAR, share DOUBLE)")
    if guarantee_by_county:
        con.executemany("INSERT INTO guarantee VALUES (?, ?)",
                        sorted((str(c), float(g)) for c, g in guarantee_by_county.items()))
    case = " ".join(f"WHEN {cond} THEN '{key}'" for key, _, _, cond in GUARANTEE_GROUPS)
    order = " ".join(f"WHEN '{g[0]}' THEN {i}" for i, g in enumerate(GUARANTEE_GROUPS))
    sql = f"""
    WITH g AS (SELECT code, CASE {case} END AS grp FROM guarantee),
    cu AS (SELECT parent_code AS code, sum(members) AS members,
                  sum(digital_fen) AS digital_fen, sum(paper_fen) AS paper_fen
           FROM per_union WHERE level = 'county' GROUP BY parent_code),
    j AS (SELECT COALESCE(g.grp, '{UNASSIGNED}') AS grp, g.code IS NOT NULL AS listed,
                 cu.code IS NOT NULL AS in_data, COALESCE(cu.members, 0) AS members,
                 COALESCE(cu.digital_fen, 0) AS digital_fen,
                 COALESCE(cu.paper_fen, 0) AS paper_fen
          FROM g FULL JOIN cu ON g.code = cu.code),
    groups AS (SELECT * FROM (VALUES {", ".join(f"('{g[0]}')" for g in GUARANTEE_GROUPS)})
               AS t(grp) UNION SELECT DISTINCT grp FROM j)
    SELECT COALESCE(groups.grp, 'total') AS grp,
           count(*) FILTER (WHERE listed) AS counties,
           count(*) FILTER (WHERE in_data) AS counties_in_data,
           COALESCE(sum(members), 0) AS members,
           COALESCE(sum(members), 0) * {_FACE} AS expected_fen,
           COALESCE(sum(digital_fen + paper_fen), 0) AS issued_fen,
           COALESCE(sum(digital_fen), 0) AS digital_fen
    FROM groups LEFT JOIN j ON j.grp = groups.grp
    GROUP BY ROLLUP (groups.grp)
    ORDER BY groups.grp IS NULL, CASE groups.grp {order} ELSE 99 END, groups.grp
    """
    labels = {key: zh for key, _, zh, _ in GUARANTEE_GROUPS} | {
        UNASSIGNED: "未列明保障比例", "total": "合计"}
    rows = []
    for r in fetch(con, sql):
        rows.append({
            "group": r["grp"], "group_zh": labels.get(r["grp"], r["grp"]),
            "counties": r["counties"], "counties_in_data": r["counties_in_data"],
            "members": r["members"], "expected_fen": r["expected_fen"],
            "issued_fen": r["issued_fen"], "shortfall_fen": r["expected_fen"] - r["issued_fen"],
            "issue_rate": ratio(r["issued_fen"], r["expected_fen"]),
            "digital_share": ratio(r["digital_fen"], r["issued_fen"]),
        })
    cols = (
        Column("group", "分组代码", "group key", code=True),
        Column("group_zh", "县级财政保障比例", "county guarantee of union funds"),
        Column("counties", "县（区）数", "counties", "count"),
        Column("counties_in_data", "有数据的县", "counties with unions", "count"),
        Column("members", "在册会员", "active members", "count"),
        Column("expected_fen", "应发额", "expected", "fen"),
        Column("issued_fen", "实发额", "issued", "fen"),
        Column("shortfall_fen", "缺口", "shortfall", "fen"),
        Column("issue_rate", "发放率", "issued / expected", "share"),
        Column("digital_share", "数字化占比", "digital share", "share"),
    )
    return Table(
        "guarantee_groups", "县级工会发放率（按县级财政保障比例分组）",
        "County-level issuance by county fiscal guarantee group", cols, rows,
        note_zh="只统计上级为县级总工会的基层工会。",
        note_en="Only grassroots unions whose parent is a county federation.",
    )


def tourism_table(con: duckdb.DuckDBPyConnection) -> Table:
    """Tourism annual cards issued: a card is one member's vouchers of one card product."""
    sql = """
    WITH cards AS (
        SELECT COALESCE(u.level, 'unknown') AS level, v.product_id, v.member_id,
               count(*) AS vouchers, sum(v.amount_fen) AS value_fen
        FROM vouchers v JOIN products p ON p.id = v.product_id AND p.kind = 'tourism_card'
        LEFT JOIN unions u ON u.id = v.union_id
        GROUP BY ALL),
    levels AS (SELECT * FROM (VALUES ('province'), ('city'), ('county')) AS t(level)
               UNION SELECT DISTINCT level FROM cards)
    SELECT COALESCE(levels.level, 'total') AS level, count(cards.level) AS cards,
           COALESCE(sum(vouchers), 0) AS vouchers, COALESCE(sum(value_fen), 0) AS value_fen
    FROM levels LEFT JOIN cards ON cards.level = levels.level GROUP BY ROLLUP (levels.level)
    """
    rows = [
        {**_labels(r["level"]), "cards": r["cards"], "vouchers": r["vouchers"],
         "value_fen": r["value_fen"]}
        for r in sorted(fetch(con, sql), key=lambda r: level_order(r["level"]))
    ]
    cols = (
        Column("level", "层级代码", "level key", code=True),
        Column("level_zh", "层级", "level"),
        Column("cards", "旅游年卡（张）", "tourism cards", "count"),
        Column("vouchers", "券数", "vouchers", "count"),
        Column("value_fen", "面值合计", "face value", "fen"),
    )
    return Table("tourism_cards", "旅游年卡发放", "Tourism annual cards issued", cols, rows)


BY_ORG_UNIT = {"city": "市", "county": "县（区）", "union": "基层工会"}
BY_ORG_LEVEL = {"city": ("按市", "by city"), "county": ("按县（区）", "by county"),
                "union": ("按基层工会", "by grassroots union")}


def by_org_table(con: duckdb.DuckDBPyConnection, level: str, root_path: str = "/") -> Table:
    """One row per organisation of ``level`` inside the subtree at ``root_path``, each the sum
    of the unions below it (a union below none of them, e.g. one directly under the province
    federation, goes to a row of its own), and the total: the rows add up to the report.

    A union's owner is found among its path's ids (equality joins, no prefix scan), so a
    province's 20,000 unions cost no more than its 117 counties."""
    groups = con.execute("SELECT id, name, code FROM orgs WHERE level = ? AND"
                         " starts_with(path, ?) ORDER BY code, name, id",
                         [level, root_path]).fetchall()
    con.execute("CREATE OR REPLACE TEMP TABLE report_groups AS"
                " SELECT id FROM orgs WHERE level = ? AND starts_with(path, ?)",
                [level, root_path])
    sums = fetch(con, f"""
    WITH anc AS (SELECT id AS union_id,
                        CAST(unnest(string_split(trim(path, '/'), '/')) AS BIGINT) AS org_id
                 FROM per_union),
    owner AS (SELECT anc.union_id, anc.org_id AS gid FROM anc
              JOIN report_groups g ON g.id = anc.org_id),
    red AS (SELECT union_id, count(*) AS redemptions, sum(amount_fen) AS redeemed_fen,
                   sum(order_amount_fen) AS order_fen FROM spend GROUP BY union_id)
    SELECT owner.gid, count(*) AS unions, sum(p.members) AS members,
           sum(p.members) * {_FACE} AS expected_fen,
           sum(p.digital_fen) AS digital_fen, sum(p.paper_fen) AS paper_fen,
           COALESCE(sum(red.redemptions), 0) AS redemptions,
           COALESCE(sum(red.redeemed_fen), 0) AS redeemed_fen,
           COALESCE(sum(red.order_fen), 0) AS order_fen
    FROM per_union p LEFT JOIN owner ON owner.union_id = p.id
    LEFT JOIN red ON red.union_id = p.id
    GROUP BY owner.gid
    """)
    by_gid = {r["gid"]: r for r in sums}
    keys = ("unions", "members", "expected_fen", "digital_fen", "paper_fen", "redemptions",
            "redeemed_fen", "order_fen")

    def row(group: str, org_id: int | None, name: str, code: str | None, r: dict) -> dict:
        v = {k: int(r.get(k) or 0) for k in keys}
        issued = v["digital_fen"] + v["paper_fen"]
        return {"group": group, "org_id": org_id, "name": name, "code": code or "",
                "unions": v["unions"], "members": v["members"],
                "expected_fen": v["expected_fen"], "issued_fen": issued,
                "digital_fen": v["digital_fen"], "paper_fen": v["paper_fen"],
                "shortfall_fen": v["expected_fen"] - issued,
                "issue_rate": ratio(issued, v["expected_fen"]),
                "digital_share": ratio(v["digital_fen"], issued),
                "redeemed_fen": v["redeemed_fen"],
                "redemption_rate": ratio(v["redeemed_fen"], issued),
                "leverage": ratio(v["order_fen"], v["redeemed_fen"])}

    rows = [row("org", gid, name, code, by_gid.get(gid, {})) for gid, name, code in groups]
    if None in by_gid and by_gid[None]["unions"]:
        rows.append(row("other", None, f"直属上级的基层工会（不属任何{BY_ORG_UNIT[level]}）",
                        None, by_gid[None]))
    total = {k: sum(int(r.get(k) or 0) for r in sums) for k in keys}
    rows.append(row("total", None, "合计", None, total))
    zh, en = BY_ORG_LEVEL[level]
    cols = (
        Column("group", "分组代码", "group key", code=True),
        Column("org_id", "单位编号", "organisation id", code=True),
        Column("name", "单位", "organisation"),
        Column("code", "代码", "division code / USCC"),
        Column("unions", "基层工会数", "grassroots unions", "count"),
        Column("members", "在册会员", "active members", "count"),
        Column("expected_fen", "应发额", "expected", "fen"),
        Column("issued_fen", "实发额", "issued", "fen"),
        Column("digital_fen", "数字券", "digital", "fen"),
        Column("paper_fen", "纸质券", "paper", "fen"),
        Column("shortfall_fen", "缺口", "shortfall", "fen"),
        Column("issue_rate", "发放率", "issued / expected", "share"),
        Column("digital_share", "数字化占比", "digital share", "share"),
        Column("redeemed_fen", "核销额", "redeemed", "fen"),
        Column("redemption_rate", "核销率", "redeemed / issued", "share"),
        Column("leverage", "拉动效应", "leverage", "ratio"),
    )
    return Table(
        "by_org", f"发放与核销（{zh}）", f"Issuance and redemption {en}", cols, rows,
        note_zh="每行是该单位下属全部基层工会之和；各行相加等于合计。",
        note_en="Each row sums the grassroots unions below that organisation; the rows add up "
        "to the total.",
    )
