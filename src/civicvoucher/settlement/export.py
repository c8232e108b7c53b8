"""The payout file for the bank: one settlement run's payouts, one line per merchant batch.

Each line names the payee as the bank pays it (收款户名, 开户行, the full account number),
the amount in yuan (what the merchant is paid: the batch's gross less what was kept back for
refunds), the batch id and a reference for the transfer's remark (``CVS<run>-B<batch>``).
Batches with nothing to pay (a payout wholly kept back) are left out of the file. The account
numbers are opened from their sealed form (``merchants.models``): the caller audits that as
what it is (``settlement.bank_export``), and only the roles its rule names may ask.

A run with a payable batch whose merchant has no bank details is refused
(``bank_details_missing``, every such merchant named): a bank file with holes would pay some
merchants and silently not others. Give the merchant its details first.

Two forms of the same lines: ``to_xlsx`` (a workbook people read and forward: a title row
with the run and its cut-off, Chinese headers, yuan as numbers with a number format, the
header frozen, a totals row) and ``to_csv`` (UTF-8 with a BOM so Excel reads the Chinese,
amounts as plain ``1234.56``, no title or totals: a file for a bank's import).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.core.money import FEN_PER_YUAN
from civicvoucher.db import keyring_of
from civicvoucher.errors import Conflict, NotFound
from civicvoucher.i18n import msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.settlement.models import SettlementBatch, SettlementRun

FORMATS = ("xlsx", "csv")
HEADERS = ("序号", "收款户名", "开户行", "银行账号", "金额（元）", "结算批次", "商户名称",
           "统一社会信用代码", "附言")
YUAN_FORMAT = "#,##0.00"


@dataclass(frozen=True)
class PayoutLine:
    batch_id: int
    merchant_id: int
    merchant_name: str
    uscc: str
    payee_name: str
    bank_name: str
    account_no: str  # in clear: only in the file being made
    payout_fen: int
    reference: str


@dataclass(frozen=True)
class RunExport:
    run_id: int
    cutoff: datetime
    lines: tuple[PayoutLine, ...]

    @property
    def total_fen(self) -> int:
        return sum(x.payout_fen for x in self.lines)


def reference(run_id: int, batch_id: int) -> str:
    """The transfer's remark: short, ASCII, unique per batch."""
    return f"CVS{run_id}-B{batch_id}"


def get_run(session: Session, run_id: int) -> SettlementRun:
    run = session.get(SettlementRun, run_id)
    if run is None:
        raise NotFound(msg("no settlement run {id}", id=run_id), code="settlement_run_not_found")
    return run


def payout_file(session: Session, run_id: int, where=None) -> RunExport:
    """The run's payable lines with the account numbers opened (the caller audits it).
    ``where``: a condition on ``Merchant`` limiting the file to the caller's merchants (the
    API and the console pass ``scope.merchant_condition``; the command line, none)."""
    run = get_run(session, run_id)
    q = (select(SettlementBatch, Merchant)
         .join(Merchant, Merchant.id == SettlementBatch.merchant_id)
         .where(SettlementBatch.run_id == run_id,
                SettlementBatch.amount_fen > SettlementBatch.recovered_fen))
    if where is not None:
        q = q.where(where)
    rows = session.execute(q.order_by(SettlementBatch.id)).all()
    missing = [m for _, m in rows if not m.has_bank]
    if missing:
        names = "、".join(f"{m.name} ({m.id})" for m in missing[:10])
        raise Conflict(msg("settlement run {run}: {n} merchants have no bank details ({names});"
                           " give them their details, then export again", run=run_id,
                           n=len(missing), names=names),
                       code="bank_details_missing", merchant_ids=[m.id for m in missing])
    ring = keyring_of(session) if rows else None
    lines = tuple(PayoutLine(
        batch_id=b.id, merchant_id=m.id, merchant_name=m.name, uscc=m.uscc,
        payee_name=m.payee_name or "", bank_name=m.bank_name or "",
        account_no=m.open_account(ring) or "", payout_fen=b.amount_fen - b.recovered_fen,
        reference=reference(run_id, b.id)) for b, m in rows)
    return RunExport(run_id=run.id, cutoff=run.cutoff, lines=lines)


def _yuan(fen: int) -> Decimal:
    return Decimal(fen) / FEN_PER_YUAN


def _row(n: int, x: PayoutLine) -> list:
    return [n, x.payee_name, x.bank_name, x.account_no, _yuan(x.payout_fen), x.batch_id,
            x.merchant_name, x.uscc, x.reference]


def title(export: RunExport) -> str:
    return (f"结算付款清单 · 结算 {export.run_id} · 截止 {clock.format_local(export.cutoff)}"
            f" · {len(export.lines)} 笔")


def to_xlsx(export: RunExport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = f"结算{export.run_id}"[:31]
    ws.append([title(export)])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(list(HEADERS))
    head = PatternFill("solid", fgColor="DDE7F3")
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = head
        cell.alignment = Alignment(horizontal="center", vertical="center")
    for n, x in enumerate(export.lines, 1):
        ws.append(_row(n, x))
        r = ws.max_row
        ws.cell(r, 4).number_format = "@"  # the account number stays text: all its digits
        ws.cell(r, 5).number_format = YUAN_FORMAT
        ws.cell(r, 8).number_format = "@"
    ws.append(["合计", f"{len(export.lines)} 笔", None, None, _yuan(export.total_fen)])
    total = ws.max_row
    for cell in ws[total]:
        cell.font = Font(bold=True)
    ws.cell(total, 5).number_format = YUAN_FORMAT
    ws.freeze_panes = "A3"
    for i, width in enumerate((6, 28, 30, 26, 16, 10, 28, 22, 16), 1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.print_title_rows = "1:2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def to_csv(export: RunExport) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADERS)
    for n, x in enumerate(export.lines, 1):
        row = _row(n, x)
        row[4] = f"{row[4]:.2f}"
        w.writerow(row)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def render(export: RunExport, fmt: str) -> bytes:
    return to_xlsx(export) if fmt == "xlsx" else to_csv(export)


def filename(run_id: int, fmt: str) -> str:
    return f"settlement-run-{run_id}-bank.{fmt}"


def audit_detail(export: RunExport, fmt: str) -> dict:
    """What the audit entry of an export says (never an account number)."""
    return {"run": export.run_id, "format": fmt, "lines": len(export.lines),
            "total_fen": export.total_fen,
            "merchants": [x.merchant_id for x in export.lines][:200]}
