"""Alembic owns the schema on SQLite and PostgreSQL: ``civicvoucher db upgrade`` runs this.

Every command opens its database through ``upgrade``; a database already at the head is
recognised without Alembic (importing it and its scripts, and every model through
``migrations/env.py``, costs each command about 0.4 s): the head is read off the version
files' ``revision`` / ``down_revision`` lines, and anything unusual there (a merge, a branch,
a line not written as Alembic writes it) leaves the decision to Alembic.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_LINE = re.compile(r"^(revision|down_revision|branch_labels|depends_on)"
                   r"(?:\s*:\s*[^=]+)?\s*=\s*(.+?)\s*$", re.M)
_QUOTED = re.compile(r"""^(['"])([\w.-]+)\1$""")


@cache
def script_head() -> str | None:
    """The single head revision of the version files, or None when that is not plain."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(VERSIONS.glob("*.py")):
        found = dict(_LINE.findall(path.read_text(encoding="utf-8")))
        rev = _QUOTED.match(found.get("revision", ""))
        down = found.get("down_revision", "")
        if rev is None or found.get("branch_labels", "None") != "None" \
                or found.get("depends_on", "None") != "None":
            return None
        if down != "None":
            if (parent := _QUOTED.match(down)) is None:
                return None  # a merge (a tuple of parents) or something else: ask Alembic
            parents.add(parent.group(2))
        revisions.add(rev.group(2))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def at_head(engine: Engine) -> bool:
    """Whether the database's one recorded revision is the scripts' head (read only)."""
    head = script_head()
    if head is None:
        return False
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions == [head]


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "civicvoucher:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent: a current database is left as it is)."""
    if revision == "head" and at_head(engine):
        # what Alembic's env.py does on every run, and callers rely on: every model mapped
        # (a relationship or foreign key to a class nobody imported fails at first use)
        import civicvoucher.models  # noqa: F401

        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
