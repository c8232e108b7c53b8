"""``civicvoucher maintenance``: prune expired rate buckets, idempotency keys, tokens and spent
QR payloads (the rules are in ``civicvoucher.maintenance``). Safe to run from cron: bounded
chunks, idempotent, one audit entry per run; see docs/maintenance.md."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import typer
from rich.markup import escape

from civicvoucher import i18n
from civicvoucher.cli.common import AS, audit, console, database, err_console, reason
from civicvoucher.core.clock import format_local
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import _, localize, msg


def maintenance(
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="count what would be pruned; change nothing"),
    chunk: int = typer.Option(1000, min=1, max=10_000,
                              help="rows per transaction (smaller: shorter locks)"),
    grace_minutes: int = typer.Option(60, min=0, help="keep a row this long after it stops "
                                      "being in force (clock differences between hosts)"),
    bucket_idle_hours: int = typer.Option(24, min=1, help="a rate-limit bucket is pruned once "
                                          "idle this long (its failure count goes with it)"),
    _as: str = AS,
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
        raise ValidationError(reason(exc), field="options") from None
    db = database()
    report = Report(now=clock.now(), dry_run=dry_run)
    detail = {"chunk": chunk, "grace_minutes": grace_minutes,
              "bucket_idle_hours": bucket_idle_hours}
    try:
        run_maintenance(db, policy=policy, into=report)
    except BaseException:
        stop = _("maintenance interrupted: chunks already committed stay pruned; run it "
                 "again to finish")
        err_console.print(f"[red]{escape(stop)}[/red]")
        if not dry_run and report.total:
            with contextlib.suppress(Exception):  # the failure itself may be the database
                _audit(db, report, {**detail, "completed": False})
        raise
    when = format_local(report.now)
    say(msg("maintenance dry run, nothing changed, as of {when}:", when=when) if dry_run else
        msg("maintenance done, as of {when}:", when=when))
    zh = i18n.current() == i18n.ZH
    for r in report.results:
        what = r.zh if zh else r.en  # the rule's own name for its table, in each language
        n, held = f"{r.pruned:,}", f"{r.held:,}"
        line = (msg("{what} ({table}): would prune {n}", what=what, table=r.table, n=n)
                if dry_run else msg("{what} ({table}): pruned {n}", what=what, table=r.table,
                                    n=n))
        if r.held:
            line = msg("{line}; {held} still held by a live request, kept", line=line,
                       held=held)
        say(line, indent=True)
    if dry_run:  # nothing changed: nothing to audit
        return
    if report.analysed:
        say(msg("statistics refreshed: {tables}", tables=list(report.analysed)), indent=True)
    _audit(db, report, {**detail, "completed": True})
    total = f"{report.total:,}"
    say(msg("{n} in all, audited", n=total), indent=True)


def say(line, *, indent: bool = False) -> None:
    console.print(("  " if indent else "") + localize(line), markup=False, soft_wrap=True)


def _audit(db, report, detail: dict) -> None:
    """One entry per run, with what each rule pruned."""
    with db.session() as s:
        audit(s, "maintenance.prune", "maintenance",
              {"pruned": report.counts(),
               "held": {r.table: r.held for r in report.results if r.held},
               "analysed": report.analysed, **detail})


def register(app: typer.Typer) -> None:
    app.command("maintenance")(maintenance)
