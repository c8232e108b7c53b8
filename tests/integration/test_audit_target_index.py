"""Migration 0010: ``audit_entry.target`` gets the index the voucher trace reads by, on
SQLite and PostgreSQL, and the downgrade takes it away again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from civicvoucher.db import Database
from civicvoucher.schema import alembic_config, current, upgrade


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
    upgrade(db.engine, "0010")
    assert current(db.engine) == "0010"
    assert _indexes(db)["ix_audit_entry_target"] == ["target"]
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM audit_entry WHERE target = 'issuance:1'")
                         ).scalar() == 1
    _downgrade(db, "0009")
    assert current(db.engine) == "0009" and "ix_audit_entry_target" not in _indexes(db)
    upgrade(db.engine)
    assert "ix_audit_entry_target" in _indexes(db)
