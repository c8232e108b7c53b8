"""program list / redemption list / settlement list: what exists, with ids and names.

Each shows one page on screen (``--limit``, ``--after``) or, with ``--export FILE``, writes
every matching row to CSV/XLSX through the one table helper (``cli/tables.py``); an export is
audited with the operator (a file leaves the system). ``merchant list`` lives with the
merchant registry (``cli/registry.py``), ``voucher list`` with the vouchers (``cli/vouchers.py``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from civicvoucher import i18n
from civicvoucher.cli.common import database, parse_when
from civicvoucher.cli.tables import AFTER, EXPORT, LIMIT, Column, Row, named, page_or_export
from civicvoucher.i18n import _, localize, msg

redemption_app = typer.Typer(help="Redemptions: what was spent where.", no_args_is_help=True)
settlement_app = typer.Typer(help="Settlement: payout batches per merchant.",
                             no_args_is_help=True)

# --- programs --------------------------------------------------------------------------------

PROGRAM_COLUMNS = (
    Column("编号", "id", "id"), Column("活动代码", "key"), Column("名称", "name", width=30),
    Column("每人", "per member", "fen"), Column("券种", "products", width=40),
    Column("有效期起", "valid from", "day"), Column("有效期至", "valid through", "day"),
    Column("已发券数", "vouchers issued", "count"), Column("已发金额", "amount issued", "fen"),
    Column("创建时间", "created", "instant"),
)


def _program_rows(s, after: int | None, limit: int) -> list[tuple]:
    from sqlalchemy import func, select

    from civicvoucher.core.money import format_yuan
    from civicvoucher.programs.models import Product, Program
    from civicvoucher.vouchers.listing import validity_days
    from civicvoucher.vouchers.models import Issuance

    q = select(Program).order_by(Program.id).limit(limit)
    programs = list(s.execute(q.where(Program.id > after) if after is not None else q).scalars())
    ids = [p.id for p in programs]
    products: dict[int, list] = {i: [] for i in ids}
    for prod in s.execute(select(Product).where(Product.program_id.in_(ids))
                          .order_by(Product.id)).scalars():
        products[prod.program_id].append(prod)
    issued = {pid: (n or 0, amount or 0) for pid, n, amount in s.execute(
        select(Issuance.program_id, func.sum(Issuance.vouchers_issued),
               func.sum(Issuance.amount_fen))
        .where(Issuance.program_id.in_(ids)).group_by(Issuance.program_id))}
    out = []
    for p in programs:
        prods = products[p.id]
        text = ("；" if i18n.current() == i18n.ZH else "; ").join(f"{x.name} {len(x.denominations)}×{format_yuan(x.denominations[0])}"
                        if len(set(x.denominations)) == 1 else
                        f"{x.name} {'+'.join(format_yuan(d) for d in x.denominations)}"
                        for x in prods)
        first, last = (validity_days(min(x.valid_from for x in prods),
                                     max(x.expires_at for x in prods)) if prods else (None, None))
        n, amount = issued.get(p.id, (0, 0))
        out.append((p.id, p.key, p.name, p.per_member_fen, text, first, last, int(n),
                    int(amount), p.created_at))
    return out


def program_list(limit: int = LIMIT, after: int = AFTER, file: Path = EXPORT) -> None:
    """List programs: key, per-member value, products, validity, what was issued so far."""
    page_or_export("活动", _("programs"), PROGRAM_COLUMNS,
         lambda s, a, n: [Row(r) for r in _program_rows(s, a, n)], limit=limit, after=after,
         file=file, action="program.export", detail={})


# --- redemptions -----------------------------------------------------------------------------

REDEMPTION_COLUMNS = (
    Column("编号", "id", "id"), Column("时间", "created", "instant"),
    Column("商户编号", "merchant id", "id"), Column("商户", "merchant", width=24),
    Column("工会", "union", width=20), Column("活动", "program"), Column("渠道", "channel"),
    Column("订单金额", "order", "fen"), Column("用券金额", "voucher paid", "fen"),
    Column("状态", "status"), Column("券编号", "voucher id", "id"),
    Column("结算批次", "settlement batch", "id"),
)


def _redemption_row(r) -> Row:
    from civicvoucher.merchants.rules import CHANNEL_LABEL_ZH, Channel
    from civicvoucher.vouchers.listing import REDEMPTION_STATUS_LABEL_ZH
    from civicvoucher.vouchers.rules import RedemptionStatus

    return Row((r.id, r.created_at, r.merchant_id, r.merchant_name, r.union_name,
                 r.program_key, named(CHANNEL_LABEL_ZH, Channel(r.channel)), r.order_amount_fen,
                 r.amount_fen, named(REDEMPTION_STATUS_LABEL_ZH, RedemptionStatus(r.status)),
                 r.voucher_id, r.settlement_batch_id))


@redemption_app.command("list")
def redemption_list(
    program: str = typer.Option(None, help="program key or id"),
    org: str = typer.Option(None, help="the issuing union, or a federation: its subtree"),
    merchant: str = typer.Option(None, help="merchant USCC or id"),
    status: str = typer.Option(None, help="预授权/已核销/已撤销/已退款 or held, posted, "
                               "voided, refunded"),
    since: str = typer.Option(None, help="from this local date or time (inclusive)"),
    until: str = typer.Option(None, help="up to this local date or time (exclusive)"),
    limit: int = LIMIT, after: int = AFTER, file: Path = EXPORT,
) -> None:
    """List redemptions with merchant and union names, oldest first."""
    from civicvoucher.merchants.service import find_merchant
    from civicvoucher.orgs.service import find_org
    from civicvoucher.programs.service import get_program
    from civicvoucher.vouchers.listing import (
        RedemptionQuery,
        list_redemptions,
        parse_redemption_status,
    )

    with database().session() as s:
        p = get_program(s, program) if program else None
        o = find_org(s, org) if org else None
        m = find_merchant(s, merchant) if merchant else None
    q = RedemptionQuery(org_path=o.path if o else None, program_id=p.id if p else None,
                        merchant_id=m.id if m else None,
                        status=parse_redemption_status(status) if status else None,
                        since=parse_when(since, "since"), until=parse_when(until, "until"))
    title = _("redemptions") + (f" · {o.name}" if o else "") + (f" · {m.name}" if m else "")
    page_or_export("核销记录", title, REDEMPTION_COLUMNS,
         lambda s, a, n: [_redemption_row(r) for r in list_redemptions(s, q, after_id=a,
                                                                      limit=n)],
         limit=limit, after=after, file=file, action="redemption.export",
         detail={"program": p.key if p else None, "org_id": o.id if o else None,
                 "merchant_id": m.id if m else None, "status": q.status})


# --- settlement ------------------------------------------------------------------------------

SETTLEMENT_COLUMNS = (
    Column("批次", "batch", "id"), Column("结算", "run", "id"),
    Column("截止时间", "cut-off", "instant"), Column("商户编号", "merchant id", "id"),
    Column("商户", "merchant", width=24), Column("统一社会信用代码", "USCC", width=20),
    Column("笔数", "redemptions", "count"), Column("核销金额", "settled", "fen"),
    Column("扣回", "kept back", "fen"), Column("实付", "paid out", "fen"),
    Column("时间", "created", "instant"),
)


def _batch_rows(s, after: int | None, limit: int, run: int | None,
                merchant_id: int | None) -> list[Row]:
    from sqlalchemy import select

    from civicvoucher.merchants.models import Merchant
    from civicvoucher.settlement.models import SettlementBatch, SettlementRun

    q = (select(SettlementBatch, SettlementRun.cutoff, Merchant.name, Merchant.uscc)
         .join(SettlementRun, SettlementRun.id == SettlementBatch.run_id)
         .join(Merchant, Merchant.id == SettlementBatch.merchant_id))
    if run is not None:
        q = q.where(SettlementBatch.run_id == run)
    if merchant_id is not None:
        q = q.where(SettlementBatch.merchant_id == merchant_id)
    if after is not None:
        q = q.where(SettlementBatch.id > after)
    return [Row((b.id, b.run_id, cutoff, b.merchant_id, name, uscc, b.redemption_count,
                  b.amount_fen, b.recovered_fen, b.amount_fen - b.recovered_fen, b.created_at))
            for b, cutoff, name, uscc in s.execute(q.order_by(SettlementBatch.id).limit(limit))]


@settlement_app.command("list")
def settlement_list(
    run: int = typer.Option(None, help="only this settlement run's batches"),
    merchant: str = typer.Option(None, help="merchant USCC or id"),
    limit: int = LIMIT, after: int = AFTER, file: Path = EXPORT,
) -> None:
    """List payout batches with merchant names: settled, kept back for refunds, paid out."""
    from civicvoucher.merchants.service import find_merchant

    with database().session() as s:
        m = find_merchant(s, merchant) if merchant else None
    mid = m.id if m else None
    title = (_("settlement batches") + (" · " + localize(msg("run {run}", run=run)) if run else "")
             + (f" · {m.name}" if m else ""))
    page_or_export("结算批次", title, SETTLEMENT_COLUMNS,
         lambda s, a, n: _batch_rows(s, a, n, run, mid), limit=limit, after=after, file=file,
         action="settlement.export", detail={"run": run, "merchant_id": mid})


@settlement_app.command("export")
def settlement_export(
    run: int = typer.Argument(..., help="the settlement run"),
    out: Path = typer.Option(..., "--out", help="the payout file for the bank: .xlsx or .csv"),
) -> None:
    """Write a run's payout file for the bank (payee, bank, full account number, amount in
    yuan, batch, reference). It opens the sealed account numbers: audited
    (settlement.bank_export), and the file is made readable by its owner only."""
    import os

    from civicvoucher.cli.common import audit
    from civicvoucher.settlement import export as bank

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in bank.FORMATS:
        from civicvoucher.errors import ValidationError

        raise ValidationError(msg("{file}: use a .csv or .xlsx file", file=out.name),
                              field="out")

    def work(s):
        export = bank.payout_file(s, run)
        data = bank.render(export, fmt)
        audit(s, "settlement.bank_export", f"settlement_run:{run}",
              {**bank.audit_detail(export, fmt), "via": "cli", "file": out.name[:100]})
        return export, data

    export, data = database().run(work)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    from civicvoucher.cli.common import console

    console.print(localize(msg("wrote {file}: {n} payouts, {amount}", file=str(out),
                               n=len(export.lines), amount=i18n.Yuan(export.total_fen))),
                  markup=False)
