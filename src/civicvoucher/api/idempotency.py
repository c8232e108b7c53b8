"""Idempotency-Key for every mutating call.

The key row is claimed first, in its own committed transaction, under a unique (user, key)
constraint: of many concurrent duplicates exactly one inserts it (state ``in_progress``) and
runs; the others wait for it to be ``done`` and answer its stored response with
``Idempotent-Replayed: true``. The same key with another request body is refused with 409
``idempotency_key_reused``. A request that ends in a server fault releases its key so the
client can retry; a claim left ``in_progress`` by a crashed worker is taken over after
``STALE``. Keys are kept for ``TTL`` (24 hours), then may be reused.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher.auth.errors import IdempotencyInFlight
from civicvoucher.auth.models import IdempotencyRecord
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.errors import IdempotencyConflict, ValidationError

K = IdempotencyRecord.__table__
TTL = timedelta(hours=24)
STALE = timedelta(seconds=60)
WAIT_SECONDS = 30.0
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
HEADER = "Idempotency-Key"


def check_key(key: str | None) -> str:
    if key is None:
        raise ValidationError("this call changes data: send an Idempotency-Key header "
                              "(a UUID per logical operation)", field=HEADER,
                              code="idempotency_key_required")
    if not KEY_PATTERN.fullmatch(key):
        raise ValidationError("Idempotency-Key must be 1-200 printable ASCII characters",
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


@dataclass
class Claim:
    record_id: int | None  # set when this request owns the key and must run
    replay: Response | None = None


def _insert(session: Session, user_id: int, key: str, rh: str) -> int | None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = clock.now()
    stmt = insert(K).values(user_id=user_id, key=key, request_hash=rh, state="in_progress",
                            created_at=now, locked_at=now, expires_at=now + TTL)
    return session.execute(
        stmt.on_conflict_do_nothing(index_elements=["user_id", "key"]).returning(K.c.id)
    ).scalar()


def claim_in(session: Session, *, user_id: int, key: str, rh: str) -> Claim | IdempotencyRecord:
    """One attempt inside the caller's transaction: our claim, or the row that holds the key."""
    if random.random() < 0.005:  # keys outlive their TTL only a little
        session.execute(delete(K).where(K.c.expires_at < clock.now()))
    rid = _insert(session, user_id, key, rh)
    if rid is not None:
        return Claim(rid)
    row = session.execute(
        select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                        IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    ).scalar_one()
    now = clock.now()
    if row.expires_at <= now:  # an old key: start afresh
        session.execute(delete(K).where(K.c.id == row.id))
        return Claim(_insert(session, user_id, key, rh))
    if row.request_hash != rh:
        raise IdempotencyConflict(f"Idempotency-Key {key} was used for another request")
    if row.state == "done":
        return Claim(None, replay=stored_response(row))
    if row.locked_at <= now - STALE:  # the worker that claimed it died: take it over
        taken = session.execute(
            update(K).where(K.c.id == row.id, K.c.state == "in_progress",
                            K.c.locked_at == row.locked_at).values(locked_at=now)
        ).rowcount
        if taken == 1:
            return Claim(row.id)
    return row


def wait_for(db: Database, *, user_id: int, key: str, rh: str, first: IdempotencyRecord,
             timeout: float = WAIT_SECONDS) -> Claim:
    """A duplicate of a request still in flight: wait for its answer, then replay it."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
        got = db.run(claim_in, user_id=user_id, key=key, rh=rh)
        if isinstance(got, Claim):
            return got
    raise IdempotencyInFlight("a request with this Idempotency-Key is still being processed; "
                              "retry shortly", retry_after=1)


def stored_response(row: IdempotencyRecord) -> Response:
    headers = {"Idempotent-Replayed": "true"}
    if row.location:
        headers["Location"] = row.location
    return Response(content=row.body or b"", status_code=row.status_code or 200,
                    media_type=row.content_type, headers=headers)


def complete(db: Database, record_id: int, response: Response) -> None:
    """Store the answer (server faults and rate limits release the key instead)."""
    if response.status_code >= 500 or response.status_code == 429:
        release(db, record_id)
        return
    db.run(lambda s: s.execute(update(K).where(K.c.id == record_id).values(
        state="done", status_code=response.status_code,
        content_type=response.headers.get("content-type"), body=bytes(response.body),
        location=response.headers.get("location"),
    )))


def release(db: Database, record_id: int) -> None:
    db.run(lambda s: s.execute(delete(K).where(K.c.id == record_id)))
