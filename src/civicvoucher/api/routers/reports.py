"""Aggregates for analysts and administrators: counts and sums, never a row about a person."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    ProgramReportOut,
    ReportColumnOut,
    ReportHeadlineOut,
    ReportNoticeOut,
    ReportScopeOut,
    ReportTableOut,
    StatusTotal,
    SummaryReport,
)
from civicvoucher.auth import scope
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode
from civicvoucher.members.models import Member
from civicvoucher.orgs.models import Org
from civicvoucher.programs.service import get_program
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.rules import RedemptionStatus

router = make_router("/reports", "reports")


@router.get("/summary", response_model=SummaryReport, name="summary_report")
def summary_report(org_id: int | None = Query(None, ge=1, le=2_147_483_647),
                   c: Ctx = Depends(ctx)) -> SummaryReport:
    """Totals over an organisation's subtree: unions, members, funds, vouchers by status,
    redemptions and the order amounts they came with."""

    def run(s: Session) -> SummaryReport:
        root = scope.scoped_root(s, c.principal, org_id)
        inside = Org.path.startswith(root.path)
        unions = s.execute(select(func.count()).select_from(Org)
                           .where(inside, Org.level == "union")).scalar_one()
        members = s.execute(select(func.count()).select_from(Member)
                            .join(Org, Org.id == Member.union_id)
                            .where(inside, Member.status.in_(("active", "suspended")))
                            ).scalar_one()  # not rows left behind by leaving or a transfer
        fund = s.execute(select(func.coalesce(func.sum(Account.credits_posted
                                                       - Account.debits_posted), 0))
                         .join(Org, Org.id == Account.org_id)
                         .where(inside, Account.code == str(AccountCode.UNION_FUND))).scalar_one()
        by_status = s.execute(
            select(Voucher.status, func.count(), func.coalesce(func.sum(Voucher.amount_fen), 0))
            .join(Org, Org.id == Voucher.union_id).where(inside)
            .group_by(Voucher.status).order_by(Voucher.status)).all()
        n, paid, orders = s.execute(
            select(func.count(), func.coalesce(func.sum(Redemption.amount_fen), 0),
                   func.coalesce(func.sum(Redemption.order_amount_fen), 0))
            .join(Org, Org.id == Redemption.union_id)
            .where(inside, Redemption.status == RedemptionStatus.POSTED)).one()
        return SummaryReport(
            org_id=root.id, unions=unions, members=members, fund_balance_fen=int(fund),
            vouchers=[StatusTotal(status=st, vouchers=k, amount_fen=int(a))
                      for st, k, a in by_status],
            redemptions=n, redeemed_fen=int(paid), order_total_fen=int(orders))

    return c.db.run(run)


_FILES = {"application/pdf": "pdf",
          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


@router.get("/programs/{program}", response_model=ProgramReportOut, name="program_report",
            responses={200: {"content": {m: {} for m in _FILES}}})
def program_report(
    program: str = Path(min_length=1, max_length=80, pattern=r"^[^/\x00-\x1f]+$",
                        description="the program's key or id"),
    org_id: int | None = Query(None, ge=1, le=2_147_483_647,
                               description="subtree root (default: your organisation)"),
    level: Literal["city", "county", "union"] | None = Query(
        None, description="add a table with one row per organisation of this level"),
    format: Literal["json", "xlsx", "pdf"] | None = Query(
        None, description="json (default), or the workbook (xlsx) or the A4 report (pdf) "
                          "people read; an Accept of application/pdf or the xlsx type asks "
                          "the same"),
    c: Ctx = Depends(ctx),
) -> ProgramReportOut | Response:
    """The policy report ``civicvoucher report`` writes, as JSON, over the caller's subtree
    (or a part of it): issuance against plan by level and form, shortfall, digital share,
    leverage, redemption rate, breakage, the daily curve, merchant concentration. Money is
    integer fen. Aggregates only: no row about a person.

    ``format=xlsx`` or ``pdf`` (or that Accept) answers the same report as a file: the
    workbook ``civicvoucher report`` writes (yuan with number formats), or the PDF (A4, in the
    request's language)."""
    from civicvoucher.analytics import compute_report
    from civicvoucher.analytics.render import all_tables

    def where(s: Session) -> tuple[str, int]:
        p = get_program(s, program)  # 404 before any work
        return p.key, scope.scoped_root(s, c.principal, org_id).id

    key, root = c.db.run(where)
    report = compute_report(c.db.url, program_key=key, org=root, level=level)
    kind = format if format != "json" else None
    if format is None:
        accept = c.request.headers.get("accept", "")
        kind = next((k for m, k in _FILES.items() if m in accept), None)
    if kind is not None:
        from civicvoucher import i18n
        from civicvoucher.analytics.downloads import content_disposition, report_file

        body, media, name = report_file(report, kind, lang=i18n.current())
        return Response(body, media_type=media,
                        headers={"Content-Disposition": content_disposition(name),
                                 "Cache-Control": "no-store"})
    return report_out(report, all_tables(report))


def report_out(report, tables) -> ProgramReportOut:
    from civicvoucher.analytics import describe

    sc = report.scope
    return ProgramReportOut(
        program_id=report.program_id, program_key=report.program_key,
        program_name=report.program_name,
        scope=ReportScopeOut(org_id=sc.org_id, name_zh=sc.name_zh, level=sc.level,
                             code=sc.code),
        scale=report.scale, sample=report.sample,
        sample_warning_zh=describe.sample_warning_zh(report) or None,
        sample_warning_en=describe.sample_warning_en(report) or None,
        scenario=report.scenario, generated_at=report.generated_at,
        notices=[ReportNoticeOut(code=n.code, zh=n.zh, en=n.en) for n in report.notices],
        headline=[ReportHeadlineOut(key=h.key, label_zh=h.label_zh, label_en=h.label_en,
                                    unit=h.unit, value=h.value, full=h.full)
                  for h in report.headline.values()],
        tables=[ReportTableOut(
            name=t.name, title_zh=t.title_zh, title_en=t.title_en, note_zh=t.note_zh,
            note_en=t.note_en,
            columns=[ReportColumnOut(key=col.key, label_zh=col.label_zh, label_en=col.label_en,
                                     kind=col.kind, code=col.code) for col in t.columns],
            rows=[{col.key: r.get(col.key) for col in t.columns} for r in t.rows])
            for t in tables])
