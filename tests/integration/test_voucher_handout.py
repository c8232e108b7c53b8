"""Vouchers a union can hand out: ``voucher list`` and ``voucher export`` through the CLI.

The world: 小店区 (140105) holds union A (paper vouchers) and union B (digital), 迎泽区 union C
(digital). An export of 小店区 holds exactly A's and B's vouchers, a sheet each; no clear ID
number and no digital voucher's code anywhere in the file's bytes; money in yuan with a yuan
number format; validity as local dates; every export and list audited with the operator.
"""

from __future__ import annotations

import csv
import zipfile
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.core import clock
from civicvoucher.core.ids import format_code
from civicvoucher.members.models import Member
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.listing import mask_name, validity_days
from civicvoucher.vouchers.models import Voucher
from tests.world import T0, build_world, fund, make_id, run_cli

MEMBERS = (3, 2, 2)
CLEAR_IDS = [make_id(n) for n in range(1, sum(MEMBERS) + 1)]


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr(clock, "_now", lambda: T0)  # the world's program runs in 2020
    w = build_world(db, members=MEMBERS)
    for union, form in ((w.union_a, "paper"), (w.union_b, "digital"), (w.union_c, "digital")):
        fund(w, union, 10_000)
        with db.session() as s:
            issue(s, union_id=union, program=w.program, idem_key=f"i-{union}", form=form, now=T0)
    return w


def _vouchers(db, union_id: int) -> list[Voucher]:
    with db.session() as s:
        return list(s.execute(select(Voucher).where(Voucher.union_id == union_id)
                              .order_by(Voucher.id)).scalars())


def _audit(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


def _xlsx_text(path) -> bytes:
    """Every part of the workbook, unzipped: what a search of the file really finds."""
    with zipfile.ZipFile(path) as z:
        return b"".join(z.read(n) for n in z.namelist())


def test_xlsx_export_of_a_county_has_a_sheet_per_union_and_nothing_else(world, db, monkeypatch,
                                                                        tmp_path):
    out = tmp_path / "xiaodian.xlsx"
    r = run_cli(db, monkeypatch, "voucher", "export", out, "--org", "140105",
                "--program", world.program)
    assert r.exit_code == 0, r.output
    wb = load_workbook(out)
    assert wb.sheetnames == ["汇总", "union A", "union B"]  # not union C (迎泽区)
    a, b, c = (_vouchers(db, u) for u in (world.union_a, world.union_b, world.union_c))
    for name, vouchers in (("union A", a), ("union B", b)):
        sheet = wb[name]
        assert name in sheet["A1"].value and "exported 2020-05-01 18:00 +08:00" in sheet["A1"].value
        assert [c.value for c in sheet[2]][:3] == ["券编号", "会员编号", "会员"]
        assert [c.value for c in sheet[3]][:3] == ["voucher id", "member id", "member"]
        assert sheet.freeze_panes == "A4"
        ids = [row[0].value for row in sheet.iter_rows(min_row=4)]
        assert sorted(ids) == [v.id for v in vouchers]
    assert not {v.id for v in c} & {row[0].value for row in wb["union A"].iter_rows(min_row=4)}
    head = [c.value for c in wb["union A"][3]]
    row = {h: cell for h, cell in zip(head, wb["union A"][4], strict=True)}
    first = a[0]
    assert row["value"].value == 300 and row["value"].data_type == "n"  # yuan, a number
    assert row["value"].number_format == '"¥"#,##0.00'
    assert row["threshold"].number_format == '"¥"#,##0.00'
    assert row["valid from"].value.date() == date(2020, 4, 26)  # local, not the UTC 04-25
    assert row["valid through"].value.date() == date(2020, 7, 10)  # the last local day
    assert row["valid from"].number_format == "yyyy-mm-dd"
    assert row["code (paper vouchers only)"].value == format_code(first.code)  # A is paper
    assert row["categories"].value.startswith("日用百货、粮油果蔬")
    assert row["channels"].value == "线下"
    assert row["region"].value == "山西省"
    assert row["status"].value == "issued" and row["form"].value == "paper"
    assert row["hand-out claim (opens in the member app; cannot pay)"].value.startswith("cvh1.")
    summary = {r[1].value: (r[3].value, r[4].value) for r in wb["汇总"].iter_rows(min_row=4)}
    assert summary == {"union A": (3, 900), "union B": (2, 600)}

    text = _xlsx_text(out)
    for clear in CLEAR_IDS:
        assert clear.encode() not in text
    for v in b:  # digital: the code never leaves the system
        assert v.code.encode() not in text and format_code(v.code).encode() not in text
    with db.session() as s:
        names = [m.name for m in s.execute(select(Member).where(
            Member.union_id.in_([world.union_a, world.union_b]))).scalars()]
        masked = {m.id_masked for m in s.execute(select(Member)).scalars()}
    for name in names:
        assert name.encode() not in text  # only 成*1 style
        assert mask_name(name).encode() in text
    assert any(m.encode() in text for m in masked)
    entries = _audit(db, "voucher.export")
    assert len(entries) == 1 and entries[0].actor.startswith("cli:")
    assert entries[0].detail["vouchers"] == 5 and entries[0].detail["unions"] == 2


def test_csv_export_of_one_union_is_one_file_with_people_formatted_values(world, db,
                                                                           monkeypatch, tmp_path):
    out = tmp_path / "a.csv"
    r = run_cli(db, monkeypatch, "voucher", "export", out, "--org", world.union_uscc["A"])
    assert r.exit_code == 0, r.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese
    for clear in CLEAR_IDS:
        assert clear.encode() not in raw
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    zh, en, *data = rows
    assert zh[0] == "券编号" and en[0] == "voucher id"
    col = {name: i for i, name in enumerate(en)}
    a = _vouchers(db, world.union_a)
    assert sorted(int(r[0]) for r in data) == [v.id for v in a]
    assert {r[col["value"]] for r in data} == {"¥300.00"}
    assert {r[col["valid from"]] for r in data} == {"2020-04-26"}
    assert {r[col["valid through"]] for r in data} == {"2020-07-10"}
    assert {r[col["code (paper vouchers only)"]] for r in data} == {format_code(v.code) for v in a}
    assert all("*" in r[col["ID number (masked)"]] for r in data)
    assert not list(tmp_path.glob("a-*.csv"))  # one union: one file


def test_csv_export_of_several_unions_writes_a_file_per_union(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "voucher", "export", tmp_path / "all.csv")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in tmp_path.glob("all-*.csv"))
    assert names == ["all-union_A.csv", "all-union_B.csv", "all-union_C.csv", "all-汇总.csv"]
    c = _vouchers(db, world.union_c)
    rows = list(csv.reader((tmp_path / "all-union_C.csv").read_text("utf-8-sig").splitlines()))
    assert sorted(int(r[0]) for r in rows[2:]) == [v.id for v in c]


def test_export_with_nothing_to_export_writes_no_file(world, db, monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "voucher", "export", tmp_path / "x.xlsx", "--org", "140105",
                "--status", "已使用")
    assert r.exit_code == 1 and not (tmp_path / "x.xlsx").exists()
    assert _audit(db, "voucher.export") == []


def test_voucher_list_is_scoped_paged_and_audited(world, db, monkeypatch):
    from civicvoucher.cli import common

    monkeypatch.setattr(common.console, "_width", 200)  # a wide terminal: rows on one line
    a, c = _vouchers(db, world.union_a), _vouchers(db, world.union_c)
    r = run_cli(db, monkeypatch, "voucher", "list", "--org", world.union_uscc["A"])
    assert r.exit_code == 0, r.output
    assert "3 vouchers" in r.output and "成*1" in r.output and "成员1" not in r.output
    assert "¥300.00" in r.output and "2020-07-10" in r.output
    lines = r.output.splitlines()
    shown = {int(x.split("│")[1]) for x in lines if x.startswith("│") and x.split("│")[1].strip().isdigit()}
    assert shown == {v.id for v in a} and not shown & {v.id for v in c}
    r = run_cli(db, monkeypatch, "voucher", "list", "--limit", "2")
    assert r.exit_code == 0, r.output
    assert f"--after {sorted(v.id for v in _all(db))[1]}" in r.output
    r = run_cli(db, monkeypatch, "voucher", "list", "--member", CLEAR_IDS[0])
    assert r.exit_code == 0, r.output
    assert "1 voucher" in r.output
    r = run_cli(db, monkeypatch, "voucher", "list", "--status", "bogus")
    assert r.exit_code != 0
    entries = _audit(db, "voucher.list")
    assert len(entries) == 3 and all(e.actor.startswith("cli:") for e in entries)
    assert entries[0].detail["total"] == 3


def _all(db) -> list[Voucher]:
    with db.session() as s:
        return list(s.execute(select(Voucher)).scalars())


def test_validity_is_read_in_local_days():
    from datetime import datetime

    # 2020-04-26 00:00 Beijing = 04-25 16:00 UTC; the exclusive 07-11 00:00 Beijing = 07-10 16:00Z
    assert validity_days(datetime(2020, 4, 25, 16), datetime(2020, 7, 10, 16)) == (
        date(2020, 4, 26), date(2020, 7, 10))
    # a deadline at 18:00 local is kept as that wall time
    assert validity_days(datetime(2020, 4, 25, 16), datetime(2020, 7, 10, 10)) == (
        date(2020, 4, 26), datetime(2020, 7, 10, 18))


def test_names_are_masked_as_people_expect():
    assert [mask_name(n) for n in ("张", "张三", "张小三", "欧阳小锋")] == [
        "*", "张*", "张*三", "欧**锋"]


def test_an_export_to_an_unknown_file_type_is_refused_before_it_is_audited(world, db,
                                                                           monkeypatch, tmp_path):
    r = run_cli(db, monkeypatch, "voucher", "export", tmp_path / "codes.txt")
    assert r.exit_code != 0 and ".xlsx" in str(r.exception)  # main.run() prints it, exit 2
    assert _audit(db, "voucher.export") == [] and not (tmp_path / "codes.txt").exists()
