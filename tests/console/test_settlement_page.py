"""Settlement in the console: the runs list (province admin, auditor), a run from the page
(cut-off read as the CLI reads it, once per attempt key, audited), a run's batches, a batch's
redemptions and totals, and the bank's payout file (province admin only; refused while a
payee has no bank details; XLSX and CSV read back; the download audited, never a number in
the audit log)."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.merchants.service import set_bank_details
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.vouchers.redemption import redeem
from tests.world import T0

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
ACCOUNT = "6222021234567890123"


def _in(console, role):
    console.client.cookies.clear()
    assert console.login(role).status_code == 303
    return console


def _spend(console, n=2):
    aw = console.aw
    with aw.db.session() as s:
        for i in range(n):
            redeem(s, code=aw.codes_in[i], merchant_id=aw.merchant_in, order_amount_fen=30000,
                   idem_key=f"spend-{i}", now=T0)


def _run(console, cutoff="", key=None):
    page = console.client.get("/settlement").text
    data = {"csrf_token": CSRF.findall(page)[-1],
            "idempotency_key": key or KEY.search(page).group(1), "cutoff": cutoff}
    return console.client.post("/settlement/run", data=data)


def _audits(db, action):
    with db.session() as s:
        return s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars().all()


def test_run_from_the_page_once_per_key(console, db):
    _spend(console)
    _in(console, Role.PROVINCE_ADMIN)
    r1 = _run(console, key="settle-once")
    r2 = _run(console, key="settle-once")
    assert r1.status_code == r2.status_code == 303, r1.text[:400]
    assert r1.headers["location"] == r2.headers["location"]
    with db.session() as s:
        runs = s.execute(select(SettlementRun)).scalars().all()
        (batch,) = s.execute(select(SettlementBatch)).scalars().all()
    assert len(runs) == 1 and runs[0].redemptions == 2
    assert len(_audits(db, "settlement.run")) == 1
    page = console.client.get(r1.headers["location"])
    assert page.status_code == 200 and 'id="run-done"' in page.text
    assert f'href="/settlement/batches/{batch.id}"' in page.text
    assert "无银行信息" in page.text  # the world's merchants have none yet
    listing = console.client.get("/settlement").text
    assert f'href="/settlement/runs/{runs[0].id}"' in listing
    b = console.client.get(f"/settlement/batches/{batch.id}")
    assert b.status_code == 200, b.text[-1500:]
    assert b.text.count("<tr>") == 4  # the header, two redemptions, the totals
    assert f'id="batch-total">{_yuan(batch.amount_fen)}' in b.text


def _yuan(fen):
    from civicvoucher.core.money import format_yuan

    return format_yuan(fen)


def test_cutoff_in_the_future_and_bad_dates_are_named(console, db):
    _in(console, Role.PROVINCE_ADMIN)
    r = _run(console, cutoff="2020-05-02")
    assert r.status_code == 422 and "cutoff_in_future" in r.text
    r = _run(console, cutoff="tomorrow-ish")
    assert r.status_code == 422 and 'id="run-error"' in r.text
    with db.session() as s:
        assert s.execute(select(SettlementRun)).first() is None
    # a bare date means through the end of that local day
    assert _run(console, cutoff="2020-04-30").status_code == 303
    with db.session() as s:
        run = s.execute(select(SettlementRun)).scalar_one()
    from civicvoucher.core import clock
    assert clock.format_local(run.cutoff).startswith("2020-05-01 00:00")


def test_bank_file_refused_without_details_then_xlsx_and_csv(console, db):
    _spend(console, 3)
    _in(console, Role.PROVINCE_ADMIN)
    loc = _run(console).headers["location"]
    run_id = int(loc.split("/")[3].split("?")[0])
    r = console.client.get(f"/settlement/runs/{run_id}/bank.xlsx")
    assert r.status_code == 409 and "bank_details_missing" in r.text
    with db.session() as s:
        set_bank_details(s, merchant_id=console.aw.merchant_in, payee_name="太原示例超市有限公司",
                         bank_name="中国工商银行太原小店支行", account_no=ACCOUNT)
    with db.session() as s:
        batch = s.execute(select(SettlementBatch)).scalar_one()
    r = console.client.get(f"/settlement/runs/{run_id}/bank.xlsx")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-disposition"].endswith(f'settlement-run-{run_id}-bank.xlsx"')
    ws = load_workbook(io.BytesIO(r.content)).active
    assert f"结算 {run_id}" in ws["A1"].value and "截止" in ws["A1"].value
    assert [c.value for c in ws[2]][:5] == ["序号", "收款户名", "开户行", "银行账号", "金额（元）"]
    assert ws.freeze_panes == "A3"
    row = [c.value for c in ws[3]]
    assert row[1:4] == ["太原示例超市有限公司", "中国工商银行太原小店支行", ACCOUNT]
    assert float(row[4]) * 100 == batch.amount_fen - batch.recovered_fen
    assert ws.cell(3, 5).number_format == "#,##0.00" and row[5] == batch.id
    assert ws.cell(4, 1).value == "合计"
    r = console.client.get(f"/settlement/runs/{run_id}/bank.csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][3] == "银行账号" and rows[1][3] == ACCOUNT and len(rows) == 2
    assert rows[1][4] == f"{(batch.amount_fen - batch.recovered_fen) / 100:.2f}"
    entries = _audits(db, "settlement.bank_export")
    assert [e.detail["format"] for e in entries] == ["xlsx", "csv"]
    assert all(ACCOUNT not in str(e.detail) for e in entries)


def test_who_may_see_and_export(console, db):
    _spend(console, 1)
    _in(console, Role.PROVINCE_ADMIN)
    loc = _run(console).headers["location"]
    run_id = int(loc.split("/")[3].split("?")[0])
    _in(console, Role.AUDITOR)
    r = console.client.get("/settlement")
    assert r.status_code == 200 and 'action="/settlement/run"' not in r.text
    page = console.client.get(f"/settlement/runs/{run_id}")
    assert page.status_code == 200 and "bank.xlsx" not in page.text
    assert console.client.get(f"/settlement/runs/{run_id}/bank.csv").status_code == 403
    for role in (Role.COUNTY_ADMIN, Role.MERCHANT_ADMIN):
        _in(console, role)
        assert console.client.get("/settlement").status_code == 403
        assert console.client.get(f"/settlement/runs/{run_id}/bank.xlsx").status_code == 403
    assert console.client.get("/settlement/runs/999").status_code in (403, 404)
