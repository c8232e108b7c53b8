"""The ``civicvoucher`` command. User mistakes print a code and a reason, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from civicvoucher import i18n
from civicvoucher.cli import operations as ops
from civicvoucher.cli import program_file  # noqa: F401  (registers `program template`)
from civicvoucher.cli.common import console, database, database_problem, err_console
from civicvoucher.cli.i18n import language_from_argv, localize_tree, strip_lang
from civicvoucher.cli.keys import keys_app
from civicvoucher.cli.registry import member_app, merchant_app, org_app
from civicvoucher.errors import CivicVoucherError, DatabaseUnavailable, ImportRejected

app = typer.Typer(
    help="civicvoucher: public consumption-voucher programs (消费券) on a double-entry ledger.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"civicvoucher {version('civicvoucher')}")
        raise typer.Exit()


_argv_language: str | None = None  # run() reads --lang before Click parses (and strips it)


def _lang(value: str | None) -> None:
    """--lang, else what run() read off the command line, else the environment."""
    if value is None:
        i18n.set_language(_argv_language or i18n.language_from_env())
        return
    lang = i18n.parse_language(value)
    if lang is None:
        raise typer.BadParameter(i18n._("use zh or en"), param_hint="--lang")
    i18n.set_language(lang)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit"),
          lang: str = typer.Option(None, "--lang", callback=_lang, is_eager=True,
                                   metavar="zh|en",
                                   help="language of messages: zh (default) or en; else "
                                        "CIVICVOUCHER_LANG or LANG")) -> None:
    """civicvoucher: public consumption-voucher programs (消费券) on a double-entry ledger."""


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)

app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
app.add_typer(member_app, name="member")
app.add_typer(merchant_app, name="merchant")
app.add_typer(ops.fund_app, name="fund")
app.add_typer(ops.program_app, name="program")
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")  # sealing keys for secrets at rest (cli/keys.py)
for fn in (ops.issue, ops.redeem, ops.capture, ops.void, ops.refund, ops.expire, ops.extend,
           ops.settle):
    app.command(fn.__name__)(fn)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema (Alembic) on the configured database."""
    from civicvoucher.schema import current

    db = database()
    console.print(i18n.localize(i18n.msg(
        "{url} at revision {revision}", url=db.engine.url.render_as_string(hide_password=True),
        revision=current(db.engine))))


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check every ledger invariant and the voucher reconciliation; exit 1 if anything is off."""
    from civicvoucher.reconcile import verify

    with database().snapshot() as s:
        problems = verify(s)
    if not problems:
        ok = i18n._("ledger OK")
        console.print(i18n.localize(i18n.msg(
            "{ok}: transfers balance, accounts match their entries, nothing negative, "
            "vouchers reconcile", ok="[green]" + ok + "[/green]")))
        return
    console.print("[red]" + escape(i18n.localize(i18n.nmsg("{n} problem", "{n} problems",
                                                           len(problems)))) + "[/red]")
    for p in problems[:200]:
        console.print(f"  {p}")
    raise typer.Exit(1)


def _register_more() -> None:
    """Commands of the layers built on the core, each group in its own module: the demo and
    the report, the HTTP server, maintenance, voucher hand-out and the list commands."""
    from civicvoucher.cli import dashboard, demo, lists, maintenance, report, server, vouchers

    demo.register(app)
    dashboard.register(app)
    server.register(app)
    maintenance.register(app)
    report.register(app)
    app.add_typer(vouchers.voucher_app, name="voucher")
    app.add_typer(lists.redemption_app, name="redemption")
    app.add_typer(lists.settlement_app, name="settlement")
    ops.program_app.command("list")(lists.program_list)


_register_more()


def command(lang: str | None = None):
    """The command tree with its help in ``lang`` (default: the current language)."""
    return localize_tree(typer.main.get_command(app), lang or i18n.current())


def report_error(exc: CivicVoucherError) -> None:
    """A user's mistake as the operator reads it: the stable code, where, and why."""
    label = i18n._("error")
    if isinstance(exc, ImportRejected):
        first = exc.errors[0].localized()
        more = len(exc.errors) - 1
        line = i18n.localize(i18n.nmsg("{first} (and {n} more); nothing was imported",
                                       "{first} (and {n} more); nothing was imported",
                                       more, first=first) if more else
                             i18n.msg("{first}; nothing was imported", first=first))
        err_console.print(f"[red]{label}[/red] {escape(f'[{exc.code}]')} {escape(line)}")
        for e in exc.errors[1:20]:
            err_console.print(f"  {escape(e.localized())}")
        if len(exc.errors) > 20:
            err_console.print("  " + escape(i18n.localize(i18n.msg(
                "... {n} more", n=len(exc.errors) - 20))))
        return
    where = exc.where() if hasattr(exc, "where") else ""
    text = f"{where}: {exc.localized()}" if where else exc.localized()
    if i18n.current() == i18n.ZH and where:
        text = f"{where}：{exc.localized()}"
    # a database that cannot be opened: one line the terminal wraps, so that the command it
    # suggests (createdb ...) is copied whole
    err_console.print(f"[red]{label}[/red] {escape(f'[{exc.code}]')} {escape(text)}",
                      soft_wrap=isinstance(exc, DatabaseUnavailable))


def run(argv: list[str] | None = None) -> None:
    global _argv_language
    args = sys.argv[1:] if argv is None else argv
    _argv_language = language_from_argv(args)
    i18n.set_language(_argv_language or i18n.language_from_env())
    try:
        command().main(strip_lang(args), prog_name="civicvoucher")
    except CivicVoucherError as exc:
        report_error(exc)
        sys.exit(2)
    except Exception as exc:
        # a database that is not there (no server, no such database, login refused, a file
        # SQLite cannot open), wherever the command opened it: said as any other error
        if (problem := database_problem(exc)) is None:
            raise
        report_error(problem)
        sys.exit(2)
    finally:
        _argv_language = None  # an in-process caller's next run decides afresh
