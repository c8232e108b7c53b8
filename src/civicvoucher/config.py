"""Settings from the environment (CIVICVOUCHER_*). The embedded SQLite file is the default."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_FILE = "civicvoucher.db"
SECRET_FILE = ".civicvoucher-secret"


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: bytes

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _secret_key(data_dir: Path) -> bytes:
    """Key for hashing ID numbers: from CIVICVOUCHER_SECRET_KEY, else a file made once (0600).

    The key must stay the same for the life of a database, or the same person would hash
    differently and could be issued twice.
    """
    env = os.environ.get("CIVICVOUCHER_SECRET_KEY")
    if env:
        return env.encode()
    path = data_dir / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def load_settings(*, database_url: str | None = None) -> Settings:
    url = database_url or os.environ.get("CIVICVOUCHER_DATABASE_URL") or sqlite_url(DEFAULT_DB_FILE)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    data_dir = Path.cwd()
    if url.startswith("sqlite:///"):
        data_dir = Path(url.removeprefix("sqlite:///")).resolve().parent
        data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(database_url=url, secret_key=_secret_key(data_dir))
