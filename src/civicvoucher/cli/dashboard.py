"""``civicvoucher dashboard refresh``: bring the dashboard's rollup up to date
(``analytics/rollup.py``). Incremental by default (the unions changed since the last refresh);
``--full`` rebuilds every union (needed once on a database that had data before migration
0012). Safe to run from cron and while redemptions come in; audited once per run."""

from __future__ import annotations

import typer

from civicvoucher.cli.common import AS, audit, console, database
from civicvoucher.i18n import localize, msg

dashboard_app = typer.Typer(help="The web console's dashboard.", no_args_is_help=True)


@dashboard_app.command("refresh")
def refresh(
    full: bool = typer.Option(False, "--full", help="rebuild the summaries of every union, "
                              "not only of those changed since the last refresh"),
    _as: str = AS,
) -> None:
    """Bring the dashboard's summaries up to date: the unions whose vouchers, redemptions,
    refunds or members changed since the last refresh (every union with --full)."""
    from civicvoucher.analytics import rollup

    db = database()
    with db.session() as s:
        r = rollup.refresh(s, full=full)
        audit(s, "dashboard.refresh", "dashboard",
              {"full": r.full, "unions": r.unions, "log_rows": r.log_rows,
               "seconds": round(r.seconds, 3)})
    line = (msg("dashboard rebuilt: {unions} unions in {s} s", unions=f"{r.unions:,}",
                s=f"{r.seconds:.1f}") if r.full else
            msg("dashboard refreshed: {unions} changed unions ({rows} log rows) in {s} s",
                unions=f"{r.unions:,}", rows=f"{r.log_rows:,}", s=f"{r.seconds:.1f}"))
    console.print(localize(line), markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dashboard_app, name="dashboard")
