"""``civicvoucher demo``: the Shanxi 2020 scenario through the real engine, and its report.

The simulation records in the database that its rows are a sample (``analytics.provenance``);
the report is then made exactly as ``civicvoucher report`` makes it (``cli.report.produce``).
A what-if run writes the baseline's report to ``--out`` and its own, with the differences, to
a folder of its own beside it (``<out>-whatif-<setting>-<value>``), titled in words.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import typer

from civicvoucher.cli.common import console, err_console
from civicvoucher.cli.report import print_paths, produce, stage_progress
from civicvoucher.config import normalise_url, sqlite_url
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, _, localize, msg


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
        raise ValidationError(N_("scale must be between 0.001 and 1.0"), field="scale")
    base = load_scenario(scenario)
    changes = dict(overrides_from_file(overrides)) if overrides else {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError(msg("--set takes key=value, got {item}", item=repr(item)),
                                  field="set")
        changes[key.strip()] = value.strip()
    variant = apply_overrides(base, changes) if changes else None

    url = normalise_url(database_url) if database_url else sqlite_url("civicvoucher-demo.db")
    started = time.perf_counter()
    base_report, _paths = _run(base, url, out, scenario=scenario, scale=scale, seed=seed,
                          reset=reset, label=_("baseline"), summary=variant is None)
    _record(out, scale=scale, seed=seed, scenario=scenario, changes={}, url=url,
            seconds=time.perf_counter() - started)
    final_out = out
    if variant is not None:
        vurl = url.replace("civicvoucher-demo.db", "civicvoucher-demo-whatif.db") \
            if database_url is None else url
        if database_url is not None:
            err_console.print("[yellow]" + _("the what-if run reuses --database-url after the "
                                             "baseline (its data is replaced)") + "[/yellow]")
        final_out = whatif_folder(out, changes)
        _run(variant, vurl, final_out, scenario=scenario, scale=scale, seed=seed, reset=True,
             label=_("what-if"), changes=changes, baseline=base_report)
        _record(final_out, scale=scale, seed=seed, scenario=scenario, changes=changes, url=vurl,
                seconds=time.perf_counter() - started)
        console.print(f"\n[bold]{_('baseline:')}[/bold] {(out / 'report.html').resolve()}")
        url = vurl
    print_paths(final_out, url)
    console.print(localize(msg("{s} s", s=f"{time.perf_counter() - started:.1f}")))


def whatif_folder(out: Path, changes: dict) -> Path:
    """The what-if's own folder beside the baseline's: civicvoucher-report-whatif-county_guarantee-1.0."""
    slug = "-".join(f"{k}-{v}" for k, v in changes.items())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug)[:80].strip("_") or "variant"
    return out.with_name(f"{out.name}-whatif-{slug}")


def _run(scn: dict, url: str, out: Path, *, scenario: str, scale: float, seed: int,
         reset: bool, label: str, changes: dict | None = None, baseline=None,
         summary: bool = True):
    from civicvoucher.analytics import provenance
    from civicvoucher.config import load_settings
    from civicvoucher.keys import bind_key
    from civicvoucher.scenarios.model import scenario_path
    from civicvoucher.scenarios.simulate import simulate

    db = _fresh(url, reset=reset)
    console.print(f"[bold]{label}[/bold]: " + localize(msg(
        "{scenario}, scale {scale}, seed {seed}", scenario=scn["scenario"]["name"], scale=scale,
        seed=seed)))
    with stage_progress() as progress:
        key = bind_key(db, load_settings(database_url=url))
        summary_ = simulate(db, scn, scale=scale, seed=seed, key=key, progress=progress)
    console.print("  " + localize(msg(
        "{unions} unions, {members} members, {vouchers} vouchers, {cards} tourism cards, "
        "{redeemed} redemptions, {expired} expired", unions=f"{summary_.unions:,}",
        members=f"{summary_.members:,}", vouchers=f"{summary_.vouchers:,}",
        cards=f"{summary_.tourism_cards:,}", redeemed=f"{summary_.redeemed:,}",
        expired=f"{summary_.expired:,}")))
    # The bulk load logged every union as changed: build the dashboard's rollup once now
    # (analytics/rollup.py), so the console's dashboard reads summaries from the start.
    from civicvoucher.analytics import rollup

    with db.session() as s:
        built = rollup.refresh(s, full=True)
    console.print("  " + localize(msg("dashboard rebuilt: {unions} unions in {s} s",
                                      unions=f"{built.unions:,}", s=f"{built.seconds:.1f}")))
    # The base scenario is recorded, with the what-if settings beside it: the report groups
    # the counties by their baseline guarantees, so the what-if shows how the same counties
    # fare, not a regrouping.
    name = scenario if Path(scenario).suffix != ".toml" else str(scenario_path(scenario).resolve())
    with db.session() as s:
        provenance.record(s, scn["program"]["key"],
                          provenance.Sample(name, scale, seed, dict(changes or {})))
    db.dispose()
    return produce(url, out, program=scn["program"]["key"], baseline=baseline, summary=summary)


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
                raise ValidationError(N_("the demo needs an empty database: pass --reset to "
                                         "empty it (everything in it is deleted)"),
                                      field="database_url")
    return db


def _record(out: Path, *, url: str, **run) -> None:
    """What produced this report, beside it: enough to run it again (no password)."""
    from sqlalchemy.engine import make_url

    run["url"] = make_url(url).render_as_string(hide_password=True)
    (out / "run.json").write_text(json.dumps(run, ensure_ascii=False, indent=2, default=str),
                                  encoding="utf-8")
