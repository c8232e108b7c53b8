"""What the command line loads before it does anything: the heavy libraries come in with the
command that needs them, never with ``--help`` (each ``civicvoucher ...`` pays its imports
before it starts; the README tour runs forty commands).

Structural, not timed: a fresh interpreter imports the CLI entry, runs the help, and lists
what ``sys.modules`` holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# the analytics engine, the API, spreadsheets, PDFs, QR codes, fake people, password hashing,
# the server, the database layer and its migrations, the catalogue compiler
HEAVY = ("duckdb", "fastapi", "starlette", "openpyxl", "reportlab", "segno", "faker", "argon2",
         "uvicorn", "jinja2", "sqlalchemy", "alembic", "psycopg", "babel", "stdnum")
# what every subcommand's --help may load: typer (0.29) coerces parameters with pydantic
SUBCOMMAND_ALLOWED = {"pydantic"}

HELPS = [["--help", "--lang", "en"], ["org", "list", "--help"], ["demo", "--help"],
         ["report", "--help"], ["serve", "--help"], ["voucher", "export", "--help"],
         ["member", "import", "--help"], ["settle", "--help"]]

# One fresh interpreter runs every help in turn and then a real command, listing what is
# loaded after each (modules only accumulate: what a help lists, the helps before it loaded).
PROBE = """
import json, sys
from civicvoucher.cli.main import run
for args in json.loads(sys.argv[1]):
    try:
        run(args)
    except SystemExit:
        pass
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> list[set[str]]:
    """Top-level modules loaded after each of HELPS, then after ``org list`` on a database."""
    from civicvoucher.i18n import catalogue

    # the first command of an installation compiles the catalogue (Babel) and keeps it in the
    # cache folder; every later one reads the kept file: that is the start measured here
    catalogue.translations.cache_clear()
    catalogue.translations("zh")
    if not (kept := catalogue._cache_file("zh")) or not kept.is_file():
        pytest.skip("the cache folder cannot be written: every command compiles the catalogue")
    db = tmp_path_factory.mktemp("startup") / "cv.db"
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps([*HELPS, ["org", "list"]])],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CIVICVOUCHER_DATABASE_URL": f"sqlite:///{db}",
                            "CIVICVOUCHER_SECRET_KEY": "startup-test-key", "COLUMNS": "100"})
    assert r.returncode == 0, r.stderr[-2000:]
    found = [set(json.loads(line)) for line in r.stdout.splitlines() if line.startswith("[")]
    assert len(found) == len(HELPS) + 1, r.stdout[-2000:]
    return found


def test_importing_the_cli_and_its_help_loads_none_of_the_heavy_libraries(loaded):
    top = loaded[0]
    assert "civicvoucher" in top and "typer" in top  # the probe did run the command
    assert sorted(top & set(HEAVY)) == []
    assert "pydantic" not in top


def test_a_subcommand_help_loads_none_of_them_either(loaded):
    for args, mods in zip(HELPS[1:], loaded[1:-1], strict=True):
        assert sorted(mods & set(HEAVY) - SUBCOMMAND_ALLOWED) == [], args


def test_the_probe_sees_a_command_that_does_load_them(loaded):
    """The check can fail: a real command on a database loads the database layer."""
    assert "sqlalchemy" in loaded[-1]
