"""Migration 0010: ``audit_entry.target`` gets the index the voucher trace reads by, on
SQLite and PostgreSQL, and the downgrade takes it away again."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from civicvoucher.db import Database
from civicvoucher.schema import alembic_config, current, upgrade
from tests.conftest import PG_ADMIN_URL, REQUIRE_PG, _pg_available


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def blank_db(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'mig.db'}")
        yield db
        db.dispose()
        return
    if reason := _pg_available():
        if REQUIRE_PG:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"cv_test_0010_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _indexes(db: Database) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(db.engine).get_indexes("audit_entry")}


def _downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0010_indexes_the_audit_target_and_downgrades(blank_db):
    db = blank_db
    upgrade(db.engine, "0009")
    assert "ix_audit_entry_target" not in _indexes(db)
    with db.engine.begin() as c:  # an entry from before: the index is built over it
        c.execute(text(
            "INSERT INTO audit_entry (seq, created_at, actor, action, target, outcome, detail, "
            "prev_hash, hash) VALUES (1, '2026-01-01 00:00:00', 'x', 'issuance.create', "
            "'issuance:1', 'ok', '{}', :z, :z)"), {"z": "0" * 64})
    upgrade(db.engine)
    assert current(db.engine) == "0010"
    assert _indexes(db)["ix_audit_entry_target"] == ["target"]
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM audit_entry WHERE target = 'issuance:1'")
                         ).scalar() == 1
    _downgrade(db, "0009")
    assert current(db.engine) == "0009" and "ix_audit_entry_target" not in _indexes(db)
    upgrade(db.engine)
    assert "ix_audit_entry_target" in _indexes(db)
