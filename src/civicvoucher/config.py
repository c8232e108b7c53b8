"""Settings from the environment (CIVICVOUCHER_*). The embedded SQLite file is the default.

The ID-hash key's custody (where it lives, and why it must never change for a database) is
described in ``keys.py``; ``keys.bind_key`` checks it against the database before use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_FILE = "civicvoucher.db"
SECRET_FILE = ".civicvoucher-secret"


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_file: Path  # where the key is kept, unless it comes from the environment
    secret_from_env: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secret_key(self) -> bytes:
        """The key that hashes ID numbers (see keys.py for its custody)."""
        env = os.environ.get("CIVICVOUCHER_SECRET_KEY")
        if env:  # stripped like the file, so the same key is the same key either way
            return env.strip().encode()
        return self.secret_file.read_text(encoding="utf-8").strip().encode()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def default_secret_file(url: str) -> Path:
    """Beside a SQLite file; for a server database, one file per database in the user's
    configuration folder, the same from whatever folder a command runs."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent / SECRET_FILE
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = f"{u.host or 'localhost'}-{u.port or 'default'}-{u.database or 'default'}"
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "civicvoucher" / "keys" / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".key")


def normalise_url(url: str) -> str:
    """``postgresql://`` (and ``postgres://``) as psycopg 3 URLs; anything else as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def load_settings(*, database_url: str | None = None) -> Settings:
    url = normalise_url(database_url or os.environ.get("CIVICVOUCHER_DATABASE_URL")
                        or sqlite_url(DEFAULT_DB_FILE))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).resolve().parent.mkdir(parents=True, exist_ok=True)
    file = os.environ.get("CIVICVOUCHER_SECRET_FILE")
    return Settings(database_url=url,
                    secret_file=Path(file).expanduser() if file else default_secret_file(url),
                    secret_from_env=bool(os.environ.get("CIVICVOUCHER_SECRET_KEY")))
