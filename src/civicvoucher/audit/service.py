"""Appending to the audit log and verifying its chain.

Each entry's hash is HMAC-SHA256, keyed from the server's secret, over the previous entry's
hash and the entry's own fields. Editing an entry breaks its hash; deleting one leaves a gap
in the sequence (or a head that points past the last entry); rewriting the chain needs the
key, which is not in the database. Appends move the one-row ``audit_head`` with a single
UPDATE, which locks it until commit: entries get consecutive numbers in commit order. Callers
append at the end of their unit of work so that lock is held only for the commit.

The head also carries ``mac``, an HMAC with a key derived from the audit key over its
(seq, hash): deleting the newest entries and moving the head back to the new last entry needs
a MAC the database does not hold, so ``verify`` names it. What the MAC cannot catch is a head
rolled back to a state it really had (a copy of an older head row) together with the entries
after it, or everything deleted at once. Against that, export the head elsewhere now and then
(``civicvoucher audit head`` prints it: seq, hash, MAC) and check a later log against it with
``verify(..., anchor=(seq, hash))`` / ``civicvoucher audit verify --anchor SEQ:HASH``: the log
must still reach that entry, with that hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from civicvoucher.audit.models import AuditEntry, AuditHead
from civicvoucher.core import clock, testpoints
from civicvoucher.db import Database
from civicvoucher.i18n import Msg, Text, localize, msg

E = AuditEntry.__table__
H = AuditHead.__table__
GENESIS = "0" * 64


def chain_key(secret_key: bytes) -> bytes:
    """The audit chain's own key, derived so it differs from the ID-number hashing key."""
    return hmac.new(secret_key, b"civicvoucher audit chain v1", hashlib.sha256).digest()


def head_mac(key: bytes, seq: int, hash_: str) -> str:
    """The head's seal over (seq, hash), under its own subkey of the chain key (so no entry
    hash can ever double as a head MAC)."""
    sub = hmac.new(key, b"civicvoucher audit head v1", hashlib.sha256).digest()
    return hmac.new(sub, f"{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who did it, as the log records it (the API builds this from the principal)."""

    name: str
    user_id: int | None = None
    role: str | None = None
    scope: str | None = None
    request_id: str | None = None


SYSTEM = Actor("system")


def entry_hash(key: bytes, prev_hash: str, fields: dict) -> str:
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hmac.new(key, f"{prev_hash}|{blob}".encode(), hashlib.sha256).hexdigest()


def _fields(seq: int, created_at: datetime, actor: Actor, action: str, target: str | None,
            outcome: str, detail: dict) -> dict:
    return dict(seq=seq, created_at=created_at.isoformat(), actor=actor.name,
                actor_id=actor.user_id, role=actor.role, scope=actor.scope, action=action,
                target=target, outcome=outcome, request_id=actor.request_id, detail=detail)


def append(session: Session, *, key: bytes, actor: Actor, action: str, target: str | None = None,
           outcome: str = "ok", detail: dict | None = None) -> int:
    """Append one entry in the caller's transaction; returns its sequence number.

    A target built from what a caller sent (a path) keeps its control characters as escapes
    (a NUL becomes ``\\x00``): PostgreSQL refuses NUL in text, and a refusal must be recorded
    whatever the request looked like. (``detail`` is JSON, where they are escaped anyway.)"""
    target = _printable(target) if target is not None else None
    detail = json.loads(json.dumps(detail or {}, default=str))  # what the JSON column returns
    bump = update(H).where(H.c.id == 1).values(seq=H.c.seq + 1).returning(H.c.seq, H.c.hash)
    row = session.execute(bump).first()
    if row is None:  # an empty database whose head row was truncated away: start the chain
        _start_chain(session)
        row = session.execute(bump).one()
    seq, prev = row
    now = clock.now().replace(microsecond=0)
    fields = _fields(seq, now, actor, action, target, outcome, detail)
    h = entry_hash(key, prev, fields)
    session.execute(insert(E).values(
        seq=seq, created_at=now, actor=actor.name, actor_id=actor.user_id, role=actor.role,
        scope=actor.scope, action=action, target=target, outcome=outcome,
        request_id=actor.request_id, detail=detail, prev_hash=prev, hash=h,
    ))
    session.execute(update(H).where(H.c.id == 1).values(hash=h, mac=head_mac(key, seq, h)))
    return seq


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _start_chain(session: Session) -> None:
    if session.execute(select(E.c.seq).limit(1)).first() is not None:
        raise RuntimeError("audit_head is missing but entries exist: run `audit verify`")
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(H).values(id=1, seq=0, hash=GENESIS)
                    .on_conflict_do_nothing(index_elements=["id"]))


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str  # a Msg: English as a str, ``localize(reason)`` for a person

    @property
    def message(self) -> Msg:
        return msg("entry {seq}: {reason}", seq=self.seq, reason=Text(self.reason))

    def __str__(self) -> str:
        return str(self.message)

    def localized(self, lang: str | None = None) -> str:
        return localize(self.message, lang)


def _entries(session: Session, batch: int = 2000) -> Iterator:
    last = 0
    while True:
        rows = session.execute(
            select(E).where(E.c.seq > last).order_by(E.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    mac: str | None

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}:{self.mac or '-'}"


def read_head(session: Session) -> Head | None:
    """The head as stored: export it somewhere the database's writers cannot reach."""
    row = session.execute(select(H.c.seq, H.c.hash, H.c.mac).where(H.c.id == 1)).first()
    return Head(row.seq, row.hash, row.mac) if row else None


def verify(session: Session, *, key: bytes,
           anchor: tuple[int, str] | None = None) -> tuple[int, list[Break]]:
    """Walk the chain; returns (entries checked, breaks). No breaks: nothing edited or deleted
    (and, given an exported ``anchor`` (seq, hash), the log still reaches that entry).

    Give it a ``Database.snapshot()`` session: the entries and the head must be read at one
    moment, or an entry appended in between looks like entries deleted at the end."""
    breaks: list[Break] = []
    running, expected, n = GENESIS, 1, 0
    anchor_seen = anchor is None or anchor[0] == 0
    for r in _entries(session):
        n += 1
        if anchor is not None and r.seq == anchor[0]:
            anchor_seen = True
            if r.hash != anchor[1]:
                breaks.append(Break(r.seq, msg("is not the entry exported as the head then"
                                               " (chain rewritten)")))
        if r.seq != expected:
            missing = f"{expected}" if r.seq == expected + 1 else f"{expected}-{r.seq - 1}"
            breaks.append(Break(expected, msg("entries {missing} are missing (deleted)",
                                              missing=missing)))
            running = r.prev_hash
        elif r.prev_hash != running:
            breaks.append(Break(r.seq, msg("does not follow the previous entry (chain edited)")))
        fields = _fields(r.seq, r.created_at, Actor(r.actor, r.actor_id, r.role, r.scope,
                                                    r.request_id),
                         r.action, r.target, r.outcome, r.detail)
        if entry_hash(key, r.prev_hash, fields) != r.hash:
            breaks.append(Break(r.seq, msg("contents do not match its hash (edited): {action}"
                                           " by {actor}", action=r.action, actor=r.actor)))
        running, expected = r.hash, r.seq + 1
    testpoints.reached("audit.verify.before_head")
    if anchor is not None and not anchor_seen:
        breaks.append(Break(anchor[0], msg("the entry exported as the head then is gone (the"
                                           " log now ends at {last}: entries deleted)",
                                           last=expected - 1)))
    head = read_head(session)
    if head is None:
        if n:
            breaks.append(Break(expected - 1, msg("the chain head is gone (deleted)")))
    elif head.seq != expected - 1:
        breaks.append(Break(expected, msg("the log ends at {last} but {n} entries were written"
                                          " (entries at the end deleted)", last=expected - 1,
                                          n=head.seq)))
    elif head.hash != running:
        breaks.append(Break(head.seq, msg("the last entry is not the one the head recorded")))
    elif head.mac is None:
        if head.seq != 0:
            breaks.append(Break(head.seq, msg("the chain head is not sealed (its MAC was"
                                              " removed, or no entry was appended since"
                                              " migration 0003)")))
    elif not hmac.compare_digest(head.mac, head_mac(key, head.seq, head.hash)):
        breaks.append(Break(head.seq, msg("the chain head was rewritten without the audit key"
                                          " (entries at the end deleted?)")))
    return n, breaks


def verify_now(db: Database, *, key: bytes,
               anchor: tuple[int, str] | None = None) -> tuple[int, list[Break]]:
    """``verify`` in one snapshot of the database: what every door calls."""
    with db.snapshot() as s:
        return verify(s, key=key, anchor=anchor)
