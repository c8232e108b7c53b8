"""``civicvoucher maintenance``: prune expired rate buckets, idempotency keys, tokens and spent
QR payloads (the rules are in ``civicvoucher.maintenance``). Safe to run from cron: bounded
chunks, idempotent, one audit entry per run; see docs/maintenance.md."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import typer

from civicvoucher.cli.common import audit, console, database, err_console
from civicvoucher.core.clock import format_local
from civicvoucher.errors import ValidationError


def maintenance(
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="count what would be pruned; change nothing"),
    chunk: int = typer.Option(1000, min=1, max=10_000,
                              help="rows per transaction (smaller: shorter locks)"),
    grace_minutes: int = typer.Option(60, min=0, help="keep a row this long after it stops "
                                      "being in force (clock differences between hosts)"),
    bucket_idle_hours: int = typer.Option(24, min=1, help="a rate-limit bucket is pruned once "
                                          "idle this long (its failure count goes with it)"),
) -> None:
    """Prune what is no longer in force: idle rate-limit buckets, idempotency keys past their
    24-hour TTL, expired or revoked tokens, spent QR payloads past their expiry; then refresh
    the planner's statistics (PostgreSQL: VACUUM (ANALYZE)). Audited once per run."""
    from civicvoucher.core import clock
    from civicvoucher.maintenance import Policy, Report, run_maintenance

    try:
        policy = Policy(grace=timedelta(minutes=grace_minutes),
                        bucket_idle=timedelta(hours=bucket_idle_hours), chunk=chunk)
    except ValueError as exc:
        raise ValidationError(str(exc), field="options") from None
    db = database()
    report = Report(now=clock.now(), dry_run=dry_run)
    detail = {"chunk": chunk, "grace_minutes": grace_minutes,
              "bucket_idle_hours": bucket_idle_hours}
    try:
        run_maintenance(db, policy=policy, into=report)
    except BaseException:
        err_console.print("[red]维护中断[/red]（maintenance interrupted）：已提交的批次保留，"
                          "再次运行即可继续（chunks already committed stay pruned; run it "
                          "again to finish）")
        if not dry_run and report.total:
            with contextlib.suppress(Exception):  # the failure itself may be the database
                _audit(db, report, {**detail, "completed": False})
        raise
    verb_zh, verb_en = ("将清理", "would prune") if dry_run else ("已清理", "pruned")
    title = "维护预演，未做任何更改" if dry_run else "维护完成"
    console.print(f"{title}（maintenance{' dry run, nothing changed' if dry_run else ''}），"
                  f"截至 {format_local(report.now)}：")
    for r in report.results:
        line = f"  {r.zh} {r.table}（{r.en}）：{verb_zh} {r.pruned:,}（{verb_en} {r.pruned:,}）"
        if r.held:
            line += (f"；{r.held:,} 个仍在处理中，保留（{r.held:,} still held by a live "
                     "request, kept）")
        console.print(line, soft_wrap=True)
    if dry_run:  # nothing changed: nothing to audit
        return
    if report.analysed:
        console.print("  已刷新统计信息（statistics refreshed）：" + "、".join(report.analysed))
    _audit(db, report, {**detail, "completed": True})
    console.print(f"  共 {report.total:,} 项，已记入审计日志（{report.total:,} in all, audited）")


def _audit(db, report, detail: dict) -> None:
    """One entry per run, with what each rule pruned."""
    with db.session() as s:
        audit(s, "maintenance.prune", "maintenance",
              {"pruned": report.counts(),
               "held": {r.table: r.held for r in report.results if r.held},
               "analysed": report.analysed, **detail})


def register(app: typer.Typer) -> None:
    app.command("maintenance")(maintenance)
