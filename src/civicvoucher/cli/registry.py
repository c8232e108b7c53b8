"""org / member / merchant commands: the registries."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table as RichTable

from civicvoucher.cli.common import audit, console, database, progress, settings
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
        audit(s, "org.import", f"file:{file.name}"[:200], {"created": len(created)})
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
    update: bool = typer.Option(
        False, "--update", help="also apply the file's changes to people already registered in "
        "that union (name; phone and status where the cell is not empty), after listing them"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="only show what the import would do; write nothing"),
    changes_file: Path = typer.Option(
        None, help="write every change (row, member, field, from, to) to this CSV/XLSX"),
) -> None:
    """Import members from CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX."""
    from civicvoucher.members.service import import_members

    with database().session() as s, progress("importing members", None) as tick:
        result = import_members(s, path=file, key=settings().secret_key,
                                reject_path=reject_file, progress=tick, update=update,
                                dry_run=dry_run, audit=audit)
        if not dry_run:
            audit(s, "member.import", f"file:{file.name}"[:200],
                   {"rows": result.rows, "imported": result.imported,
                    "unchanged": result.unchanged, "updated": result.updated})
    _print_changes(result.changes, applied=update and not dry_run, changes_file=changes_file)
    would = "would be " if dry_run else ""
    console.print(f"[green]{result.imported} {would}imported[/green], "
                  f"{result.unchanged} already registered"
                  + (f", {len(result.changes)} {would}updated" if update else "")
                  + f", {len(result.rejected)} rejected of {result.rows} rows")
    if result.changes and not update:
        console.print(f"[yellow]{len(result.changes)} registered members differ from the file "
                      "(nothing changed): run again with --update --dry-run to see how, "
                      "--update to apply[/yellow]")
    if dry_run:
        console.print("[yellow]dry run: nothing was written[/yellow]")
    if result.reject_file:
        console.print(f"[yellow]bad rows written to {result.reject_file}[/yellow]")
    _print_duplicates(result.duplicates)


def _print_changes(changes, *, applied: bool, changes_file: Path | None, limit: int = 200) -> None:
    if changes_file is not None:
        write_table(changes_file, ["row", "member_id", "id_masked", "field", "from", "to"],
                    [[c.row or "", c.member_id, c.id_masked, f.field, f.old or "", f.new or ""]
                     for c in changes for f in c.changes])
        console.print(f"{len(changes)} changes written to {changes_file}")
    if not changes:
        return
    console.print(f"{'changes applied' if applied else 'changes'} ({len(changes)} members):")
    for c in changes[:limit]:
        where = f"row {c.row}  " if c.row else ""
        console.print(f"  {where}member {c.member_id}  {c.id_masked}  {c.name}:  "
                      + "; ".join(map(str, c.changes)))
    if len(changes) > limit:
        console.print(f"  ... and {len(changes) - limit} more"
                      + ("" if changes_file else " (--changes-file writes them all)"))


def _find_member(s, ref: str, union: str | None):
    """A member by id, or by ID-card number (with --union if the person is in several)."""
    from sqlalchemy import select

    from civicvoucher.errors import NotFound, ValidationError
    from civicvoucher.members.models import Member
    from civicvoucher.members.rules import hash_id_number, id_number_problem
    from civicvoucher.orgs.service import find_org

    ref = ref.strip()
    if ref.isdigit() and len(ref) < 18:
        m = s.get(Member, int(ref))
        if m is None:
            raise NotFound(f"会员 {ref} 不存在 (no member {ref})", code="member_not_found")
        return m
    q = select(Member).where(Member.id_hash == hash_id_number(ref, key=settings().secret_key))
    if union:
        q = q.where(Member.union_id == find_org(s, union).id)
    found = list(s.execute(q.order_by(Member.id)).scalars())
    if not found:
        problem = id_number_problem(ref, min_age=0)
        raise NotFound(f"没有该身份证号码的会员 (no member with this ID-card number"
                       f"{'' if problem is None else ': ' + problem})", code="member_not_found")
    if len(found) > 1:
        raise ValidationError("该身份证号码在多个工会登记，请用 --union 指定，或给出会员编号 "
                              f"(registered in several unions: members "
                              f"{', '.join(str(m.id) for m in found)}; give --union or the id)",
                              field="member")
    return found[0]


@member_app.command("change")
def member_change(
    member: str = typer.Argument(..., help="member id, or the 18-digit ID-card number"),
    status: str = typer.Option(None, help="在职/停用/离会/调出 or active, suspended, left, "
                               "transferred (to move to a union here, use `member transfer`)"),
    phone: str = typer.Option(None, help="new mobile number"),
    clear_phone: bool = typer.Option(False, "--clear-phone", help="remove the phone number"),
    reason: str = typer.Option(None, help="why (e.g. 离会原因); kept on the member and audited"),
    union: str = typer.Option(None, help="the union (code or id), if the ID number is in several"),
) -> None:
    """Change one member's status or phone (audited). Only active members are issued vouchers."""
    from civicvoucher.errors import ValidationError
    from civicvoucher.members.rules import MEMBER_STATUS_LABEL_ZH, MemberStatus, parse_status
    from civicvoucher.members.service import change_member

    new_status = None
    if status is not None:
        new_status = parse_status(status) if status.strip() else None
        if new_status is None:
            raise ValidationError(f"未知的会员状态 {status!r} (unknown status; use 在职, 停用, "
                                  "离会 or 调出)", field="status")
    with database().session() as s:
        m = _find_member(s, member, union)
        m, change = change_member(s, m.id, key=settings().secret_key, audit=audit,
                                  status=new_status, phone=phone, clear_phone=clear_phone,
                                  reason=reason)
        label = MEMBER_STATUS_LABEL_ZH[MemberStatus(m.status)]
    if change is None:
        console.print(f"member {m.id} {m.id_masked}: nothing to change ({label}, "
                      f"phone {m.phone_masked or '-'})")
        return
    console.print(f"[green]member {m.id}[/green] {m.id_masked} {m.name}: "
                  + "; ".join(map(str, change.changes)))


@member_app.command("transfer")
def member_transfer(
    member: str = typer.Argument(..., help="member id, or the 18-digit ID-card number"),
    to: str = typer.Option(..., "--to", help="the union the member moves to (USCC or id)"),
    reason: str = typer.Option(None, help="why; kept on the member and audited"),
    union: str = typer.Option(None, help="the union (code or id) the member leaves, if the ID "
                              "number is in several"),
) -> None:
    """Transfer a member to another union (调出/调入, audited): the old union's row is marked
    transferred and the new union gets the person's row. Vouchers already issued stay with the
    union that issued them; the new union cannot entitle the person twice for a product."""
    from civicvoucher.members.service import transfer_member
    from civicvoucher.orgs.service import find_org

    with database().session() as s:
        m = _find_member(s, member, union)
        target = find_org(s, to)
        t = transfer_member(s, m.id, to_union_id=target.id, audit=audit, reason=reason)
        name = target.name
    if not t.changed:
        console.print(f"member {t.old.id} was already transferred to {name} (member {t.new.id})")
        return
    how = "new member" if t.created else "existing member"
    console.print(f"[green]member {t.old.id}[/green] {t.old.id_masked} transferred to {name}: "
                  f"{how} {t.new.id} ({t.new.status})")


def _print_duplicates(dups) -> None:
    if not dups:
        return
    console.print(f"[yellow]{len(dups)} people are members of more than one union "
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

    from civicvoucher.errors import RowError
    from civicvoucher.merchants.rules import (
        MERCHANT_ALIASES,
        MerchantStatus,
        validate_merchant_rows,
    )
    from civicvoucher.merchants.service import add_merchants, registry_errors

    table = read_table(file, aliases=MERCHANT_ALIASES)
    rows, errors = validate_merchant_rows(table)
    if activate:
        rows = [(n, replace(r, status=MerchantStatus.ACTIVE)) for n, r in rows]
    with database().session() as s:
        # every error at once: the file's own, and the registry's (map, registered already)
        errors += [RowError(e.row, table.label(e.field), e.reason)
                   for e in registry_errors(s, rows)]
        if errors:
            raise ImportRejected(sorted(errors, key=lambda e: (e.row, e.field)),
                                 total_rows=len(table.rows))
        n = add_merchants(s, rows)
        audit(s, "merchant.import", f"file:{file.name}"[:200], {"registered": n,
                                                               "activated": activate})
    console.print(f"[green]registered {n} merchants[/green]")


@merchant_app.command("status")
def merchant_status(merchant: str, status: str = typer.Argument(..., help="pending, active or suspended")) -> None:
    """Activate or suspend a merchant."""
    from civicvoucher.merchants.service import find_merchant, set_status

    with database().session() as s:
        m = set_status(s, merchant_id=find_merchant(s, merchant).id, status=status)
        console.print(f"{m.name}: {m.status}")
