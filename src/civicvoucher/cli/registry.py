"""org / member / merchant commands: the registries."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table as RichTable

from civicvoucher.cli.common import console, database, progress, settings
from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import ImportRejected

org_app = typer.Typer(help="Organisations: federations and grassroots unions.", no_args_is_help=True)
member_app = typer.Typer(help="The member registry.", no_args_is_help=True)
merchant_app = typer.Typer(help="The merchant registry.", no_args_is_help=True)


@org_app.command("import")
def org_import(file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Import organisations from CSV/XLSX (parents before children, or already stored)."""
    from civicvoucher.orgs.rules import ORG_ALIASES, validate_org_rows
    from civicvoucher.orgs.service import import_orgs

    table = read_table(file, aliases=ORG_ALIASES)
    rows, errors = validate_org_rows(table)
    if errors:
        raise ImportRejected(errors, total_rows=len(table.rows))
    with database().session() as s:
        created = import_orgs(s, rows)
    console.print(f"[green]imported {len(created)} organisations[/green]")


@org_app.command("list")
def org_list(under: str = typer.Option(None, help="division code, USCC or id of the subtree root"),
             level: str = typer.Option(None, help="province, city, county or union")) -> None:
    """List organisations (a subtree with --under)."""
    from sqlalchemy import select

    from civicvoucher.orgs.models import Org
    from civicvoucher.orgs.service import find_org, subtree

    with database().session() as s:
        if under:
            orgs = subtree(s, find_org(s, under), level=level)
        else:
            q = select(Org).order_by(Org.path)
            orgs = list(s.execute(q.where(Org.level == level) if level else q).scalars())
        t = RichTable("id", "level", "name", "code", "unit type")
        for o in orgs[:500]:
            t.add_row(str(o.id), o.level, o.name, o.division_code or o.uscc or "", o.unit_type or "")
    console.print(t)
    if len(orgs) > 500:
        console.print(f"... and {len(orgs) - 500} more")


@member_app.command("template")
def member_template(file: Path = typer.Argument(Path("members-template.xlsx"))) -> None:
    """Write the member import template (.xlsx or .csv) with two example rows."""
    from civicvoucher.members.rules import MEMBER_TEMPLATE_HEADER, member_template_example_rows

    write_table(file, list(MEMBER_TEMPLATE_HEADER), member_template_example_rows())
    console.print(f"template written to {file}")


@member_app.command("import")
def member_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    reject_file: Path = typer.Option(
        None, help="import the good rows and write the bad ones here (default: all or nothing)"),
) -> None:
    """Import members from CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX."""
    from civicvoucher.members.service import import_members

    with database().session() as s, progress("importing members", None) as tick:
        result = import_members(s, path=file, key=settings().secret_key,
                                reject_path=reject_file, progress=tick)
    console.print(f"[green]{result.imported} imported[/green], {result.unchanged} already "
                  f"registered, {len(result.rejected)} rejected of {result.rows} rows")
    if result.reject_file:
        console.print(f"[yellow]bad rows written to {result.reject_file}[/yellow]")
    _print_duplicates(result.duplicates)


def _print_duplicates(dups) -> None:
    if not dups:
        return
    console.print(f"[yellow]{len(dups)} people are registered in more than one union "
                  "(each is issued once, by whichever union issues first):[/yellow]")
    for d in dups[:20]:
        console.print(f"  {d.id_masked}  unions {', '.join(map(str, d.union_ids))}")


@member_app.command("duplicates")
def member_duplicates() -> None:
    """People registered in more than one union."""
    from civicvoucher.members.service import cross_union_duplicates

    with database().session() as s:
        dups = cross_union_duplicates(s)
    _print_duplicates(dups)
    if not dups:
        console.print("no one is registered twice")


@merchant_app.command("import")
def merchant_import(file: Path = typer.Argument(..., exists=True, dir_okay=False),
                    activate: bool = typer.Option(False, help="register them as active")) -> None:
    """Import merchants (USCC, name, MCC, county code, channels) from CSV/XLSX."""
    from dataclasses import replace

    from civicvoucher.merchants.rules import (
        MERCHANT_ALIASES,
        MerchantStatus,
        validate_merchant_rows,
    )
    from civicvoucher.merchants.service import add_merchants

    table = read_table(file, aliases=MERCHANT_ALIASES)
    rows, errors = validate_merchant_rows(table)
    if errors:
        raise ImportRejected(errors, total_rows=len(table.rows))
    if activate:
        rows = [(n, replace(r, status=MerchantStatus.ACTIVE)) for n, r in rows]
    with database().session() as s:
        n = add_merchants(s, rows)
    console.print(f"[green]registered {n} merchants[/green]")


@merchant_app.command("status")
def merchant_status(merchant: str, status: str = typer.Argument(..., help="pending, active or suspended")) -> None:
    """Activate or suspend a merchant."""
    from civicvoucher.merchants.service import find_merchant, set_status

    with database().session() as s:
        m = set_status(s, merchant_id=find_merchant(s, merchant).id, status=status)
        console.print(f"{m.name}: {m.status}")
