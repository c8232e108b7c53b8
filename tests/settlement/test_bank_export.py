"""Merchant bank details and the bank's payout file.

The account number is sealed at rest (the clear number is nowhere in the database: not in
the merchant row, not in the audit log, not in the SQLite file's bytes), masked for display,
bound to its merchant (a sealed value copied to another merchant does not open). Imports take
the optional columns (and files without them import as before). The payout file is the same
function from the CLI (``settlement export RUN --out``) as from the console: XLSX read back
with openpyxl, CSV parsed; a payable merchant without bank details refuses the file.
Migration 0011 goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from alembic import command
from openpyxl import load_workbook
from sqlalchemy import inspect, select, text

from civicvoucher.core.sealed import SealedSecretError
from civicvoucher.db import keyring_of
from civicvoucher.errors import Conflict
from civicvoucher.keys import bind_sealing
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import (
    MerchantRow,
    category_for_mcc,
    validate_merchant_row,
)
from civicvoucher.merchants.service import add_merchants, register_merchant, set_bank_details
from civicvoucher.schema import alembic_config, current, upgrade
from civicvoucher.settlement import export as bank
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import redeem
from tests.world import SECRET, T0, build_world, fund, make_uscc, run_cli

ACCOUNT = "6217000010012345678"


def _row(n: int, **bank) -> MerchantRow:
    return MerchantRow(uscc=make_uscc(n), name=f"店{n}", mcc="5812",
                       category=category_for_mcc("5812"), county_code="140105",
                       channels=validate_merchant_row(1, {
                           "uscc": make_uscc(n), "name": "x", "mcc": "5812",
                           "county_code": "140105", "channels": "线下"}).channels,
                       status="active", **bank)


@pytest.fixture
def world(db):
    bind_sealing(db, SECRET)
    return build_world(db)


def test_the_number_is_sealed_at_rest_and_masked(world, db):
    with db.session() as s:
        m = register_merchant(s, _row(801, payee_name="店801有限公司", bank_name="建设银行",
                                      account_no=ACCOUNT))
        mid = m.id
    with db.engine.connect() as c:
        row = c.execute(text("SELECT * FROM merchant WHERE id = :i"), {"i": mid}).mappings().one()
        assert ACCOUNT not in " ".join(str(v) for v in row.values())
        assert row["account_masked"] == "6217****5678"
        assert row["account_sealed"].startswith("cv1:")
        dumped = " ".join(str(v) for r in c.execute(text("SELECT * FROM audit_entry")) for v in r)
        assert ACCOUNT not in dumped
    if db.dialect == "sqlite":
        db.dispose()
        raw = Path(db.engine.url.database).read_bytes()
        assert ACCOUNT.encode() not in raw
    with db.session() as s:
        m = s.get(Merchant, mid)
        assert m.open_account(keyring_of(s)) == ACCOUNT
        other = register_merchant(s, _row(802))
        other.account_sealed = m.account_sealed  # copied to another merchant: does not open
        with pytest.raises(SealedSecretError):
            other.open_account(keyring_of(s))
        s.rollback()


def test_rows_take_optional_bank_columns(world):
    base = {"uscc": make_uscc(803), "name": "店", "mcc": "5812", "county_code": "140105",
            "channels": "线下"}
    assert not validate_merchant_row(1, base).has_bank  # a file without them: as before
    r = validate_merchant_row(1, {**base, "payee_name": "某店", "bank_name": "工行",
                                  "account_no": "6217-0000 1001 2345 678"})
    assert r.account_no == ACCOUNT
    errors = validate_merchant_row(1, {**base, "payee_name": "某店", "account_no": "12"})
    assert {e.field for e in errors} == {"bank_name", "account_no"}


def _settled_run(world, db, *, with_bank=True) -> int:
    mid = world.merchants["超市"]
    fund(world, world.union_a, 10_000, key="fund-a")
    with db.session() as s:
        issue(s, union_id=world.union_a, program=world.program, idem_key="issue-a", now=T0)
    with db.session() as s:
        codes = s.execute(select(Voucher.code).order_by(Voucher.id).limit(2)).scalars().all()
    assert len(codes) == 2
    with db.session() as s:
        for i, code in enumerate(codes):
            redeem(s, code=code, merchant_id=mid, order_amount_fen=30000, idem_key=f"r{i}",
                   now=T0)
    with db.session() as s:
        if with_bank:
            set_bank_details(s, merchant_id=mid, payee_name="超市有限公司", bank_name="工商银行",
                             account_no=ACCOUNT)
        return settle(s, cutoff=T0, idem_key="run-1").run.id


def test_export_refuses_a_payee_without_details(world, db):
    run_id = _settled_run(world, db, with_bank=False)
    with db.session() as s, pytest.raises(Conflict) as e:
        bank.payout_file(s, run_id)
    assert e.value.code == "bank_details_missing"


def test_cli_export_xlsx_and_csv(world, db, monkeypatch, tmp_path):
    run_id = _settled_run(world, db)
    with db.session() as s:
        expected = bank.payout_file(s, run_id)
    assert len(expected.lines) == 1 and expected.total_fen > 0
    out = tmp_path / "pay.xlsx"
    r = run_cli(db, monkeypatch, "settlement", "export", run_id, "--out", out)
    assert r.exit_code == 0, r.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    ws = load_workbook(out).active
    assert ws.freeze_panes == "A3" and str(run_id) in ws["A1"].value
    assert ws.cell(3, 4).value == ACCOUNT and ws.cell(3, 4).number_format == "@"
    assert ws.cell(3, 5).value * 100 == expected.total_fen
    assert ws.cell(4, 1).value == "合计" and ws.cell(4, 5).value * 100 == expected.total_fen
    assert ws.cell(3, 9).value == f"CVS{run_id}-B{expected.lines[0].batch_id}"
    out_csv = tmp_path / "pay.csv"
    assert run_cli(db, monkeypatch, "settlement", "export", run_id, "--out", out_csv
                   ).exit_code == 0
    data = out_csv.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [{"序号": "1", "收款户名": "超市有限公司", "开户行": "工商银行",
                     "银行账号": ACCOUNT, "金额（元）": f"{expected.total_fen / 100:.2f}",
                     "结算批次": str(expected.lines[0].batch_id), "商户名称": "超市",
                     "统一社会信用代码": expected.lines[0].uscc,
                     "附言": expected.lines[0].reference}]
    with db.engine.connect() as c:
        details = c.execute(text("SELECT detail FROM audit_entry WHERE action = "
                                 "'settlement.bank_export'")).scalars().all()
    assert len(details) == 2 and all(ACCOUNT not in str(d) for d in details)
    bad = run_cli(db, monkeypatch, "settlement", "export", run_id, "--out", tmp_path / "x.txt")
    assert bad.exit_code != 0


def test_a_file_import_seals_too(world, db, monkeypatch, tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("统一社会信用代码,商户名称,商户类别码,区县代码,渠道,收款户名,开户行,银行账号\n"
                 f"{make_uscc(805)},导入店,5411,140105,线下,导入店有限公司,农行,{ACCOUNT}\n",
                 encoding="utf-8")
    r = run_cli(db, monkeypatch, "merchant", "import", f)
    assert r.exit_code == 0, r.output
    with db.session() as s:
        m = s.execute(select(Merchant).where(Merchant.uscc == make_uscc(805))).scalar_one()
        assert m.account_masked == "6217****5678" and ACCOUNT not in m.account_sealed
        assert m.open_account(keyring_of(s)) == ACCOUNT and m.registered_by is None


def _columns(db) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("merchant")}


def test_0011_upgrades_and_downgrades(blank_db):
    db = blank_db
    upgrade(db.engine, "0010")
    assert "account_sealed" not in _columns(db)
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO merchant (uscc, name, mcc, category, county_code, channels,"
                       " status, created_at) VALUES (:u, '旧店', '5411', 'supermarket_fuel',"
                       " '140105', 'offline', 'active', '2026-01-01 00:00:00')"),
                  {"u": make_uscc(806)})
    upgrade(db.engine, "0011")
    assert current(db.engine) == "0011"
    assert {"payee_name", "bank_name", "account_sealed", "account_masked",
            "registered_by"} <= _columns(db)
    with db.engine.connect() as c:
        assert c.execute(text("SELECT name, account_sealed FROM merchant")).one() == ("旧店", None)
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    assert current(db.engine) == "0010" and "account_sealed" not in _columns(db)
    with db.engine.connect() as c:
        assert c.execute(text("SELECT name FROM merchant")).scalar() == "旧店"
    upgrade(db.engine)
    assert "account_sealed" in _columns(db)


def test_add_merchants_without_bank_needs_no_keyring(world, db):
    """A bulk import of rows without bank details seals nothing (as before 0011)."""
    with db.session() as s:
        assert add_merchants(s, [(1, _row(807)), (2, _row(808))]) == 2
