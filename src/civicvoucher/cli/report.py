"""``civicvoucher report PROGRAM``: the policy report of any program, on any database.

The same report the demo writes (``analytics.compute_report`` → ``render.write_outputs``):
issuance against plan by level and form, shortfall, digital share, leverage, redemption,
breakage, the daily curve, merchant concentration; the comparison with a published article
only for a simulated sample whose scenario has one (the demo's). ``--org`` restricts it to an
organisation's subtree; ``--level`` adds one row per organisation of that level. The demo
calls ``produce`` below too, so both write the same files the same way: report.html, the CSV
tables, report.xlsx and report.pdf (A4, Chinese unless ``--pdf-lang en``) in one folder, so
one command gives every format and the PDF is never a different run's figures.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import typer

from civicvoucher.cli.common import console, err_console
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, Text, _, localize, msg

STAGES = {"members": N_("members"), "deposits": N_("deposits"), "issuance": N_("issuance"),
          "spending": N_("spending"), "report": N_("report")}


def stage_name(name: str) -> str:
    return _(STAGES[name]) if name in STAGES else name


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    program: str = typer.Argument(..., help="the program's key or id"),
    org: str = typer.Option(
        None, "--org", help="restrict to an organisation and those under it: its id, division "
                            "code or USCC"),
    level: str = typer.Option(
        None, "--level", help="one row per organisation of this level: city, county or union"),
    out: Path = typer.Option(
        None, help="where the report goes (default: report-<program key>[-<organisation>])"),
    database_url: str = typer.Option(
        None, help="the database (default: the configured one, CIVICVOUCHER_DATABASE_URL)"),
    pdf_lang: str = typer.Option(
        "zh", "--pdf-lang", help="the language of report.pdf: zh or en"),
) -> None:
    """The policy report of a program: issuance, redemption and leverage, as an HTML page, a
    workbook (XLSX) and CSV tables."""
    from civicvoucher.cli.common import zone_or_fail
    from civicvoucher.config import normalise_url

    zone_or_fail()  # the report's days and times are local: an unknown zone is named, not traced
    if level is not None and level not in ("city", "county", "union"):
        raise ValidationError(msg("--level takes city, county or union, not {level}",
                                  level=repr(level)), field="level")
    if pdf_lang not in ("zh", "en"):
        raise ValidationError(msg("--pdf-lang takes zh or en, not {lang}", lang=repr(pdf_lang)),
                              field="pdf_lang")
    if database_url:
        url = normalise_url(database_url)
    else:
        from civicvoucher.cli.common import settings

        url = settings().database_url
    if out is None:
        out = Path(f"report-{_safe(program)}" + (f"-{_safe(org)}" if org else ""))
    started = time.perf_counter()
    produce(url, out, program=program, org=org, level=level, pdf_lang=pdf_lang)
    print_paths(out, url)
    console.print(f"[dim]{localize(msg('{s} s', s=f'{time.perf_counter() - started:.1f}'))}[/dim]")


def produce(url: str, out: Path, *, program: str | int | None, org: str | None = None,
            level: str | None = None, baseline=None, title: str | None = None,
            summary: bool = True, pdf_lang: str = "zh"):
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
        raise NotFound(msg("database not found: {reason}", reason=Text(str(exc))),
                       code="database_not_found") from None
    except ValueError as exc:  # an in-memory or unsupported database
        raise ValidationError(msg("cannot report on this database: {reason}",
                                  reason=Text(str(exc))), field="database_url") from None
    paths = write_outputs(rep, out, baseline=baseline, title=title, pdf_lang=pdf_lang)
    if summary:
        print_summary(rep, console)
    return rep, paths


def print_paths(out: Path, url: str) -> None:
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"\n[bold green]{_('report:')}[/bold green] {(out / 'report.html').resolve()}")
    console.print(localize(msg("tables (XLSX, CSV): {folder}/  ·  data: {url}",
                               folder=out.resolve(), url=shown)))
    if (out / "report.pdf").exists():
        console.print(localize(msg("PDF (A4): {path}", path=(out / "report.pdf").resolve())))


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
            err_console.print("  " + localize(msg(
                "{stage}: {n} (at {s} s)", stage=stage_name(name), n=f"{total:,}",
                s=f"{time.perf_counter() - started:.0f}")))
            return lambda n=1: None

        yield line
        return
    with Progress(TextColumn("  {task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console) as bar:
        def stage(name: str, total: int):
            task = bar.add_task(stage_name(name), total=total)
            return lambda n=1: bar.advance(task, n)

        yield stage
