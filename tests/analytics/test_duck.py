"""DuckDB access: scanners come from the installed wheels, never from the network."""

from __future__ import annotations

import pytest

from civicvoucher.analytics import duck


def test_extensions_are_loaded_from_the_installed_wheels_with_autoinstall_off(sqlite_db):
    ext_dir = duck.extension_directory()
    assert any(ext_dir.rglob("sqlite_scanner.duckdb_extension"))
    assert any(ext_dir.rglob("postgres_scanner.duckdb_extension"))
    with duck.open_source(sqlite_db.url) as src:
        settings = dict(src.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN"
            " ('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
        assert settings == {"autoinstall_known_extensions": "false",
                            "autoload_known_extensions": "false"}
        path = src.con.execute(
            "SELECT install_path FROM duckdb_extensions()"
            " WHERE extension_name = 'sqlite_scanner' AND loaded").fetchone()[0]
        assert path.startswith(str(ext_dir))
        tables = {r[0] for r in src.con.execute(
            f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{src.alias}'"
        ).fetchall()}
        assert {"voucher", "redemption", "org", "member"} <= tables
    with duck.open_source(sqlite_db.url) as again:  # the source was detached, not leaked
        assert again.alias != src.alias
        names = {r[0] for r in again.con.execute("SELECT database_name FROM duckdb_databases()")
                 .fetchall()}
        assert src.alias not in names


def test_postgres_url_becomes_a_quoted_libpq_string():
    info = duck.libpq_conninfo("postgresql+psycopg://ana:p%27w%20d@db.local:6543/cv?sslmode=require")
    assert info == ("host='db.local' port='6543' dbname='cv' user='ana' password='p\\'w d'"
                    " sslmode='require'")
    assert duck.libpq_conninfo("postgresql+psycopg://postgres@127.0.0.1/x") == (
        "host='127.0.0.1' dbname='x' user='postgres'")


def test_unusable_sources_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError), duck.open_source(f"sqlite:///{tmp_path}/none.db"):
        pass
    with pytest.raises(ValueError, match="in-memory"), duck.open_source("sqlite://"):
        pass
    with pytest.raises(ValueError, match="unsupported"), duck.open_source("mysql://u@h/db"):
        pass
