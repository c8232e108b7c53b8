"""The article's figures: checked against themselves, and set beside ours."""

from __future__ import annotations

import copy

from civicvoucher.analytics.published import (
    comparison_table,
    consistency_checks,
    consistency_table,
    precision,
)
from civicvoucher.analytics.tables import Headline
from tests.analytics.world import build_report_world


def verdicts(published: dict) -> dict[str, str]:
    return {c.name: c.verdict for c in consistency_checks(published)}


def test_the_articles_own_inconsistencies(published):
    """0.48亿 + 2.3亿 = 2.78亿 is neither the stated 2.7亿 nor within 900,000 x 300 = 2.7亿;
    2.7 + 4.3 + 1.6 = 8.6亿, not 8.7亿; 1.5 + 7.2 = 8.7亿 holds; 4.32 → 4.3 is rounding."""
    v = verdicts(published)
    assert v["digital_plus_paper_province"] == "inconsistent"
    assert v["digital_plus_paper_within_max_province"] == "exceeds"
    assert v["levels_sum_issued_total_yuan"] == "inconsistent"
    assert v["digital_plus_paper_total"] == "consistent"
    assert v["digital_plus_paper_city"] == "rounding"
    assert v["expected_is_members_x_face_total"] == "rounding"  # 23.28亿 stated as 23.3亿
    assert v["leverage_from_amounts"] == "rounding"  # 1.9 / 1.5 = 1.2667 → 1.27
    assert v["digital_share_from_amounts"] == "rounding"  # 1.5 / 8.7 = 0.1724 → 0.172
    rows = {r["check"]: r for r in consistency_table(published).rows}
    p = rows["digital_plus_paper_province"]
    assert (p["computed"], p["stated"], p["difference"]) == (27800000000, 27000000000, 800000000)
    s = rows["levels_sum_issued_total_yuan"]
    assert (s["computed"], s["stated"]) == (86000000000, 87000000000)


def test_checks_follow_the_figures_not_a_script(published):
    fixed = copy.deepcopy(published)
    fixed["issued_total_yuan"]["province"] = 278_000_000  # the text said 2.78亿, not 2.7亿
    v = verdicts(fixed)
    assert v["digital_plus_paper_province"] == "consistent"
    assert v["issued_total_within_max_province"] == "exceeds"
    assert v["levels_sum_issued_total_yuan"] == "rounding"  # 2.78 + 4.3 + 1.6 = 8.68 → 8.7
    fixed["issued_total_yuan"]["total"] = 878_000_000
    assert verdicts(fixed)["digital_plus_paper_total"] == "inconsistent"  # 8.7 vs 8.78
    fixed.pop("leverage")
    assert "leverage_from_amounts" not in verdicts(fixed)


def test_precision_is_what_the_article_wrote():
    assert precision(270_000_000, cap=10_000_000) == 10_000_000  # 2.7亿 → 0.1亿
    assert precision(48_000_000, cap=10_000_000) == 1_000_000  # 0.48亿 → 0.01亿
    assert precision(2_260_000, cap=10_000) == 10_000
    assert precision(0, cap=10_000_000) == 10_000_000


def test_comparison_scales_our_figures_and_measures_the_gap(published):
    headline = {
        "issued_fen_total": Headline("issued_fen_total", "全省实发合计", "issued", "fen",
                                     8_000_000, 800_000_000_00),
        "leverage_digital": Headline("leverage_digital", "拉动效应", "leverage", "ratio", 1.3,
                                     1.3),
        "guarantee_counties_100": Headline("guarantee_counties_100", "x", "x", "count", 20, 20),
    }
    rows = {r["key"]: r for r in comparison_table(headline, published).rows}
    assert set(rows) == set(headline)
    issued = rows["issued_fen_total"]
    assert (issued["published"], issued["deviation"]) == (87_000_000_000, -7_000_000_000)
    assert issued["deviation_pct"] == -7_000_000_000 / 87_000_000_000
    assert rows["leverage_digital"]["published"] == 1.27
    assert rows["guarantee_counties_100"]["deviation"] == 0


def test_shanxi_counties_fall_into_the_articles_groups(sqlite_db, scenario, make_report):
    """The scenario's 117 county shares group as the article counts them: 20/22/68/7."""
    guarantee = {c["code"]: c["guarantee"] for c in scenario["counties"]}
    build_report_world(sqlite_db)
    r = make_report(sqlite_db.url, guarantee=guarantee)
    counts = {row["group"]: row["counties"] for row in r.table("guarantee_groups").rows}
    assert counts == {"100%": 20, "50% to <100%": 22, "under 50%": 68, "0%": 7, "total": 117}
    cmp = {row["key"]: row for row in r.table("comparison").rows}
    assert all(cmp[f"guarantee_counties_{s}"]["deviation"] == 0
               for s in ("100", "50_to_100", "under_50", "0"))


def test_province_per_form_rows_say_why_they_cannot_both_hold():
    import tomllib
    from pathlib import Path

    import civicvoucher
    from civicvoucher.analytics.published import comparisons

    path = Path(civicvoucher.__file__).parent / "scenarios/data/shanxi-2020.toml"
    published = tomllib.loads(path.read_text(encoding="utf-8"))["published"]
    notes = {key: note for key, _, note in comparisons(published)}
    assert "2.78亿" in notes["issued_digital_fen_province"]
    assert "2.7亿" in notes["issued_paper_fen_province"]
    assert notes["issued_digital_fen_city"] == ""
