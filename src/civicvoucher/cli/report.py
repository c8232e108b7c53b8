"""``civicvoucher report PROGRAM``: the policy report of any program, on any database.

The same report the demo writes (``analytics.compute_report`` → ``render.write_outputs``):
issuance against plan by level and form, shortfall, digital share, leverage, redemption,
breakage, the daily curve, merchant concentration; the comparison with a published article
only for a simulated sample whose scenario has one (the demo's). ``--org`` restricts it to an
organisation's subtree; ``--level`` adds one row per organisation of that level. The demo
calls ``produce`` below too, so both write the same files the same way.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import typer

from civicvoucher.cli.common import console, err_console
from civicvoucher.errors import NotFound, ValidationError

STAGES = {"members": "会员登记 members", "deposits": "经费入账 deposits",
          "issuance": "发放 issuance", "spending": "消费 spending", "report": "统计报告 report"}


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    program: str = typer.Argument(..., help="活动代码或编号 the program's key or id"),
    org: str = typer.Option(
        None, "--org", help="只统计该单位及下属单位：单位编号、行政区划代码或统一社会信用代码 "
                            "(restrict to an organisation's subtree: id, division code or USCC)"),
    level: str = typer.Option(
        None, "--level", help="按该层级逐个单位列出：city 市 | county 县 | union 基层工会 "
                              "(one row per organisation of this level)"),
    out: Path = typer.Option(
        None, help="输出目录，默认 report-<活动代码>[-<单位>] (where the report goes)"),
    database_url: str = typer.Option(
        None, help="数据库，默认为已配置的数据库 (default: CIVICVOUCHER_DATABASE_URL)"),
) -> None:
    """统计报告：任一活动的发放、核销与拉动效应（HTML、XLSX、CSV） · the policy report of a
    program: HTML page, workbook and CSV tables."""
    from civicvoucher.cli.common import zone_or_fail
    from civicvoucher.config import normalise_url

    zone_or_fail()  # the report's days and times are local: an unknown zone is named, not traced
    if level is not None and level not in ("city", "county", "union"):
        raise ValidationError(f"--level takes city, county or union, not {level!r}",
                              field="level")
    if database_url:
        url = normalise_url(database_url)
    else:
        from civicvoucher.cli.common import settings

        url = settings().database_url
    if out is None:
        out = Path(f"report-{_safe(program)}" + (f"-{_safe(org)}" if org else ""))
    started = time.perf_counter()
    produce(url, out, program=program, org=org, level=level)
    print_paths(out, url)
    console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")


def produce(url: str, out: Path, *, program: str | int | None, org: str | None = None,
            level: str | None = None, baseline=None, title: str | None = None,
            summary: bool = True):
    """Compute the report (with a progress bar), write its files into ``out``, print its
    summary: ``(report, paths)``. The one path from a database to report files, for the
    demo and for ``civicvoucher report``."""
    from civicvoucher.analytics import compute_report
    from civicvoucher.analytics.render import print_summary, write_outputs

    try:
        with stage_progress() as progress:
            rep = compute_report(url, program_key=program, org=org, level=level,
                                 progress=progress)
    except FileNotFoundError as exc:
        raise NotFound(str(exc), code="database_not_found") from None
    except ValueError as exc:  # an in-memory or unsupported database
        raise ValidationError(str(exc), field="database_url") from None
    paths = write_outputs(rep, out, baseline=baseline, title=title)
    if summary:
        print_summary(rep, console)
    return rep, paths


def print_paths(out: Path, url: str) -> None:
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"\n[bold green]报告 report:[/bold green] {(out / 'report.html').resolve()}")
    console.print(f"表格 tables (XLSX, CSV): {out.resolve()}/  ·  数据 data: {shown}")


def _safe(text: str) -> str:
    """A folder-name-safe form of a program key or org code."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text)) or "x"


@contextmanager
def stage_progress():
    """``progress(name, total) -> tick``: live bars in a terminal; in a log file one line per
    stage instead."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not err_console.is_terminal:
        started = time.perf_counter()

        def line(name: str, total: int):
            err_console.print(f"  {STAGES.get(name, name)}: {total:,} "
                              f"(at {time.perf_counter() - started:.0f} s)")
            return lambda n=1: None

        yield line
        return
    with Progress(TextColumn("  {task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console) as bar:
        def stage(name: str, total: int):
            task = bar.add_task(STAGES.get(name, name), total=total)
            return lambda n=1: bar.advance(task, n)

        yield stage
