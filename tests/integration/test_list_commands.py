"""List commands: program, merchant, redemption and settlement lists show ids and names, page,
and export every row to CSV/XLSX (money as yuan, times local), each export audited."""

from __future__ import annotations

import csv

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.core import clock
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import redeem
from tests.world import T0, build_world, fund, run_cli


@pytest.fixture
def world(db, monkeypatch):
    from civicvoucher.cli import common

    monkeypatch.setattr(clock, "_now", lambda: T0)
    monkeypatch.setattr(common.console, "_width", 220)  # rows on one line each
    w = build_world(db)
    for union in (w.union_a, w.union_c):
        fund(w, union, 10_000)
        with db.session() as s:
            issue(s, union_id=union, program=w.program, idem_key=f"i-{union}", now=T0)
    with db.session() as s:
        codes = {u: s.execute(select(Voucher.code).where(Voucher.union_id == u)
                              .order_by(Voucher.id)).scalars().all()
                 for u in (w.union_a, w.union_c)}
    with db.session() as s:  # A spends at the supermarket, C at the restaurant
        redeem(s, code=codes[w.union_a][0], merchant_id=w.merchants["超市"],
               order_amount_fen=35_000, channel="offline", idem_key="r1", now=T0)
        redeem(s, code=codes[w.union_c][0], merchant_id=w.merchants["饭店"],
               order_amount_fen=30_000, channel="offline", idem_key="r2", now=T0)
    with db.session() as s:
        settle(s, cutoff=T0, idem_key="s1")
    return w


def _rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines()
            if line.startswith("│")]


def _exports(db) -> dict[str, int]:
    with db.session() as s:
        out: dict[str, int] = {}
        for a, actor in s.execute(select(AuditEntry.action, AuditEntry.actor)):
            if a.endswith(".export"):
                assert actor.startswith("cli:")
                out[a] = out.get(a, 0) + 1
        return out


def test_program_list(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "program", "list")
    assert r.exit_code == 0, r.output
    [row] = _rows(r.output)
    assert row[1] == world.program and row[3] == "¥300.00"
    assert row[5:7] == ["2020-04-26", "2020-07-10"]
    assert row[7] == "5" and row[8] == "¥1,500.00"  # 3 in A + 2 in C
    out = tmp_path / "programs.xlsx"
    r = run_cli(db, monkeypatch, "program", "list", "--export", out)
    assert r.exit_code == 0, r.output
    ws = load_workbook(out).worksheets[0]
    assert ws["A2"].value == "编号" and ws["A3"].value == "id"
    assert ws["D4"].value == 300 and ws["D4"].number_format == '"¥"#,##0.00'
    assert _exports(db) == {"program.export": 1}


def test_merchant_list_shows_ids_and_filters(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "merchant", "list")
    assert r.exit_code == 0, r.output
    shown = {row[2]: int(row[0]) for row in _rows(r.output)}
    assert shown == world.merchants
    r = run_cli(db, monkeypatch, "merchant", "list", "--status", "暂停")
    assert [row[2] for row in _rows(r.output)] == ["药店"]
    r = run_cli(db, monkeypatch, "merchant", "list", "--county", "140106",
                "--category", "宾馆餐娱")
    assert [row[2] for row in _rows(r.output)] == ["饭店"]
    r = run_cli(db, monkeypatch, "merchant", "list", "--limit", "2")
    assert f"--after {sorted(world.merchants.values())[1]}" in r.output
    out = tmp_path / "m.csv"
    r = run_cli(db, monkeypatch, "merchant", "list", "--export", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(out.read_text("utf-8-sig").splitlines()))
    assert rows[0][:3] == ["编号", "统一社会信用代码", "商户"] and rows[1][0] == "id"
    assert {r[2]: int(r[0]) for r in rows[2:]} == world.merchants
    assert _exports(db) == {"merchant.export": 1}


def test_redemption_list_names_the_merchant_and_the_union(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "redemption", "list")
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert [(row[3], row[4]) for row in rows] == [("超市", "union A"), ("饭店", "union C")]
    assert rows[0][1] == "2020-05-01 18:00 +08:00"  # T0 (10:00 UTC) in Beijing
    assert rows[0][7:9] == ["¥350.00", "¥300.00"] and rows[0][9] == "posted"
    r = run_cli(db, monkeypatch, "redemption", "list", "--org", "140105")  # 小店区: A only
    assert [row[4] for row in _rows(r.output)] == ["union A"]
    r = run_cli(db, monkeypatch, "redemption", "list", "--merchant", world.merchants["饭店"])
    assert [row[3] for row in _rows(r.output)] == ["饭店"]
    out = tmp_path / "r.xlsx"
    r = run_cli(db, monkeypatch, "redemption", "list", "--export", out)
    assert r.exit_code == 0, r.output
    ws = load_workbook(out).worksheets[0]
    assert [ws.cell(row=n, column=4).value for n in (4, 5)] == ["超市", "饭店"]
    assert ws.cell(row=4, column=2).value.hour == 18  # local time
    assert _exports(db) == {"redemption.export": 1}


def test_settlement_list_names_the_merchant(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "settlement", "list")
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert {(int(row[3]), row[4]) for row in rows} == {
        (world.merchants["超市"], "超市"), (world.merchants["饭店"], "饭店")}
    assert {row[7] for row in rows} == {"¥300.00"} and {row[9] for row in rows} == {"¥300.00"}
    out = tmp_path / "s.csv"
    r = run_cli(db, monkeypatch, "settlement", "list", "--export", out,
                "--merchant", world.merchants["超市"])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(out.read_text("utf-8-sig").splitlines()))
    assert [r[4] for r in rows[2:]] == ["超市"] and rows[2][7] == "¥300.00"
    assert _exports(db) == {"settlement.export": 1}
