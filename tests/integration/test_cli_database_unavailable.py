"""A database that is not there: one clear line (zh by default, English with --lang en) naming
the database (no password), what failed and what to do, with the exit code of every other
error (2); never SQLAlchemy's traceback.

In-process through ``cli.main.run`` (as the ``civicvoucher`` script calls it), so an escaping
exception fails the test instead of printing a traceback."""

from __future__ import annotations

import socket
import uuid

import pytest

from civicvoucher.cli import common
from tests.conftest import PG_ADMIN_URL, REQUIRE_PG, _pg_available

SERVER = PG_ADMIN_URL.rsplit("/", 1)[0]  # postgresql+psycopg://postgres@127.0.0.1:5432


def cli(monkeypatch, capsys, *args: str, url: str | None = None):
    """``civicvoucher ARGS`` in a shell that set no language: (exit code, stdout, stderr)."""
    from civicvoucher import i18n
    from civicvoucher.cli.main import run

    for var in (i18n.ENV, "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("CIVICVOUCHER_SECRET_KEY", "unavailable-test-key")
    if url is not None:
        monkeypatch.setenv("CIVICVOUCHER_DATABASE_URL", url)
    common.settings.cache_clear()
    common.database.cache_clear()
    try:
        with pytest.raises(SystemExit) as stop:
            run(list(args))
    finally:
        common.settings.cache_clear()
        common.database.cache_clear()
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "sqlalche.me" not in err, err
    return lines[0]


@pytest.fixture
def pg_server():
    if reason := _pg_available():
        if REQUIRE_PG:
            pytest.fail(f"{reason} (CIVICVOUCHER_REQUIRE_PG=1)")
        pytest.skip(reason)


@pytest.mark.pg
def test_a_missing_postgresql_database_says_createdb(monkeypatch, capsys, pg_server):
    name = f"cv_nosuch_{uuid.uuid4().hex[:8]}"
    code, _, err = cli(monkeypatch, capsys, "org", "list", url=f"{SERVER}/{name}")
    line = one_line(err)
    assert code == 2
    assert "[database_missing]" in line
    assert f"{SERVER}/{name}" in line  # which database
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in line  # what to do
    assert "不存在" in line  # in Chinese by default


@pytest.mark.pg
def test_the_demo_on_a_missing_database_in_english_hides_the_password(monkeypatch, capsys,
                                                                      pg_server):
    name = f"cv_nosuch_{uuid.uuid4().hex[:8]}"
    url = SERVER.replace("postgres@", "postgres:hunter2@") + f"/{name}"
    code, _, err = cli(monkeypatch, capsys, "demo", "--scale", "1.0", "--database-url", url,
                       "--reset", "--lang", "en")
    line = one_line(err)
    assert code == 2
    assert "hunter2" not in err
    assert f"postgresql+psycopg://postgres:***@127.0.0.1:5432/{name}" in line
    assert f"database {name} does not exist" in line and "createdb" in line


def test_no_server_at_the_address_asks_whether_it_is_running(monkeypatch, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/civicvoucher"
    code, _, err = cli(monkeypatch, capsys, "ledger", "verify", "--lang", "en", url=url)
    line = one_line(err)
    assert code == 2
    assert "[database_unreachable]" in line and url in line
    assert f"127.0.0.1:{port}" in line and "is the server running" in line


def test_a_sqlite_file_that_cannot_be_opened(monkeypatch, capsys, tmp_path):
    folder = tmp_path / "a-folder.db"
    folder.mkdir()  # a directory where the file should be
    code, _, err = cli(monkeypatch, capsys, "org", "list", url=f"sqlite:///{folder}")
    line = one_line(err)
    assert code == 2
    assert "[database_unavailable]" in line and str(folder) in line
    assert "SQLite" in line and "无法打开" in line
