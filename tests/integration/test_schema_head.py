"""The Alembic head is the models: a database upgraded to head differs from Base.metadata in
nothing autogenerate can see, on SQLite and PostgreSQL. Every helper adds migrations; this is
the guard that the models and the migrations say the same thing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from civicvoucher.models import Base


def test_head_matches_the_models(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], "\n".join(map(str, diff))


def test_postgres_operator_classes_are_in_the_database(db):
    """Autogenerate does not compare operator classes: check postgresql_ops by hand."""
    if db.dialect != "postgresql":
        return
    wanted = [(t.name, ix.name, ops) for t in Base.metadata.sorted_tables for ix in t.indexes
              if (ops := ix.dialect_options["postgresql"].get("ops"))]
    assert wanted, "the models declare no operator class (ix_org_path has one)"
    with db.engine.connect() as conn:
        for table, name, ops in wanted:
            ddl = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = :t "
                                    "AND indexname = :n"), {"t": table, "n": name}).scalar()
            assert ddl is not None, f"{name} missing on {table}"
            for column, opclass in ops.items():
                assert f"{column} {opclass}" in ddl, ddl
