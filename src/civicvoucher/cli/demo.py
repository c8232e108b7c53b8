"""``civicvoucher demo``: the Shanxi 2020 scenario through the real engine, and its report."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from civicvoucher.cli.common import console, err_console
from civicvoucher.config import normalise_url, sqlite_url
from civicvoucher.errors import ValidationError

STAGES = {"members": "会员登记 members", "deposits": "经费入账 deposits",
          "issuance": "发放 issuance", "spending": "消费 spending"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    scale: float = typer.Option(0.01, help="share of the province's 7.76M members, 0.001 to 1.0"),
    seed: int = typer.Option(2020, help="same seed, same data, same report"),
    scenario: str = typer.Option("shanxi-2020", help="scenario name or .toml file"),
    set_: list[str] = typer.Option(None, "--set", help="what-if override, e.g. county_guarantee=1.0"),
    overrides: Path = typer.Option(None, help="TOML file of what-if overrides"),
    database_url: str = typer.Option(
        None, help="default: a fresh SQLite file civicvoucher-demo.db in this folder"),
    reset: bool = typer.Option(False, help="empty a non-SQLite database first (destructive)"),
    out: Path = typer.Option(Path("civicvoucher-report"), help="where the report goes"),
) -> None:
    """Run the Shanxi 2020 program on the real engine and write the policy report."""
    from civicvoucher.scenarios.model import apply_overrides, load_scenario, overrides_from_file

    if not 0.001 <= scale <= 1.0:
        raise ValidationError("scale must be between 0.001 and 1.0", field="scale")
    base = load_scenario(scenario)
    changes = dict(overrides_from_file(overrides)) if overrides else {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError(f"--set takes key=value, got {item!r}", field="set")
        changes[key.strip()] = value.strip()
    variant = apply_overrides(base, changes) if changes else None

    out.mkdir(parents=True, exist_ok=True)
    url = normalise_url(database_url) if database_url else sqlite_url("civicvoucher-demo.db")
    started = time.perf_counter()
    base_report = _run(base, url, scale=scale, seed=seed, reset=reset, label="baseline 基准")
    final, baseline = base_report, None
    if variant is not None:
        vurl = url.replace("civicvoucher-demo.db", "civicvoucher-demo-whatif.db") \
            if database_url is None else url
        if database_url is not None:
            err_console.print("[yellow]the what-if run reuses --database-url after the baseline "
                              "(its data is replaced)[/yellow]")
        # Counties keep their baseline guarantee groups, so the what-if shows how the same
        # counties fare, not a regrouping.
        final = _run(variant, vurl, scale=scale, seed=seed, reset=True, label="what-if 情景",
                     groups_from=base)
        baseline = base_report
    _write(final, baseline, out, base["scenario"]["name"], changes)
    _record(out, scale=scale, seed=seed, scenario=scenario, changes=changes, url=url,
            seconds=time.perf_counter() - started)
    from civicvoucher.analytics.render import print_summary

    print_summary(final, console)
    console.print(f"\n[bold green]report:[/bold green] {(out / 'report.html').resolve()}")
    console.print(f"tables (CSV, XLSX): {out.resolve()}/  ·  data: {url}")
    console.print(f"{time.perf_counter() - started:.1f} s")


def _run(scn: dict, url: str, *, scale: float, seed: int, reset: bool, label: str,
         groups_from: dict | None = None):
    from civicvoucher.analytics import compute_report
    from civicvoucher.config import load_settings
    from civicvoucher.db import Database
    from civicvoucher.keys import bind_key
    from civicvoucher.scenarios.model import guarantee_by_county
    from civicvoucher.scenarios.simulate import simulate

    db = _fresh(url, reset=reset)
    console.print(f"[bold]{label}[/bold]: {scn['scenario']['name']}, scale {scale}, seed {seed}")
    with _progress() as progress:
        key = bind_key(db, load_settings(database_url=url))
        summary = simulate(db, scn, scale=scale, seed=seed, key=key, progress=progress)
    console.print(f"  {summary.unions:,} unions, {summary.members:,} members, "
                  f"{summary.vouchers:,} vouchers, {summary.tourism_cards:,} tourism cards, "
                  f"{summary.redeemed:,} redemptions, {summary.expired:,} expired")
    db.dispose()
    return compute_report(Database(url).url, scale=scale, published=scn["published"],
                          guarantee_by_county=guarantee_by_county(groups_from or scn),
                          program_key=scn["program"]["key"])


def _fresh(url: str, *, reset: bool):
    """An empty, migrated database: a SQLite file is replaced; a server database must be
    empty unless --reset says to empty it."""
    from sqlalchemy import func, inspect, select

    from civicvoucher.db import Database
    from civicvoucher.models import Base
    from civicvoucher.orgs.models import Org
    from civicvoucher.schema import upgrade

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = Database(url)
    if not url.startswith("sqlite") and reset:
        with db.engine.begin() as c:
            Base.metadata.drop_all(c)
            c.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db.engine)
    if not url.startswith("sqlite"):
        with db.session() as s:
            if inspect(s.get_bind()).has_table("org") and s.execute(
                    select(func.count()).select_from(Org)).scalar():
                raise ValidationError("the demo needs an empty database: pass --reset to empty "
                                      "it (everything in it is deleted)", field="database_url")
    return db


@contextmanager
def _progress():
    if not err_console.is_terminal:  # a log file: one line per stage instead of live bars
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


def _write(report, baseline, out: Path, name: str, changes: dict) -> None:
    from civicvoucher.analytics.render import write_outputs

    title = "山西省2020年职工消费券：政策报告 · Shanxi 2020 union vouchers: policy report"
    if changes:
        title += " · 情景 what-if: " + ", ".join(f"{k}={v}" for k, v in changes.items())
    write_outputs(report, out, baseline=baseline, title=title)


def _record(out: Path, **run) -> None:
    """What produced this report, beside it: enough to run it again."""
    (out / "run.json").write_text(json.dumps(run, ensure_ascii=False, indent=2, default=str),
                                  encoding="utf-8")
