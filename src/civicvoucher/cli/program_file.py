"""``civicvoucher program template``: a commented program file to start from."""

from __future__ import annotations

from pathlib import Path

import typer

from civicvoucher.cli.common import AS, console
from civicvoucher.cli.operations import program_app
from civicvoucher.i18n import localize, msg


@program_app.command("template")
def program_template_cmd(
    file: Path = typer.Argument(..., dir_okay=False, help="where to write, e.g. program.toml"),
    start: str = typer.Option(None, help="first local day it can be spent (default: today)"),
    days: int = typer.Option(90, min=1, max=3660, help="how many days it can be spent"),
    key: str = typer.Option("my-program", help="the program key commands will use"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a program file with every key explained (in Chinese and English), spendable from
    today."""
    from datetime import date

    from civicvoucher.core import clock
    from civicvoucher.errors import ValidationError
    from civicvoucher.programs.spec import parse_program_spec
    from civicvoucher.programs.template import program_template

    if file.exists() and not force:
        raise ValidationError(msg("{file} exists already (use --force to overwrite)",
                                  file=str(file)), field="file")
    try:
        first = date.fromisoformat(start) if start else clock.local_date(clock.now())
    except ValueError:
        raise ValidationError(msg("start must be a date like 2027-01-01, got {start}",
                                  start=repr(start)), field="start") from None
    text = program_template(start=first, days=days, key=key)
    import tomllib

    parse_program_spec(tomllib.loads(text))  # what we write must be a valid program file
    file.write_text(text, encoding="utf-8")
    console.print(localize(msg("wrote {file}: program {key}, spendable {first} to {last}",
                               file=str(file), key=key, first=str(first),
                               last=str(first.fromordinal(first.toordinal() + days - 1)))),
                  markup=False)


@program_app.command("update")
def program_update(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                               help="the edited program file (TOML)"),
                   _as: str = AS) -> None:
    """Change a program from its edited file (same key), until its first issuance (audited)."""
    from civicvoucher.cli.common import audit, database
    from civicvoucher.programs.spec import load_program_spec
    from civicvoucher.vouchers.issuance import revise_program

    spec = load_program_spec(file)
    with database().session() as s:
        program, changed = revise_program(s, spec=spec)
        if changed:
            audit(s, "program.update", f"program:{program.id}", {"key": program.key})
    done = (msg("program {key} updated", key=program.key) if changed else
            msg("program {key} unchanged", key=program.key))
    console.print(localize(done), markup=False)
