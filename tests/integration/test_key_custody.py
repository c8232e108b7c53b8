"""The key that hashes ID numbers belongs to the database, not to the folder a command runs in.

Run as a user would: the ``civicvoucher`` command in subprocesses, from different folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wipe

SHOW_KEY = ("from civicvoucher.cli.common import database, settings; database(); "
            "print(settings().secret_key.decode())")


def _env(url: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICVOUCHER_")
           and k != "XDG_CONFIG_HOME"}
    return env | {"CIVICVOUCHER_DATABASE_URL": url, "HOME": str(home)} | extra


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "civicvoucher"), *args]


@pytest.mark.pg
def test_on_postgresql_every_folder_gets_the_same_key_and_another_key_is_refused(
        pg_url, tmp_path):
    from civicvoucher.db import Database

    db = Database(pg_url)
    wipe(db)  # no fingerprint left by another test
    db.dispose()
    home, a, b = tmp_path / "home", tmp_path / "a", tmp_path / "b"
    for d in (home, a, b):
        d.mkdir()
    env = _env(pg_url, home)
    keys = [_run([sys.executable, "-c", SHOW_KEY], cwd, env) for cwd in (a, b)]
    assert [k.returncode for k in keys] == [0, 0], [k.stderr for k in keys]
    assert keys[0].stdout == keys[1].stdout  # one key, whatever the folder
    assert not list(a.iterdir()) and not list(b.iterdir())  # nothing secret left in either

    wrong = _run(_cli("db", "upgrade"), a, env | {"CIVICVOUCHER_SECRET_KEY": "another key, long enough"})
    assert wrong.returncode == 2
    assert "secret_key_mismatch" in wrong.stderr and "CIVICVOUCHER_SECRET_FILE" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    for f in (home / ".config" / "civicvoucher" / "keys").iterdir():
        f.unlink()  # the key was lost: refuse, never make a new one for a database in use
    lost = _run(_cli("db", "upgrade"), b, env)
    assert lost.returncode == 2 and "secret_key_missing" in lost.stderr, lost.stderr
    assert not (home / ".config" / "civicvoucher" / "keys").exists() or not list(
        (home / ".config" / "civicvoucher" / "keys").iterdir())

    db = Database(pg_url)
    wipe(db)
    db.dispose()


def test_on_sqlite_the_key_lives_beside_the_file_and_another_key_is_refused(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    env = _env(f"sqlite:///{data / 'cv.db'}", tmp_path)
    first = _run([sys.executable, "-c", SHOW_KEY], elsewhere, env)
    assert first.returncode == 0, first.stderr
    assert (data / ".civicvoucher-secret").read_text().strip() == first.stdout.strip()
    wrong = _run(_cli("db", "upgrade"), elsewhere,
                 env | {"CIVICVOUCHER_SECRET_KEY": "another key, long enough"})
    assert wrong.returncode == 2 and "secret_key_mismatch" in wrong.stderr, wrong.stderr
    pointed = _run(_cli("db", "upgrade"), elsewhere,
                   env | {"CIVICVOUCHER_SECRET_FILE": str(data / ".civicvoucher-secret")})
    assert pointed.returncode == 0, pointed.stderr


@pytest.mark.parametrize("make,code", [
    (lambda p: p.mkdir(), "secret_key_unreadable"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00 not text"), "secret_key_unreadable"),
    (lambda p: p.write_text(""), "secret_key_too_short"),
    (lambda p: p.write_text("short\n"), "secret_key_too_short"),
])
def test_a_bad_key_file_is_a_clear_refusal_never_a_traceback_nor_bound(tmp_path, make, code):
    key = tmp_path / "key"
    make(key)
    env = _env(f"sqlite:///{tmp_path / 'cv.db'}", tmp_path, CIVICVOUCHER_SECRET_FILE=str(key))
    r = _run(_cli("db", "upgrade"), tmp_path, env)
    assert r.returncode == 2 and code in r.stderr and "Traceback" not in r.stderr, r.stderr
    good = _env(f"sqlite:///{tmp_path / 'cv.db'}", tmp_path)  # nothing was bound to the bad key
    assert _run(_cli("db", "upgrade"), tmp_path, good).returncode == 0


def test_postgres_urls_are_read_as_psycopg_3():
    from civicvoucher.config import normalise_url

    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
