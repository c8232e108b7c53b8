"""Idempotency-Key for every mutating call.

The key row is claimed first, in its own committed transaction, under a unique (user, key)
constraint: of many concurrent duplicates exactly one inserts it (state ``in_progress``) and
runs; the others wait for it to be ``done`` and answer its stored response with
``Idempotent-Replayed: true``. The same key with another request body is refused with 409
``idempotency_key_reused``. A request that ends in a server fault releases its key so the
client can retry. Keys are kept for ``TTL`` (24 hours), then may be reused.

A claim is owned through a fencing token, a random ``claim_token`` stored in the row: only the
request holding the current token may store the answer (``complete``) or give the key back
(``release``). While the owner runs, the route's heartbeat refreshes ``locked_at`` every
``HEARTBEAT`` (``extend``), so a long request (a big import, a settlement run) keeps its claim
however long it takes, and its duplicates wait, then get 409
``idempotency_request_in_progress``, instead of running it again. Only a claim not refreshed
for ``STALE`` (its worker died) is taken over, under a new token: should the old owner still
finish, its answer is not stored and its release deletes nothing. A key found expired is
deleted and claimed anew; when two requests do that at once, the one that does not win the
insert waits for the winner like any duplicate; no request ever runs without a claim.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
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
STALE = timedelta(minutes=5)  # a claim not refreshed this long belongs to a dead worker
HEARTBEAT = 30.0  # seconds between refreshes of a running request's claim (well under STALE)
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
    token: str | None = None  # the fencing token that proves ownership of record_id


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


def claim_in(session: Session, *, user_id: int, key: str, rh: str) -> Claim | IdempotencyRecord:
    """One attempt inside the caller's transaction: our claim, or the row that holds the key
    (the caller then waits for it). Never a claim without a record or a replay."""
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
        if row.request_hash != rh:
            raise IdempotencyConflict(f"Idempotency-Key {key} was used for another request")
        if row.state == "done":
            return Claim(None, replay=stored_response(row))
        if row.locked_at <= now - STALE:  # the worker that claimed it died: take it over
            token = secrets.token_hex(16)
            taken = session.execute(
                update(K).where(K.c.id == row.id, K.c.state == "in_progress",
                                K.c.locked_at == row.locked_at,
                                _token_is(row.claim_token)).values(locked_at=now,
                                                                   claim_token=token)
            ).rowcount
            if taken == 1:
                return Claim(row.id, token=token)
        return row
    raise IdempotencyInFlight("a request with this Idempotency-Key is being claimed by "
                              "another; retry shortly", retry_after=1)


def _token_is(token: str | None):
    return K.c.claim_token.is_(None) if token is None else K.c.claim_token == token


def _mine(claim: Claim):
    return (K.c.id == claim.record_id, K.c.state == "in_progress", _token_is(claim.token))


def extend(db: Database, claim: Claim) -> bool:
    """The owner's heartbeat: keep the claim fresh while the request runs. False once the
    claim is no longer ours (taken over, or released)."""
    return db.run(lambda s: s.execute(
        update(K).where(*_mine(claim)).values(locked_at=clock.now())).rowcount) == 1


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


def complete(db: Database, claim: Claim, response: Response) -> bool:
    """Store the answer (server faults and rate limits release the key instead). Only the
    current owner's answer is stored: False if the claim was taken over meanwhile."""
    if response.status_code >= 500 or response.status_code == 429:
        return release(db, claim)
    return db.run(lambda s: s.execute(update(K).where(*_mine(claim)).values(
        state="done", status_code=response.status_code,
        content_type=response.headers.get("content-type"), body=bytes(response.body),
        location=response.headers.get("location"),
    )).rowcount) == 1


def release(db: Database, claim: Claim) -> bool:
    """Give the key back so the client can retry; a claim taken over is not ours to delete."""
    return db.run(lambda s: s.execute(delete(K).where(*_mine(claim))).rowcount) == 1
