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

The same custody keeps the keys that seal secrets at rest (payment-channel secrets and
merchants' bank account numbers, ``core.sealed``): ``bind_key`` also binds the database's
sealing keyring. Its keys are

* ``h1``: an HKDF subkey of the ID-hash key (label "sealing key h1"), always there, so a
  deployment seals from its first start with nothing more to configure;
* the keys of the sealing-keys file (``CIVICVOUCHER_SEALING_KEYS_FILE``, default: the ID-hash
  key file's path plus ``.sealing-keys``), one ``<id> <64 hex>`` a line, the last the current
  one. ``civicvoucher keys new-sealing-key`` appends one; ``civicvoucher keys
  rotate-secrets`` seals every channel secret and every merchant's account number again under
  the current key; a key no value uses any more (``civicvoucher keys status``) may be deleted
  from the file.

``bind_key`` also seals what migration 0009 left in clear (``payment_channel.unsealed_secret``,
which a migration cannot seal: it has no key), audited, so nothing reads it after the first
start. docs/secrets.md has the whole procedure.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from civicvoucher.config import Settings
from civicvoucher.core import clock
from civicvoucher.core.sealed import DERIVED_ID, KEY_ID, Keyring, derive_key, key_id_of
from civicvoucher.db import Base, Database, is_postgres
from civicvoucher.errors import CivicVoucherError
from civicvoucher.i18n import Msg, msg

FINGERPRINT = "id_hash_key_fingerprint"
SEALING_FILE_ENV = "CIVICVOUCHER_SEALING_KEYS_FILE"


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


def _where(settings: Settings) -> str | Msg:
    if settings.secret_from_env:
        return "CIVICVOUCHER_SECRET_KEY"
    return msg("the file {path}", path=str(settings.secret_file))


def bind_key(db: Database, settings: Settings) -> bytes:
    """The key this database was first used with, or SecretKeyError. Records the fingerprint
    (and makes the default key file) for a database used for the first time."""
    with db.session() as s:
        row = s.get(DeploymentSetting, FINGERPRINT)
        known = row.value if row is not None else None
    have = settings.secret_from_env or settings.secret_file.exists()
    if not have:
        if known is not None:
            raise SecretKeyError(msg(
                "The ID-hash key is missing: this database is bound to a key (fingerprint"
                " {known}…) but {path} does not exist. Set CIVICVOUCHER_SECRET_KEY or point"
                " CIVICVOUCHER_SECRET_FILE at the file that holds it; do not make a new one.",
                known=known[:8], path=str(settings.secret_file)), code="secret_key_missing")
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
        raise SecretKeyError(msg(
            "Wrong ID-hash key: this database is bound to key {known}…, {where} holds key"
            " {mine}…; another key would hash the same person differently (and entitle them"
            " twice). Point CIVICVOUCHER_SECRET_KEY or CIVICVOUCHER_SECRET_FILE at this"
            " database's key.", known=known[:8], where=_where(settings), mine=mine[:8]))
    bind_sealing(db, key, settings)
    seal_leftovers(db, key)
    return key


MIN_KEY_CHARS = 12


def _read(settings: Settings) -> bytes:
    """The key, or SecretKeyError: unreadable, or too short to keep ID numbers secret (it
    also keys the audit chain)."""
    try:
        key = settings.secret_key
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(
            msg("cannot read the ID-hash key from {where}: {error}", where=_where(settings),
                error=str(exc)), code="secret_key_unreadable"
        ) from None
    if len(key) < MIN_KEY_CHARS:
        raise SecretKeyError(
            msg("the ID-hash key in {where} is too short ({n} characters, at least {least}; use"
                " 32 random bytes in hex: python -c 'import secrets;"
                " print(secrets.token_hex(32))')", where=_where(settings), n=len(key),
                least=MIN_KEY_CHARS), code="secret_key_too_short")
    return key


def _create(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))


# --- the sealing keyring --------------------------------------------------------------------

_LINE = re.compile(r"^([a-z0-9]{1,16})\s+([0-9a-f]{64})$")


def sealing_keys_file(settings: Settings) -> Path:
    env = os.environ.get(SEALING_FILE_ENV)
    if env:
        return Path(env).expanduser()
    return settings.secret_file.with_name(settings.secret_file.name + ".sealing-keys")


def read_sealing_keys(path: Path) -> dict[str, bytes]:
    """The file's keys in order (the last is current); {} when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.environ.get(SEALING_FILE_ENV):  # named but missing: never seal under h1 silently
            raise SecretKeyError(msg("the sealing-keys file {path} named by {var} does not exist",
                                     path=str(path), var=SEALING_FILE_ENV),
                                 code="sealing_keys_invalid") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(msg("cannot read the sealing-keys file {path}: {error}",
                                 path=str(path), error=exc.__class__.__name__),
                             code="sealing_keys_invalid") from None
    keys: dict[str, bytes] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None or m[1] == DERIVED_ID or m[1] in keys:
            raise SecretKeyError(
                msg("line {n} of the sealing-keys file {path} is not '<id> <64 hex>' with an id of"
                    " its own (not {derived})", n=n, path=str(path), derived=DERIVED_ID),
                code="sealing_keys_invalid")
        keys[m[1]] = bytes.fromhex(m[2])
    return keys


def keyring_for(secret_key: bytes, extra: dict[str, bytes] | None = None) -> Keyring:
    """``h1`` (the ID-hash key's sealing subkey) and the file's keys; the file's last key is
    current, else ``h1``."""
    keys = {DERIVED_ID: derive_key(secret_key, f"sealing key {DERIVED_ID}"), **(extra or {})}
    return Keyring(keys, list(extra)[-1] if extra else DERIVED_ID)


def bind_sealing(db: Database, secret_key: bytes, settings: Settings | None = None) -> Keyring:
    """Bind ``db``'s sealing keyring from the ID-hash key (and, given settings, the
    sealing-keys file). ``bind_key`` does this; callers that already hold the key (tests, a
    program embedding the API) may call it directly."""
    extra = read_sealing_keys(sealing_keys_file(settings)) if settings is not None else {}
    ring = keyring_for(secret_key, extra)
    db.bind_keyring(ring)
    return db.keyring


def add_sealing_key(settings: Settings) -> str:
    """Append a fresh key to the sealing-keys file (made 0600 if new); it becomes current for
    every process that starts after this. Returns its id."""
    path = sealing_keys_file(settings)
    have = read_sealing_keys(path)
    kid = "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if kid in have:
        raise SecretKeyError(msg("key {kid} exists already; try again in a second", kid=kid),
                             code="sealing_keys_invalid")
    assert KEY_ID.fullmatch(kid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a file made by hand may have been readable by others
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        if not have and os.fstat(fh.fileno()).st_size == 0:
            fh.write("# civicvoucher sealing keys: <id> <64 hex>, the last line is current "
                     "(docs/secrets.md)\n")
        fh.write(f"{kid} {secrets.token_hex(32)}\n")
    return kid


def _channels(session: Session):
    from civicvoucher.auth.models import PaymentChannel

    return PaymentChannel, session.execute(select(PaymentChannel)
                                           .order_by(PaymentChannel.id)).scalars().all()


def seal_leftovers(db: Database, secret_key: bytes) -> int:
    """Seal the channel secrets migration 0009 left in clear, and clear them: one audited
    transaction; a second process starting at the same time seals none twice."""
    from civicvoucher.audit.service import Actor, append, chain_key

    def run(s: Session) -> int:
        pc, rows = _channels(s)
        n = 0
        for ch in rows:
            if ch.unsealed_secret is None:
                continue
            sealed = db.keyring.seal(ch.unsealed_secret, context=pc.context(ch.user_id))
            n += s.execute(update(pc).where(pc.id == ch.id, pc.unsealed_secret.is_not(None))
                           .values(secret_sealed=sealed, unsealed_secret=None)).rowcount
        if n:
            append(s, key=chain_key(secret_key), actor=Actor("system", role="system",
                                                             scope="keys.bind_key"),
                   action="keys.channel_secrets.seal", target="payment_channel",
                   detail={"sealed": n, "key_id": db.keyring.current})
        return n

    return db.run(run)


def _merchant_accounts(session: Session):
    from civicvoucher.merchants.models import Merchant

    return Merchant, session.execute(select(Merchant).where(Merchant.account_sealed.is_not(None))
                                     .order_by(Merchant.id)).scalars().all()


def reseal_channel_secrets(session: Session, keyring: Keyring) -> dict[str, int]:
    """Seal every channel secret that is not under the current key again under it, in the
    caller's transaction: {old key id: how many}. Idempotent: a second run moves none. A
    secret whose key this process lacks stops the whole run (nothing is half done)."""
    pc, rows = _channels(session)
    moved: Counter[str] = Counter()
    for ch in rows:
        if ch.secret_sealed is None or not keyring.needs_reseal(ch.secret_sealed):
            continue
        old = ch.secret_sealed
        fresh = keyring.seal(ch.open_secret(keyring), context=pc.context(ch.user_id))
        if session.execute(update(pc).where(pc.id == ch.id, pc.secret_sealed == old)
                           .values(secret_sealed=fresh)).rowcount:
            moved[key_id_of(old)] += 1
    return dict(moved)


def reseal_merchant_accounts(session: Session, keyring: Keyring) -> dict[str, int]:
    """The same for merchants' bank account numbers (``merchant.account_sealed``): sealed again
    under the current key, bound to the same USCC; {old key id: how many}; idempotent."""
    mc, rows = _merchant_accounts(session)
    moved: Counter[str] = Counter()
    for m in rows:
        if not keyring.needs_reseal(m.account_sealed):
            continue
        old = m.account_sealed
        fresh = keyring.seal(m.open_account(keyring), context=mc.account_context(m.uscc))
        if session.execute(update(mc).where(mc.id == m.id, mc.account_sealed == old)
                           .values(account_sealed=fresh)).rowcount:
            moved[key_id_of(old)] += 1
    return dict(moved)


def sealing_status(session: Session, keyring: Keyring) -> dict:
    """Which keys the keyring has, which is current, and how many values each seals: channel
    secrets (``keys``) and merchants' account numbers (``accounts``); a key with neither may be
    deleted from the file. ``missing`` / ``accounts_missing``: values sealed under a key this
    process does not have; ``unsealed``: channel secrets still in clear."""
    _, rows = _channels(session)
    used = Counter(key_id_of(ch.secret_sealed) for ch in rows if ch.secret_sealed)
    _, merchants = _merchant_accounts(session)
    accounts = Counter(key_id_of(m.account_sealed) for m in merchants)
    return {"current": keyring.current, "keys": {k: used.get(k, 0) for k in keyring.key_ids},
            "accounts": {k: accounts.get(k, 0) for k in keyring.key_ids},
            "missing": {k: n for k, n in used.items() if k not in keyring.key_ids},
            "accounts_missing": {k: n for k, n in accounts.items() if k not in keyring.key_ids},
            "unsealed": sum(ch.unsealed_secret is not None for ch in rows)}
