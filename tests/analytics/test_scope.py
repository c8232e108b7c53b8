"""A report restricted to a subtree is that subtree's own: a parent's figures are its direct
unions' plus its children's, the per-organisation rows add up to the total, and a program
with nothing issued or nothing spent says so (on SQLite and PostgreSQL).

    山西 140000 ── union P;  太原 140100 ── union Y;  小店 140105 ── A, B;  迎泽 140106 ── C
"""

from __future__ import annotations

from collections import Counter

import pytest

from civicvoucher.analytics import compute_report
from civicvoucher.analytics.render import render_html, write_outputs
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.vouchers.issuance import issue
from tests.analytics.world import T0
from tests.world import build_world, fund, make_uscc


def additive(report) -> Counter:
    """Every figure of the report that adds up across disjoint subtrees."""
    out: Counter = Counter()

    def take(table: str, keys: tuple[str, ...], *, by: str | None = None, **match) -> None:
        for row in report.table(table).rows:
            if all(row.get(k) == v for k, v in match.items()):
                tag = f"{table}:{row[by]}" if by else table
                for k in keys:
                    out[f"{tag}:{k}"] += row[k] or 0

    take("expected_issued", ("members", "expected_fen", "issued_fen", "shortfall_fen"),
         level="total")
    take("issued_by_form", ("digital_fen", "paper_fen", "digital_count", "paper_count"),
         level="total")
    take("redemption_rate", ("vouchers", "issued_fen", "redeemed", "redeemed_fen",
                             "expired_fen", "outstanding_fen"), by="form")
    take("leverage", ("redemptions", "voucher_fen", "order_fen"), by="form",
         dimension="overall")
    take("breakage", ("amount_fen",), by="measure")
    take("tourism_cards", ("cards", "vouchers", "value_fen"), level="total")
    take("daily_spending", ("redemptions", "voucher_fen", "order_fen"), by="day")
    take("merchant_concentration", ("total_fen",), top_pct=1)
    return +out  # zeros dropped: a subtree without a form has no row for it


def test_a_parent_is_its_direct_unions_plus_its_children(report_world):
    rw = report_world
    rep = lambda org=None: compute_report(rw.url, org=org)  # noqa: E731
    whole, province = rep(), rep("140000")
    city, county_a, county_b = rep("140100"), rep("140105"), rep("140106")
    union_p, union_y = rep(rw.union_p), rep(str(rw.union_y))  # an id, typed or not
    assert additive(whole) == additive(province)
    assert additive(province) == additive(union_p) + additive(city)
    assert additive(city) == additive(union_y) + additive(county_a) + additive(county_b)
    assert additive(city)["expected_issued:issued_fen"] == 30000 + 150000
    # the levels shown are the subtree's own: a city report has no province row
    assert [r["level"] for r in city.table("expected_issued").rows] == ["city", "county",
                                                                        "total"]
    assert city.table("expected_issued").row(level="city")["members"] == 2  # union Y only
    assert [r["level"] for r in county_a.table("expected_issued").rows] == ["county", "total"]
    assert [r["level"] for r in union_p.table("expected_issued").rows] == ["province", "total"]
    assert (city.scope.name_zh, city.scope.code, city.scope.word_zh) == ("太原市总工会",
                                                                         "140100", "全市")
    assert city.headline["issued_fen_total"].label_zh == "全市实发合计"
    assert "issued_fen_province" not in city.headline


def test_the_rows_by_organisation_add_up_to_the_total(report_world):
    rw = report_world
    by_county = compute_report(rw.url, org="140100", level="county").table("by_org")
    names = [r["name"] for r in by_county.rows]
    assert names[:2] == ["小店区总工会", "迎泽区总工会"] and names[-1] == "合计"
    assert by_county.rows[2]["group"] == "other" and by_county.rows[2]["unions"] == 1  # Y
    for code in ("140105", "140106"):
        own = compute_report(rw.url, org=code).table("expected_issued").row(level="total")
        row = by_county.row(code=code)
        assert (row["members"], row["expected_fen"], row["issued_fen"]) == (
            own["members"], own["expected_fen"], own["issued_fen"])
    keys = ("unions", "members", "expected_fen", "issued_fen", "digital_fen", "paper_fen",
            "shortfall_fen", "redeemed_fen")
    parts, total = by_county.rows[:-1], by_county.row(group="total")
    for k in keys:
        assert sum(r[k] for r in parts) == total[k], k
    assert (total["members"], total["issued_fen"]) == (9, 180000)
    # every union its own row: 5 unions, A and B under 小店区
    by_union = compute_report(rw.url, level="union").table("by_org")
    assert len(by_union.rows) == 6 and by_union.row(group="total")["issued_fen"] == 240000
    a = by_union.row(name="union A")
    assert (a["issued_fen"], a["redeemed_fen"], a["leverage"]) == (90000, 60000, 80000 / 60000)
    with pytest.raises(ValidationError, match="not below"):
        compute_report(rw.url, org="140105", level="city")
    with pytest.raises(NotFound, match="no organisation 999999"):
        compute_report(rw.url, org="999999")


def test_a_real_program_has_no_article_and_no_guarantee_groups(report_world, tmp_path):
    r = compute_report(report_world.url)
    assert r.scale == 1 and not r.sample and r.scenario is None
    assert not r.has_comparison and "guarantee_groups" not in r.tables
    assert r.headline["issued_fen_total"].full == r.headline["issued_fen_total"].value
    html = render_html(r)
    assert "与文章公布数字对照" not in html and "chart-guarantee" not in html
    assert "样本值" not in html and "实际数据" in html
    write_outputs(r, tmp_path)  # and the files are written without them


def test_nothing_issued_yet_gives_a_report_that_says_so(db, tmp_path):
    w = build_world(db)
    r = compute_report(db.url, program_key=w.program)
    assert [n.code for n in r.notices] == ["nothing_issued"]
    assert r.headline["issue_rate_total"].value == 0
    assert r.headline["leverage_digital"].value is None
    assert r.table("daily_spending").rows == []
    paths = write_outputs(r, tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    assert "尚未发放任何券" in html and "暂无数据" in html


def test_issued_but_not_spent_gives_a_report_that_says_so(db):
    w = build_world(db)
    fund(w, w.union_a, 900)
    with db.session() as s:
        issue(s, union_id=w.union_a, program=w.program, idem_key="i", now=T0)
    r = compute_report(db.url)
    assert [n.code for n in r.notices] == ["no_redemptions"]
    assert r.headline["issued_fen_total"].value == 90000
    assert r.headline["redemption_rate_digital"].value == 0
    assert r.headline["leverage_digital"].value is None
    assert r.table("merchant_concentration").row(top_pct=10)["share"] is None


def test_no_members_in_a_subtree(db):
    w = build_world(db)
    from civicvoucher.orgs.service import create_org

    with db.session() as s:
        empty = create_org(s, level="union", name="空工会", uscc=make_uscc(77),
                           unit_type="enterprise", parent_id=w.county_b).id
    r = compute_report(db.url, org=str(empty))
    assert [n.code for n in r.notices] == ["no_members", "nothing_issued"]
    assert r.headline["issue_rate_total"].value is None  # 0 / 0 is not 0%
