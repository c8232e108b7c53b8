"""voucher list / voucher export: a union's vouchers on screen, and the files it hands out.

Both are audited with the operator: a list shows whose vouchers are where, and an export
hands over paper vouchers' codes, each of which is spendable. The export's entry is written
(and committed) before the file, so no file of codes exists that the log does not know of.

What an export carries, and why (the hand-out decision):

- the member masked (张*三, the ID number as the registry stores it, masked): enough to find
  one's own line, not a roster; no clear ID number exists to leak;
- a paper voucher's code, grouped for reading (XXXXX-XXXXX-…): it is what the union prints
  and hands over, a bearer instrument by its nature, and the reason the export is audited;
- a digital voucher's code never: the member pays with the app's rotating QR payload
  (``api/qr.py``), and a code in a file would turn the voucher into a bearer instrument;
- for every voucher a hand-out claim (``cvh1.…``, with ``--qr`` also its QR image): bound to
  the member, signed, not spendable (a cashier's scan is refused, ``qr_not_for_payment``);
  the member opens it in the app, which shows the voucher only to that member's login.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from civicvoucher.cli.common import audit, console, database, err_console, settings
from civicvoucher.cli.tables import Column, Image, Sheet, check_target, export, named, show
from civicvoucher.core import clock
from civicvoucher.i18n import Yuan, _, localize, msg, nmsg

voucher_app = typer.Typer(help="Vouchers: list them, export a union's for hand-out.",
                          no_args_is_help=True)

PROGRAM = typer.Option(None, "--program", help="program key or id")
ORG = typer.Option(None, "--org", help="a union (USCC or id) or a federation (division code "
                   "or id): its whole subtree")
STATUS = typer.Option(None, "--status", help="未使用/预授权中/已使用/已过期 or issued, held, "
                      "redeemed, expired")
MEMBER = typer.Option(None, "--member", help="member id, or the 18-digit ID-card number")

LIST_COLUMNS = (
    Column("编号", "id", "id"), Column("工会", "union"), Column("会员", "member"),
    Column("身份证号", "ID number (masked)"), Column("活动", "program"),
    Column("券种", "product"), Column("面额", "value", "fen"),
    Column("使用门槛", "threshold", "fen"), Column("有效期起", "valid from", "day"),
    Column("有效期至", "valid through", "day"), Column("形式", "form"),
    Column("状态", "status"),
)
EXPORT_COLUMNS = (
    Column("券编号", "voucher id", "id"), Column("会员编号", "member id", "id"),
    Column("会员", "member"), Column("身份证号", "ID number (masked)"),
    Column("券码（仅纸质券）", "code (paper vouchers only)", width=34),
    Column("面额", "value", "fen"), Column("使用门槛", "threshold", "fen"),
    Column("有效期起", "valid from", "day"), Column("有效期至", "valid through", "day"),
    Column("可用类别", "categories", width=30), Column("可用渠道", "channels"),
    Column("可用地区", "region", width=20), Column("券种", "product"), Column("形式", "form"),
    Column("状态", "status"),
    Column("发放码（会员App扫码查看，不能付款）", "hand-out claim (opens in the member app; "
           "cannot pay)", width=40),
)
QR_COLUMN = Column("发放二维码", "hand-out QR", "image")
SUMMARY_COLUMNS = (
    Column("工会编号", "union id", "id"), Column("工会", "union"),
    Column("统一社会信用代码", "USCC"), Column("券数", "vouchers", "count"),
    Column("总面额", "total value", "fen"),
)


def _query(s, program: str | None, org: str | None, status: str | None, member: str | None):
    """The filters as typed, resolved: (VoucherQuery, program or None, org or None, member
    id or None)."""
    from civicvoucher.cli.registry import _find_member
    from civicvoucher.orgs.service import find_org
    from civicvoucher.programs.service import get_program
    from civicvoucher.vouchers.listing import VoucherQuery, parse_voucher_status

    p = get_program(s, program) if program else None
    o = find_org(s, org) if org else None
    m = None
    if member:  # an ID number in several unions is told apart by --org, when that is a union
        m = _find_member(s, member, o.uscc if o is not None and o.level == "union" else None)
    q = VoucherQuery(org_path=o.path if o is not None else None,
                     program_id=p.id if p is not None else None,
                     status=parse_voucher_status(status) if status else None,
                     member_id=m.id if m is not None else None)
    return q, p, o, m


def _filters(p, o, q) -> dict:
    return {"program": p.key if p is not None else None, "org_id": o.id if o is not None else None,
            "status": q.status, "member_id": q.member_id}


def _labels(line):
    from civicvoucher.vouchers.listing import (
        VOUCHER_FORM_LABEL_ZH,
        VOUCHER_STATUS_LABEL_ZH,
        validity_days,
    )
    from civicvoucher.vouchers.rules import VoucherForm, VoucherStatus

    first, last = validity_days(line.valid_from, line.expires_at)
    return (first, last, named(VOUCHER_FORM_LABEL_ZH, VoucherForm(line.form)),
            named(VOUCHER_STATUS_LABEL_ZH, VoucherStatus(line.status)))


@voucher_app.command("list")
def voucher_list(
    program: str = PROGRAM, org: str = ORG, status: str = STATUS, member: str = MEMBER,
    limit: int = typer.Option(50, min=1, max=10_000, help="at most this many (one page)"),
    after: int = typer.Option(None, help="the last id of the previous page: show the next"),
    codes: bool = typer.Option(False, "--codes", help="only the paper vouchers' codes, one per "
                               "line, for scripts and tills (digital codes are never shown)"),
) -> None:
    """List vouchers, newest issuance last (audited: it shows whose vouchers are where)."""
    from civicvoucher.core.ids import format_code
    from civicvoucher.vouchers.listing import count_vouchers, list_vouchers

    with database().session() as s:
        q, p, o, _m = _query(s, program, org, status, member)
        if codes:
            q = dataclasses.replace(q, form="paper")
        total = count_vouchers(s, q)
        lines = list_vouchers(s, q, after_id=after, limit=limit + 1)
        more, lines = len(lines) > limit, lines[:limit]
        audit(s, "voucher.list", f"org:{o.id}" if o is not None else "org:*",
              {**_filters(p, o, q), "shown": len(lines), "total": total, "codes": codes})
    if codes:  # plain lines, nothing else on stdout
        for v in lines:
            print(format_code(v.code))
        return
    rows = []
    for v in lines:
        first, last, form, state = _labels(v)
        rows.append((v.id, v.union_name, v.member_name, v.member_id_masked, v.program_key,
                     v.product_name, v.amount_fen, v.threshold_fen, first, last, form, state))
    count = localize(nmsg("{n} voucher", "{n} vouchers", total, n=f"{total:,}"))
    show(Sheet("vouchers", LIST_COLUMNS, rows,
               title=f"{o.name} · {count}" if o is not None else count))
    if more:
        console.print(localize(msg("next page: --after {id}", id=lines[-1].id)))


@voucher_app.command("export")
def voucher_export(
    file: Path = typer.Argument(..., dir_okay=False, help=".xlsx (a sheet per union) or .csv "
                                "(a file per union)"),
    program: str = PROGRAM, org: str = ORG, status: str = STATUS, member: str = MEMBER,
    with_qr: bool = typer.Option(False, "--qr", help="a hand-out QR image per voucher: in "
                                 "the XLSX's cells, or as PNG files beside the CSV"),
) -> None:
    """Export vouchers for hand-out, one sheet (XLSX) or file (CSV) per union: member masked,
    paper codes, value, validity, where each can be spent, a hand-out claim that cannot pay.
    Audited before the file is written: paper codes are spendable."""
    from civicvoucher.api import qr
    from civicvoucher.vouchers.listing import union_totals, union_vouchers

    check_target(file)
    db = database()
    with db.session() as s:
        q, p, o, _m = _query(s, program, org, status, member)
        unions = union_totals(s, q)
        count = sum(u.vouchers for u in unions)
        if unions:
            audit(s, "voucher.export", f"org:{o.id}" if o is not None else "org:*",
                  {**_filters(p, o, q), "file": file.name[:200], "unions": len(unions),
                   "vouchers": count, "qr_images": with_qr})
    if not unions:
        err_console.print(_("no vouchers match; no file written"))
        raise typer.Exit(1)
    key = qr.handout_key(settings().secret_key)
    when = clock.format_local(clock.now())
    what = p.name if p is not None else _("all programs")
    everywhere = o.name if o is not None else _("all unions")
    columns = EXPORT_COLUMNS + ((QR_COLUMN,) if with_qr else ())

    def rows(session, union_id):
        from civicvoucher.core.ids import format_code

        for v in union_vouchers(session, q, union_id):
            first, last, form, state = _labels(v)
            cats, chans, region = v.where
            claim = qr.make_handout(key, v)
            row = [v.id, v.member_id, v.member_name, v.member_id_masked,
                   format_code(v.code) if v.form == "paper" else None, v.amount_fen,
                   v.threshold_fen, first, last, cats, chans, region, v.product_name, form,
                   state, claim]
            if with_qr:
                row.append(Image(f"{v.id}.png", qr.image(claim, "png", scale=3)))
            yield row

    with db.snapshot() as s:
        sheets = []
        if len(unions) > 1:
            sheets.append(Sheet("汇总", SUMMARY_COLUMNS,
                                [(u.union.id, u.union.name, u.union.uscc or "", u.vouchers,
                                  u.amount_fen) for u in unions],
                                title=localize(msg(
                                    "{program} · {scope} · {unions} unions, {n} vouchers · "
                                    "exported {when}", program=what, scope=everywhere,
                                    unions=len(unions), n=f"{count:,}", when=when))))
        for u in unions:
            sheets.append(Sheet(
                f"{u.union.name}", columns, rows(s, u.union.id),
                title=localize(msg(
                    "{program} · {union} ({code}) · {n} vouchers, {total} in all · exported "
                    "{when}", program=what, union=u.union.name, code=u.union.uscc or u.union.id,
                    n=f"{u.vouchers:,}", total=Yuan(u.amount_fen), when=when))))
        written = export(file, sheets)
    console.print("[green]" + localize(nmsg(
        "{n} vouchers of {unions} union exported:", "{n} vouchers of {unions} unions exported:",
        len(unions), n=f"{count:,}", unions=len(unions))) + "[/green]")
    for f in written:
        console.print(f"  {f}")
