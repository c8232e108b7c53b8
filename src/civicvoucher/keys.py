"""Custody of the key that hashes ID numbers: it belongs to the database, not to a folder.

Members are found and de-duplicated by a keyed hash of their ID number, so a database must see
one key for its whole life: a second key hashes every person differently, and the same roster
imported again would be entitled a second time. The key itself never enters the database;
its fingerprint (an HMAC of a fixed label under the key) does, in ``deployment_setting``, the
first time any process opens the database. From then on a process holding another key, or no
key at all, refuses to run, and says where the key is expected and how to point at it.

Where the key comes from (``config.load_settings``), first match wins:

1. ``CIVICVOUCHER_SECRET_KEY``: the key itself (servers: from the service manager's secret store);
2. ``CIVICVOUCHER_SECRET_FILE``: a file holding it;
3. the default file: beside the database file for SQLite (``.civicvoucher-secret``); for a
   server database, ``~/.config/civicvoucher/keys/<host>-<port>-<database>.key`` of the user
   running the command, the same whatever folder the command runs from.

A default file is created (mode 0600) only for a database that has no fingerprint yet.
Rotating the key means re-hashing every member under the new key; there is no command for that
yet, so keep the key with the database's backups (README: "The ID-hash key").
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import datetime

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.config import Settings
from civicvoucher.core import clock
from civicvoucher.db import Base, Database, is_postgres
from civicvoucher.errors import CivicVoucherError

FINGERPRINT = "id_hash_key_fingerprint"


class DeploymentSetting(Base):
    """Facts that belong to the database (migration 0005)."""

    __tablename__ = "deployment_setting"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SecretKeyError(CivicVoucherError):
    """The process's ID-hash key is missing or is not this database's key."""

    code = "secret_key_mismatch"
    http_status = 500


def fingerprint(key: bytes) -> str:
    return hmac.new(key, b"civicvoucher id-hash key fingerprint v1", hashlib.sha256).hexdigest()[:32]


def _where(settings: Settings) -> str:
    if settings.secret_from_env:
        return "CIVICVOUCHER_SECRET_KEY"
    return f"the file {settings.secret_file}"


def bind_key(db: Database, settings: Settings) -> bytes:
    """The key this database was first used with, or SecretKeyError. Records the fingerprint
    (and makes the default key file) for a database used for the first time."""
    with db.session() as s:
        row = s.get(DeploymentSetting, FINGERPRINT)
        known = row.value if row is not None else None
    have = settings.secret_from_env or settings.secret_file.exists()
    if not have:
        if known is not None:
            raise SecretKeyError(
                f"身份证号哈希密钥缺失：此数据库已绑定密钥（指纹 {known[:8]}…），但 "
                f"{settings.secret_file} 不存在。请设置 CIVICVOUCHER_SECRET_KEY，或用 "
                "CIVICVOUCHER_SECRET_FILE 指向保存该密钥的文件；不要新建密钥。"
                f" / The ID-hash key is missing: this database is bound to a key (fingerprint "
                f"{known[:8]}…) but {settings.secret_file} does not exist. Set "
                "CIVICVOUCHER_SECRET_KEY or point CIVICVOUCHER_SECRET_FILE at the file that "
                "holds it; do not make a new one.", code="secret_key_missing")
        _create(settings.secret_file)
    key = _read(settings)
    mine = fingerprint(key)
    if known is None:
        with db.session() as s:
            if is_postgres(s):
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            s.execute(insert(DeploymentSetting).values(
                name=FINGERPRINT, value=mine, created_at=clock.now()).on_conflict_do_nothing())
            known = s.execute(select(DeploymentSetting.value).where(
                DeploymentSetting.name == FINGERPRINT)).scalar_one()
    if not hmac.compare_digest(known, mine):
        raise SecretKeyError(
            f"身份证号哈希密钥不符：此数据库绑定的密钥指纹为 {known[:8]}…，而 {_where(settings)} "
            f"中的密钥指纹为 {mine[:8]}…。用另一个密钥会把同一个人算成另一个人（重复发券）。"
            "请用 CIVICVOUCHER_SECRET_KEY 或 CIVICVOUCHER_SECRET_FILE 指向此数据库的密钥。"
            f" / Wrong ID-hash key: this database is bound to key {known[:8]}…, {_where(settings)}"
            f" holds key {mine[:8]}…; another key would hash the same person differently (and "
            "entitle them twice). Point CIVICVOUCHER_SECRET_KEY or CIVICVOUCHER_SECRET_FILE at "
            "this database's key.")
    return key


MIN_KEY_CHARS = 12


def _read(settings: Settings) -> bytes:
    """The key, or SecretKeyError: unreadable, or too short to keep ID numbers secret (it
    also keys the audit chain)."""
    try:
        key = settings.secret_key
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(
            f"无法读取身份证号哈希密钥 {_where(settings)}：{exc.__class__.__name__} / cannot read "
            f"the ID-hash key from {_where(settings)}: {exc}", code="secret_key_unreadable"
        ) from None
    if len(key) < MIN_KEY_CHARS:
        raise SecretKeyError(
            f"身份证号哈希密钥太短（{len(key)} 个字符，至少 {MIN_KEY_CHARS} 个；建议 64 个十六进制字符："
            "python -c 'import secrets; print(secrets.token_hex(32))'） / the ID-hash key in "
            f"{_where(settings)} is too short ({len(key)} characters, at least {MIN_KEY_CHARS}; "
            "use 32 random bytes in hex)", code="secret_key_too_short")
    return key


def _create(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
