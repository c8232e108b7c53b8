"""The report's figures, checked exactly against the worked example in tests/analytics/world.py
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from civicvoucher.analytics import compare_reports, compute_report
from civicvoucher.errors import NotFound
from civicvoucher.vouchers.issuance import issue
from tests.analytics.world import T0, build_report_world
from tests.world import fund


def cols(table, *keys, **match):
    row = table.row(**match)
    return tuple(row[k] for k in keys)


def test_expected_issued_and_shortfall_by_level(report_world, make_report):
    r = make_report(report_world.url)
    t = r.table("expected_issued")
    assert [row["level"] for row in t.rows] == ["province", "city", "county", "total"]
    keys = ("members", "expected_fen", "issued_fen", "shortfall_fen")
    assert cols(t, *keys, level="province") == (2, 60000, 60000, 0)
    assert cols(t, *keys, level="city") == (2, 60000, 30000, 30000)
    assert cols(t, *keys, level="county") == (7, 210000, 150000, 60000)
    assert cols(t, *keys, level="total") == (11, 330000, 240000, 90000)
    assert t.row(level="county")["issue_rate"] == 150000 / 210000


def test_issued_by_level_and_form(report_world, make_report):
    t = make_report(report_world.url).table("issued_by_form")
    keys = ("digital_fen", "paper_fen", "issued_fen", "digital_count", "paper_count")
    assert cols(t, *keys, level="province") == (60000, 0, 60000, 2, 0)
    assert cols(t, *keys, level="city") == (0, 30000, 30000, 0, 1)
    assert cols(t, *keys, level="county") == (90000, 60000, 150000, 3, 2)
    assert cols(t, *keys, level="total") == (150000, 90000, 240000, 5, 3)
    assert t.row(level="total")["digital_share"] == 150000 / 240000
    assert t.row(level="city")["digital_share"] == 0.0


def test_leverage_of_digital_and_paper_redemptions(report_world, make_report):
    """Digital: 300+300+300 of vouchers with orders 400+500+300; paper: 300 with 360."""
    t = make_report(report_world.url).table("leverage")
    keys = ("redemptions", "voucher_fen", "order_fen", "leverage")
    assert cols(t, *keys, form="digital", dimension="overall") == (3, 90000, 120000,
                                                                     120000 / 90000)
    assert cols(t, *keys, form="digital", dimension="level", group="province") == (
        1, 30000, 40000, 40000 / 30000)
    assert cols(t, *keys, form="digital", dimension="level", group="county") == (
        2, 60000, 80000, 80000 / 60000)
    assert cols(t, *keys, form="digital", dimension="category", group="hotel_dining") == (
        1, 30000, 50000, 50000 / 30000)
    assert cols(t, *keys, form="digital", dimension="category", group="supermarket_fuel") == (
        2, 60000, 70000, 70000 / 60000)
    assert cols(t, *keys, form="digital", dimension="channel", group="offline") == (
        3, 90000, 120000, 120000 / 90000)
    assert cols(t, *keys, form="paper", dimension="overall") == (1, 30000, 36000, 1.2)


def test_redemption_rate_breakage_and_ledger_agree(report_world, make_report):
    r = make_report(report_world.url)
    rate = r.table("redemption_rate")
    keys = ("issued_fen", "redeemed_fen", "redemption_rate", "expired_fen", "outstanding_fen")
    assert cols(rate, *keys, form="digital") == (150000, 90000, 0.6, 60000, 0)
    assert cols(rate, *keys, form="paper") == (90000, 30000, 30000 / 90000, 60000, 0)
    brk = r.table("breakage")
    assert cols(brk, "count", "amount_fen", measure="vouchers_consumption") == (4, 120000)
    assert cols(brk, "count", "amount_fen", measure="ledger_expire") == (4, 120000)
    assert brk.row(measure="difference")["amount_fen"] == 0
    assert r.headline["breakage_fen"].value == r.headline["breakage_ledger_fen"].value == 120000


def test_tourism_daily_curve_and_merchant_concentration(report_world, make_report):
    r = make_report(report_world.url)
    assert cols(r.table("tourism_cards"), "cards", "value_fen", level="total") == (3, 60000)
    assert cols(r.table("tourism_cards"), "cards", level="county") == (3,)
    daily = r.table("daily_spending").rows
    assert [(d["day"], d["voucher_fen"], d["order_fen"], d["cumulative_voucher_fen"])
            for d in daily] == [("2020-05-01", 60000, 90000, 60000),
                                ("2020-05-02", 60000, 66000, 120000)]
    # 超市 took 90,000 of 120,000; with two merchants the top 10% is one merchant
    conc = r.table("merchant_concentration").row(top_pct=10)
    assert (conc["merchants"], conc["top_merchants"], conc["share"]) == (2, 1, 0.75)


def test_guarantee_groups_use_the_county_of_the_parent_federation(report_world, make_report):
    t = make_report(report_world.url).table("guarantee_groups")
    keys = ("counties", "counties_in_data", "members", "expected_fen", "issued_fen")
    assert cols(t, *keys, group="100%") == (1, 1, 5, 150000, 90000)  # 小店区: A issued, B not
    assert cols(t, *keys, group="under 50%") == (1, 1, 2, 60000, 60000)  # 迎泽区: C
    assert cols(t, *keys, group="50% to <100%") == (1, 0, 0, 0, 0)
    assert cols(t, *keys, group="0%") == (1, 0, 0, 0, 0)
    assert t.row(group="50% to <100%")["issue_rate"] is None
    assert cols(t, *keys, group="total") == (4, 2, 7, 210000, 150000)


def test_headlines_scale_to_full_size(report_world, make_report):
    h = make_report(report_world.url, scale=0.001).headline
    assert (h["issued_fen_total"].value, h["issued_fen_total"].full) == (240000, 240000000)
    assert (h["members_total"].value, h["members_total"].full) == (11, 11000)
    assert h["leverage_digital"].full == 120000 / 90000  # ratios are not scaled
    assert h["guarantee_counties_100"].full == 1  # county counts are not sampled


def test_changing_one_transaction_changes_the_report(report_world, make_report):
    before = make_report(report_world.url)
    with report_world.world.db.engine.begin() as c:
        c.execute(text("UPDATE redemption SET order_amount_fen = 90000 WHERE id = :id"),
                  {"id": report_world.redemptions["a1"]})
    after = make_report(report_world.url)
    assert before.headline["leverage_digital"].value == 120000 / 90000
    assert after.headline["leverage_digital"].value == 160000 / 90000
    assert after.table("leverage").row(form="digital", dimension="category",
                                       group="hotel_dining")["order_fen"] == 90000
    assert after.table("expected_issued") == before.table("expected_issued")


def test_same_database_same_report(report_world, make_report):
    first, second = make_report(report_world.url), make_report(report_world.url)
    assert first == second
    for name, table in first.tables.items():
        assert table.rows == second.tables[name].rows, name


def test_what_if_deltas(report_world, make_report):
    """Fund union B (2 members) too: county issuance rises by 600 yuan, i.e. 60万 at 0.1%."""
    base = make_report(report_world.url)
    w = report_world.world
    fund(w, w.union_b, 600)
    with w.db.session() as s:
        issue(s, union_id=w.union_b, program=w.program, idem_key="ib2", now=T0)
    variant = make_report(report_world.url)
    deltas = {d["key"]: d for d in compare_reports(base, variant)}
    assert deltas["issued_fen_county"]["delta"] == 60000 * 1000
    assert deltas["shortfall_fen_county"]["delta"] == -60000 * 1000
    assert deltas["issued_fen_county"]["delta_pct"] == 60000 / 150000
    assert deltas["leverage_digital"]["delta"] == 0


def test_program_must_be_named_when_there_are_several(sqlite_db, make_report):
    from civicvoucher.programs.service import create_program
    from civicvoucher.programs.spec import parse_program_spec
    from tests.world import program_spec

    build_report_world(sqlite_db)
    with sqlite_db.session() as s:
        create_program(s, spec=parse_program_spec(program_spec("other")))
    with pytest.raises(NotFound, match="holds: p2020, other"):
        make_report(sqlite_db.url)
    assert make_report(sqlite_db.url, program_key="p2020").program_key == "p2020"
    empty = make_report(sqlite_db.url, program_key="other")
    assert empty.headline["issued_fen_total"].value == 0
    assert empty.headline["leverage_digital"].value is None
    with pytest.raises(NotFound, match="no program 'nope'"):
        make_report(sqlite_db.url, program_key="nope")
    by_id = make_report(sqlite_db.url, program_key=str(empty.program_id))
    assert by_id.program_key == "other"


def test_bad_arguments_are_refused(sqlite_db, published):
    with pytest.raises(ValueError, match="scale"):
        compute_report(sqlite_db.url, scale=0, published=published, guarantee_by_county={})
    with pytest.raises(ValueError, match="between 0 and 1"):
        build_report_world(sqlite_db)
        compute_report(sqlite_db.url, scale=1, published=published,
                       guarantee_by_county={"140105": 1.5})
