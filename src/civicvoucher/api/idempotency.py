"""Idempotency-Key for every mutating call.

The key row is claimed first, in its own committed transaction, under a unique (user, key)
constraint: of many concurrent duplicates exactly one owns it (state ``in_progress``) and
runs; the others wait for it to be ``done`` and answer its stored response with
``Idempotent-Replayed: true``. The same key with another request body is refused with 409
``idempotency_key_reused``. A request that ends in a server fault releases its key so the
client can retry. Keys are kept for ``TTL`` (24 hours), then may be reused.

Who owns a key, and when an owner is gone, is decided by a lock that the operating system or
the database frees the moment the owner dies, never by a clock:

* **PostgreSQL**: the owner holds a session-level advisory lock (``pg_try_advisory_lock`` on a
  64-bit hash of user and key) on a connection of its own (``autocommit``, from a small pool
  beside the main one) from before it claims the row until after it has stored the answer or
  released the key. When the worker is killed, its host dies, PostgreSQL restarts or the
  connection is cut, the backend ends and the lock is gone at once. (A silent network
  partition is noticed by TCP keepalive, which the lock connection sets to about 25 s.)
* **SQLite** (one machine): the same with a POSIX record lock (``fcntl``), one byte per key at
  an offset given by the hash, on a lock file beside the database (``<file>.idempotency-lock``):
  the kernel drops a dead process's locks. Within a process a set of held keys excludes
  threads (POSIX record locks belong to the process). Without ``fcntl`` (Windows) or for an
  in-memory database only the in-process lock remains: sound for the single server process
  such a deployment has.

A request first takes the key's lock, then claims the row. Holding the lock, it may trust
what it reads: no row, a fresh claim; ``done``, a replay; ``in_progress``, a claim whose owner
died (it held the lock while in progress), taken over at once under a new fencing token. A
duplicate that cannot get the lock waits (``WAIT_SECONDS``), looking at the row (without
writing it) and trying the lock again; when the owner finishes it replays the answer; if the
owner is still running at the end, 409 ``idempotency_request_in_progress``.

A claim is owned through its fencing token, a random ``claim_token`` stored in the row: only
the request holding the current token may store the answer (``complete``) or give the key back
(``release``), so an owner that lost its lock but not its life (its lock connection alone was
cut) cannot overwrite the answer of the request that took over.

A retry after a crash is answered promptly and correctly. If the first attempt died before its
effect committed, the retry runs afresh. If it died after (between the service's commit and
``complete``), the retry runs the route again, and the domain service, which is idempotent on
the key the route derives from the Idempotency-Key (``Ctx.service_key``: redeem, refund,
deposit, issue, expire, extend, settle), answers its first result; capture and void are
idempotent by the redemption's state. Routes whose service keeps no key of its own (creating an
org, a user, an import) run again and meet their own uniqueness rules ("already exists").

On PostgreSQL an owner thus holds one extra connection (the lock's) while it runs; the lock
pool holds at most 40 per process and one idle, and is disposed with its ``Database``.

When the database cannot be reached while claiming, completing or releasing, the client gets
503 ``database_unavailable`` (problem+json, ``Retry-After``), never plain text; the row left
``in_progress`` has no lock holder any more, so the retry takes it over.

A stored answer never holds a secret. Response models mark the fields that carry one with
``core.sealed.SHOWN_ONCE`` (an API token, a channel secret at creation): ``complete`` stores
the body with every such field set to null and names them in ``withheld``. The replay answers
that body with ``X-CV-Secret-Withheld: token`` (the JSON paths, comma-separated): the secret
was shown once, to the first answer, and is kept nowhere; a client that lost it revokes the
token and makes a new one. Which fields are shown once is read from the marks on the models
of ``api.schemas`` (``shown_once_fields``); a field of that name anywhere in a stored JSON
answer is withheld, so a name that is secret in one model must be secret in all (a test
checks it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from sqlalchemy import create_engine, delete, event, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher.auth.errors import IdempotencyInFlight
from civicvoucher.auth.models import IdempotencyRecord
from civicvoucher.core import clock
from civicvoucher.core.sealed import ShownOnce
from civicvoucher.db import Database, scrub_error
from civicvoucher.errors import IdempotencyConflict, ValidationError
from civicvoucher.i18n import N_, msg

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

K = IdempotencyRecord.__table__
TTL = timedelta(hours=24)
WAIT_SECONDS = 30.0  # how long a duplicate waits for a live owner before 409 in progress
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
HEADER = "Idempotency-Key"
WITHHELD_HEADER = "X-CV-Secret-Withheld"
log = logging.getLogger(__name__)


def check_key(key: str | None) -> str:
    if key is None:
        raise ValidationError(N_("this call changes data: send an Idempotency-Key header "
                                 "(a UUID per logical operation)"), field=HEADER,
                              code="idempotency_key_required")
    if not KEY_PATTERN.fullmatch(key):
        raise ValidationError(N_("Idempotency-Key must be 1-200 printable ASCII characters"),
                              field=HEADER, code="idempotency_key_required")
    return key


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), canonical):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def lock_id(user_id: int, key: str) -> int:
    """A signed 64-bit number for the (user, key) pair: the advisory lock key."""
    digest = hashlib.sha256(b"civicvoucher idempotency\0%d\0%s" % (user_id, key.encode()))
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


# --- the owner's lock ---------------------------------------------------------------------


class KeyLock:
    """The lock of one key, held for the life of one request. ``acquire`` never blocks."""

    def __init__(self, locker: _Locker, lid: int) -> None:
        self.locker, self.lid, self.held = locker, lid, False

    def acquire(self) -> bool:
        if not self.held:
            self.held = self.locker.try_lock(self)
        return self.held

    def release(self) -> None:
        if self.held:
            self.held = False
            self.locker.unlock(self)


class _Locker:
    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.held: set[int] = set()  # excludes this process's threads from each other

    def lock(self, user_id: int, key: str) -> KeyLock:
        return KeyLock(self, lock_id(user_id, key))

    def try_lock(self, kl: KeyLock) -> bool:
        with self.mutex:
            if kl.lid in self.held:
                return False
            self.held.add(kl.lid)
        ok = False
        try:
            ok = self._os_lock(kl)
        finally:
            if not ok:
                with self.mutex:
                    self.held.discard(kl.lid)
        return ok

    def unlock(self, kl: KeyLock) -> None:
        try:
            self._os_unlock(kl)  # first: a POSIX lock is the whole process's
        finally:
            with self.mutex:
                self.held.discard(kl.lid)

    def _os_lock(self, kl: KeyLock) -> bool:
        return True

    def _os_unlock(self, kl: KeyLock) -> None:
        return None


class _FileLocker(_Locker):
    """POSIX record locks on one byte per key of a lock file (SQLite). One per file per
    process: closing any descriptor of the file would drop all of the process's locks."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        weakref.finalize(self, os.close, self.fd)  # when no database and no lock uses it

    def _offset(self, kl: KeyLock) -> int:
        return kl.lid & ((1 << 62) - 1)

    def _os_lock(self, kl: KeyLock) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset(kl))
        except OSError:  # EAGAIN / EACCES: another process holds it
            return False
        return True

    def _os_unlock(self, kl: KeyLock) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self._offset(kl))


class _PgLocker(_Locker):
    """Session advisory locks, each on a connection of its own kept for the request."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.conns: dict[int, Connection] = {}

    def _os_lock(self, kl: KeyLock) -> bool:
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": kl.lid}).scalar()
        except Exception:
            _discard(conn)
            raise
        if not got:
            conn.close()
            return False
        self.conns[kl.lid] = conn
        return True

    def _os_unlock(self, kl: KeyLock) -> None:
        conn = self.conns.pop(kl.lid, None)
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": kl.lid})
            conn.close()
        except Exception:  # the connection is gone, and the lock with it
            _discard(conn)


def _discard(conn: Connection) -> None:
    try:
        conn.invalidate()
        conn.close()
    except Exception:  # pragma: no cover - best effort
        pass


_lockers: weakref.WeakKeyDictionary[Database, _Locker] = weakref.WeakKeyDictionary()
_file_lockers: weakref.WeakValueDictionary[str, _FileLocker] = weakref.WeakValueDictionary()
_lockers_mutex = threading.Lock()


def locker_for(db: Database) -> _Locker:
    with _lockers_mutex:
        got = _lockers.get(db)
        if got is None:
            got = _lockers[db] = _make_locker(db)
        return got


def _make_locker(db: Database) -> _Locker:
    url = db.engine.url
    if db.dialect == "postgresql":
        # the server notices a vanished client (and frees its lock) within ~25 s
        options = ("-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                   "-c tcp_keepalives_count=3")
        # its own small pool: owners waiting for work connections never starve it, nor it them
        engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1,
                               max_overflow=39, pool_timeout=10, pool_pre_ping=True,
                               hide_parameters=True,
                               connect_args={"connect_timeout": 5, "options": options,
                                             "application_name": "civicvoucher idempotency"})
        event.listen(engine, "handle_error", scrub_error)
        weakref.finalize(db, engine.dispose)
        return _PgLocker(engine)
    path = url.database
    if db.dialect == "sqlite" and fcntl is not None and path and path != ":memory:" \
            and not path.startswith("file:"):
        lock_path = os.path.abspath(path) + ".idempotency-lock"
        if (got := _file_lockers.get(lock_path)) is None:
            got = _file_lockers[lock_path] = _FileLocker(lock_path)
        return got
    return _Locker()


# --- the key row ----------------------------------------------------------------------------


@dataclass
class Claim:
    record_id: int | None  # set when this request owns the key and must run
    replay: Response | None = None
    token: str | None = None  # the fencing token that proves ownership of record_id
    lock: KeyLock | None = field(default=None, repr=False)

    def unlock(self) -> None:
        """Let go of the key's lock (after ``complete`` or ``release``, never before)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _insert(session: Session, user_id: int, key: str, rh: str) -> Claim | None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = clock.now()
    token = secrets.token_hex(16)
    stmt = insert(K).values(user_id=user_id, key=key, request_hash=rh, state="in_progress",
                            created_at=now, locked_at=now, expires_at=now + TTL,
                            claim_token=token)
    rid = session.execute(
        stmt.on_conflict_do_nothing(index_elements=["user_id", "key"]).returning(K.c.id)
    ).scalar()
    return Claim(rid, token=token) if rid is not None else None


def _holder(session: Session, user_id: int, key: str) -> IdempotencyRecord | None:
    return session.execute(
        select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                        IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    ).scalar()


def _check(row: IdempotencyRecord, key: str, rh: str) -> Claim | None:
    if row.request_hash != rh:
        raise IdempotencyConflict(msg("Idempotency-Key {key} was used for another request",
                                      key=key))
    if row.state == "done":
        return Claim(None, replay=stored_response(row))
    return None


def claim_in(session: Session, *, user_id: int, key: str, rh: str) -> Claim | IdempotencyRecord:
    """Claim the key inside the caller's transaction, the caller holding the key's lock: our
    claim (a new row, an expired one started afresh, or a dead owner's taken over), or the
    replay of a stored answer. Returns the row that holds the key only if a request that does
    not hold the lock inserted it meanwhile (which ``claim`` never does)."""
    if random.random() < 0.005:  # keys outlive their TTL only a little
        session.execute(delete(K).where(K.c.expires_at < clock.now()))
    for _ in range(3):
        if (mine := _insert(session, user_id, key, rh)) is not None:
            return mine
        row = _holder(session, user_id, key)
        if row is None:  # deleted (expired) between our insert and our read: try again
            continue
        now = clock.now()
        if row.expires_at <= now:  # an old key: start afresh, unless someone else just did
            session.execute(delete(K).where(K.c.id == row.id, K.c.expires_at <= now))
            continue
        if (done := _check(row, key, rh)) is not None:
            return done
        # in progress, and we hold the lock its owner held while running: the owner is gone
        token = secrets.token_hex(16)
        taken = session.execute(
            update(K).where(K.c.id == row.id, K.c.state == "in_progress",
                            _token_is(row.claim_token)).values(locked_at=now, claim_token=token)
        ).rowcount
        if taken == 1:
            log.info("idempotency key %s of user %s: its owner is gone, taken over",
                     row.id, user_id)
            return Claim(row.id, token=token)
        return row
    raise IdempotencyInFlight(N_("a request with this Idempotency-Key is being claimed by "
                                 "another; retry shortly"), retry_after=1)


def peek(session: Session, *, user_id: int, key: str, rh: str) -> Claim | None:
    """What a duplicate waiting for the lock may do without it: read, never write."""
    row = _holder(session, user_id, key)
    if row is None or row.expires_at <= clock.now():
        return None
    return _check(row, key, rh)


def claim(db: Database, *, user_id: int, key: str, rh: str,
          timeout: float | None = None) -> Claim:
    """Own the key (``record_id`` set, its lock held: the caller runs, then ``complete`` or
    ``release``, then ``unlock``), or the replay of its answer. A duplicate of a request still
    running waits up to ``timeout`` (``WAIT_SECONDS``), then 409 in progress."""
    lock = locker_for(db).lock(user_id, key)
    deadline = time.monotonic() + (WAIT_SECONDS if timeout is None else timeout)
    delay = 0.005
    while True:
        if lock.acquire():
            try:
                got = db.run(claim_in, user_id=user_id, key=key, rh=rh)
            except BaseException:
                lock.release()
                raise
            if isinstance(got, Claim) and got.record_id is not None:
                got.lock = lock
                return got
            lock.release()
            if isinstance(got, Claim):
                return got
        else:
            seen = db.run(peek, user_id=user_id, key=key, rh=rh)
            if seen is not None:
                return seen
        if time.monotonic() >= deadline:
            raise IdempotencyInFlight(N_("a request with this Idempotency-Key is still being "
                                         "processed; retry shortly"), retry_after=1)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def _token_is(token: str | None):
    return K.c.claim_token.is_(None) if token is None else K.c.claim_token == token


def _mine(claim: Claim):
    return (K.c.id == claim.record_id, K.c.state == "in_progress", _token_is(claim.token))


def stored_response(row: IdempotencyRecord) -> Response:
    headers = {"Idempotent-Replayed": "true"}
    if row.location:
        headers["Location"] = row.location
    if row.withheld:
        headers[WITHHELD_HEADER] = row.withheld
    return Response(content=row.body or b"", status_code=row.status_code or 200,
                    media_type=row.content_type, headers=headers)


@cache
def shown_once_fields() -> frozenset[str]:
    """The JSON names of every response field marked ``SHOWN_ONCE`` in ``api.schemas``."""
    from pydantic import BaseModel

    from civicvoucher.api import schemas

    return frozenset(
        f.serialization_alias or f.alias or name
        for model in vars(schemas).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, f in model.model_fields.items()
        if any(isinstance(m, ShownOnce) for m in f.metadata))


def _withhold(node, path: str, names: frozenset[str], found: list[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else k
            if k in names and v is not None:
                node[k] = None
                found.append(here)
            else:
                _withhold(v, here, names, found)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _withhold(v, f"{path}.{i}" if path else str(i), names, found)


def storable_body(body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """What may be kept of an answer: ``body`` with its shown-once fields nulled, and their
    paths (None when it had none). Bytes are kept as they are unless something is withheld."""
    names = shown_once_fields()
    if "json" not in (content_type or "") or not any(f'"{n}"'.encode() in body for n in names):
        return body, None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, None
    found: list[str] = []
    _withhold(doc, "", names, found)
    if not found:
        return body, None
    # rendered as Starlette's JSONResponse renders
    out = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return out, ",".join(found)[:200]


def complete(db: Database, claim: Claim, response: Response) -> bool:
    """Store the answer (server faults and rate limits release the key instead), its
    shown-once secrets withheld. Only the current owner's answer is stored: False if the
    claim was taken over meanwhile."""
    if response.status_code >= 500 or response.status_code == 429:
        return release(db, claim)
    content_type = response.headers.get("content-type")
    body, withheld = storable_body(bytes(response.body), content_type)
    return db.run(lambda s: s.execute(update(K).where(*_mine(claim)).values(
        state="done", status_code=response.status_code, content_type=content_type, body=body,
        withheld=withheld, location=response.headers.get("location"),
    )).rowcount) == 1


def release(db: Database, claim: Claim) -> bool:
    """Give the key back so the client can retry; a claim taken over is not ours to delete."""
    return db.run(lambda s: s.execute(delete(K).where(*_mine(claim))).rowcount) == 1
