"""Rate limits, failure caps and backoff, kept in the database (table ``rate_bucket``) so every
worker process and every server behind a load balancer shares them; no Redis needed.

One row per key. Four ways of using a row, each with its own functions:

- a **request limit** (``hit``): a fixed-window counter; past ``limit`` requests in ``window``
  the request is refused (429 ``rate_limited``). The refusal is still counted, and says
  whether it is the ``first`` of its window, so callers audit one refusal per window;
- a **failure lock** (``fail`` / ``succeed`` / ``check_locked``): failures since the last
  success; at ``threshold`` the key is locked for ``lock_for`` (429 ``locked_out``). Used for
  typed voucher codes and payment-channel callbacks;
- a **failure cap** (``failures`` / ``refuse_past_cap``): failures counted in a window of their
  own; while a window holds ``cap`` failures, the key is refused until the window ends
  (429 ``locked_out``). The cap decays by itself, so a shop's office that mistypes now and then
  never accumulates towards it. Used for logins per address and per username and address;
- a **backoff** (``slow_down`` / ``take_turn``): failures since the last success (forgotten
  ``forget`` after the last one); past ``after`` failures each attempt waits ``base``,
  doubling per failure up to ``cap``, and only one attempt at a time may take its turn
  (429 with ``Retry-After`` growing). It slows a key down, never locks it. Used per username.

Keys are built by ``bucket_key`` and are at most 200 characters by construction (the column is
``varchar(200)``): a long part is replaced by its hash. ``address_key`` groups IPv6 clients by
their /64, which is what one household or one server gets.

The limits (``Limits``) are set per deployment by ``CIVICVOUCHER_LIMIT_<FIELD>`` environment
variables, read once by ``Limits.from_env`` (durations in seconds); the defaults and the login
policy built from them are in ``docs/login-limits.md``. Typed voucher codes: 30 per minute per
cashier and per terminal, 10 unknown codes lock that cashier or terminal for 15 minutes, and
600 per minute per address as a backstop sized for a large shop behind one NAT address.
Payment-channel callbacks: 600 per minute per address, 20 bad signatures lock the address for
15 minutes. Voucher codes are 128 random bits, so even without the limits guessing is
hopeless; the limits stop the noise. ``prune`` deletes the rows that no longer matter.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, not_, or_, select
from sqlalchemy.orm import Session

from civicvoucher.auth.errors import RateLimited
from civicvoucher.auth.models import RateBucket
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, Msg, Text, msg, nmsg

B = RateBucket.__table__
MAX_KEY = 200  # rate_bucket.key is varchar(200)
MAX_PART = 64  # a key part longer than this is stored as its hash
ENV_PREFIX = "CIVICVOUCHER_LIMIT_"
MAY_BE_ZERO = {"login_hash_queue"}  # no login waits for a hashing slot; any other 0 would lock


@dataclass(frozen=True)
class Limits:
    """Every limit of the API. ``Limits.from_env()`` reads a deployment's overrides once:
    ``CIVICVOUCHER_LIMIT_<FIELD NAME IN CAPITALS>``, a whole number (durations: seconds,
    decimals allowed), e.g. ``CIVICVOUCHER_LIMIT_CODE_PER_IP=1200``."""

    window: timedelta = timedelta(minutes=1)  # the request limits' window
    lock_for: timedelta = timedelta(minutes=15)  # failure locks, and the failure caps' window
    # logins (docs/login-limits.md)
    login_per_ip: int = 60  # attempts per window from one address, whatever the username
    login_failures_per_ip: int = 30  # failed logins from one address per lock_for window
    login_failures_to_lock: int = 5  # wrong passwords at one username from one address
    login_backoff_after: int = 10  # failures at one username (anywhere) before it slows down
    login_backoff_base: timedelta = timedelta(seconds=1)  # the first wait, doubled per failure
    login_backoff_max: timedelta = timedelta(minutes=15)  # the longest wait
    login_backoff_forget: timedelta = timedelta(days=1)  # failures forgotten after this quiet
    login_trust_for: timedelta = timedelta(days=30)  # an address a user logged in from
    login_hash_slots: int = 2  # password hashes running at once, per worker process
    login_hash_queue: int = 6  # logins that may wait for a slot, per worker process
    login_hash_wait: timedelta = timedelta(seconds=2)  # how long one of them waits
    # typed voucher codes
    code_per_user: int = 30
    code_per_terminal: int = 30
    code_per_ip: int = 600
    code_failures_to_lock: int = 10
    # payment-channel callbacks
    callback_per_ip: int = 600
    callback_failures_to_lock: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        """The defaults with the deployment's ``CIVICVOUCHER_LIMIT_*`` overrides. A bad value
        is refused naming its variable (the server does not start on a typo)."""
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for var, raw in env.items():
            if not var.startswith(ENV_PREFIX):
                continue
            name = var.removeprefix(ENV_PREFIX).lower()
            if name not in known:
                raise ValidationError(msg("{var}: no such limit (known: {known})", var=var,
                                          known=", ".join(ENV_PREFIX + n.upper() for n in known)),
                                      field=var)
            text = raw.strip().replace("_", "")
            is_duration = isinstance(getattr(cls, name), timedelta)
            try:
                number = float(text) if is_duration else int(text)
            except ValueError:
                number = -1
            least = 0 if name in MAY_BE_ZERO else 1e-9
            if not (least <= number < 10**9) or not math.isfinite(number):
                if is_duration:
                    text = (msg("{var} must be a number of seconds, got {raw!r}", var=var, raw=raw)
                            if least == 0 else
                            msg("{var} must be a positive number of seconds, got {raw!r}",
                                var=var, raw=raw))
                else:
                    text = (msg("{var} must be a whole number, got {raw!r}", var=var, raw=raw)
                            if least == 0 else
                            msg("{var} must be a positive whole number, got {raw!r}", var=var,
                                raw=raw))
                raise ValidationError(text, field=var)
            values[name] = timedelta(seconds=number) if is_duration else number
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Count:
    """A bucket after a hit: requests in this window, failures since the last success."""

    hits: int
    failures: int


@dataclass(frozen=True)
class Bucket:
    """One row as read: ``window_start`` and ``hits`` (a window's count), ``failures`` and
    ``locked_until`` (a lock, or a backoff's next turn)."""

    key: str
    window_start: datetime
    hits: int
    failures: int
    locked_until: datetime | None


def bucket_key(kind: str, *parts: object) -> str:
    """``kind:part:part``, at most ``MAX_KEY`` characters whatever the parts: a part longer
    than ``MAX_PART`` is replaced by ``#`` and its SHA-256 (32 hex digits), so two long parts
    still get two buckets. ``kind`` is a constant of the caller (``login:ip``)."""
    out = [kind, *(t if len(t := str(p)) <= MAX_PART else hashed(t) for p in parts)]
    key = ":".join(out)
    if len(key) > MAX_KEY:  # many parts: one hash for them all
        key = f"{kind}:{hashed(':'.join(out[1:]))}"
    return key


def hashed(text: str, key: bytes = b"") -> str:
    """``#`` and 32 hex digits of SHA-256 (keyed, when ``key`` is given: a BLAKE2b MAC)."""
    data = text.encode("utf-8", "surrogatepass")
    h = (hashlib.blake2b(data, key=key[:64], digest_size=16) if key
         else hashlib.sha256(data))
    return "#" + h.hexdigest()[:32]


def address_key(ip: str) -> str:
    """The part of a client address that a limit counts: an IPv4 address as it is, an IPv6
    address by its /64 (one household or server gets a whole /64, so counting single
    addresses would let one client be millions). Anything else (a test client's name,
    ``unknown``) as it is; ``bucket_key`` bounds its length."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


# -- request limits ----------------------------------------------------------------------


def _upsert(session: Session, key: str, now: datetime, window: timedelta, *, hit: int,
            fail: int):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stale = B.c.window_start <= now - window
    stmt = insert(B).values(key=key, window_start=now, hits=hit, failures=fail, locked_until=None)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "hits": case((stale, hit), else_=B.c.hits + hit),
            "window_start": case((stale, now), else_=B.c.window_start),
            "failures": B.c.failures + fail,
        },
    ).returning(B.c.hits, B.c.failures, B.c.locked_until)
    return session.execute(stmt).one()


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def wait_text(seconds: float) -> Msg:
    """A wait as a person reads it: '45 seconds', '3 minutes', '2 hours' (rounded up)."""
    s = max(1, math.ceil(seconds))
    if s < 90:
        return nmsg("{n} second", "{n} seconds", s)
    if s < 90 * 60:
        return nmsg("{n} minute", "{n} minutes", math.ceil(s / 60))
    return nmsg("{n} hour", "{n} hours", math.ceil(s / 3600))


def refusal(why: str, retry_after: float) -> Msg:
    """``why`` (a constant message) and when to try again."""
    return msg("{why}; try again in {wait}", why=Text(why), wait=wait_text(retry_after))


def _locked(locked_until: datetime | None, now: datetime, key: str) -> None:
    if locked_until is not None and locked_until > now:
        wait = _retry_after(locked_until, now)
        raise RateLimited(refusal(N_("too many failures: locked"), wait), code="locked_out",
                          retry_after=wait, bucket=key)


def hit(db: Database, key: str, *, limit: int, window: timedelta) -> Count:
    """Count one request against ``key``; refuse if over ``limit`` or locked out. A refusal
    for the limit carries ``first=True`` for the one request that crossed it this window."""
    counted: list[Count] = []

    def run(s: Session) -> None:
        now = clock.now()
        hits, failures, locked_until = _upsert(s, key, now, window, hit=1, fail=0)
        counted.append(Count(hits, failures))
        _locked(locked_until, now, key)
        if hits > limit:
            seconds = int(window.total_seconds())
            raise RateLimited(msg("more than {limit} requests in {window}; try again in {wait}",
                                  limit=limit, window=wait_text(seconds),
                                  wait=wait_text(seconds)),
                              retry_after=seconds, bucket=key,
                              first=hits == limit + 1)

    _commit_even_if_refused(db, run)
    return counted[-1]


def _commit_even_if_refused(db: Database, fn) -> None:
    """Run ``fn`` and commit its count even when it refuses the request."""
    refused: list[RateLimited] = []

    def wrapped(s: Session) -> None:
        refused.clear()  # a retried transaction decides afresh
        try:
            fn(s)
        except RateLimited as exc:
            refused.append(exc)

    db.run(wrapped)
    if refused:
        raise refused[0]


# -- failure locks (codes, callbacks) ----------------------------------------------------


def fail(db: Database, key: str, *, threshold: int, lock_for: timedelta,
         window: timedelta) -> bool:
    """Count one failure; at ``threshold`` lock the bucket for ``lock_for``. True if locked."""

    def run(s: Session) -> bool:
        now = clock.now()
        _, failures, _ = _upsert(s, key, now, window, hit=0, fail=1)
        if failures >= threshold:
            s.execute(B.update().where(B.c.key == key)
                      .values(locked_until=now + lock_for, failures=0))
            return True
        return False

    return db.run(run)


def succeed(db: Database, key: str) -> None:
    db.run(lambda s: s.execute(B.update().where(B.c.key == key, B.c.failures > 0)
                               .values(failures=0)))


def check_locked(session: Session, key: str) -> None:
    until = session.execute(select(B.c.locked_until).where(B.c.key == key)).scalar()
    _locked(until, clock.now(), key)


# -- reading several buckets at once ---------------------------------------------------


def read(session: Session, keys: list[str]) -> dict[str, Bucket]:
    """The rows of ``keys`` that exist, in one query."""
    rows = session.execute(select(B.c.key, B.c.window_start, B.c.hits, B.c.failures,
                                  B.c.locked_until).where(B.c.key.in_(keys))).all()
    return {r.key: Bucket(r.key, r.window_start, r.hits, r.failures, r.locked_until)
            for r in rows}


def forget(session: Session, *keys: str) -> None:
    """Delete ``keys`` (a success clears the failures counted against it)."""
    session.execute(delete(B).where(B.c.key.in_(keys)))


def mark(session: Session, key: str, now: datetime) -> None:
    """Remember that something happened at ``now`` (the row's ``window_start``)."""
    _upsert(session, key, now, timedelta(0), hit=0, fail=0)


def marked_since(bucket: Bucket | None, since: datetime) -> bool:
    return bucket is not None and bucket.window_start > since


# -- failure caps (logins per address, per username and address) ------------------------


def failures(session: Session, key: str, *, window: timedelta, now: datetime) -> int:
    """Count one failure in ``key``'s window (``hits`` of its row); the count after it."""
    hits, _, _ = _upsert(session, key, now, window, hit=1, fail=0)
    return hits


def refuse_past_cap(bucket: Bucket | None, *, cap: int, window: timedelta, now: datetime,
                    why: str) -> None:
    """Refuse (429 ``locked_out``) while ``bucket``'s window holds ``cap`` failures; the
    refusal is not counted, so it never prolongs the wait."""
    if bucket is None or bucket.window_start <= now - window or bucket.hits < cap:
        return
    wait = _retry_after(bucket.window_start + window, now)
    raise RateLimited(refusal(why, wait), code="locked_out", bucket=bucket.key, retry_after=wait)


# -- backoff (logins per username) -------------------------------------------------------


def backoff_delay(failures: int, *, after: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after ``failures`` failures: none up to ``after``, then ``base`` doubling."""
    if failures < after:
        return timedelta(0)
    return min(base * 2 ** min(failures - after, 40), cap)


def slow_down(session: Session, key: str, *, after: int, base: timedelta, cap: timedelta,
              forget_after: timedelta, now: datetime) -> int:
    """Count one failure against ``key`` (starting again from one after ``forget_after``
    without any) and set its next turn; the failures so far."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    quiet = B.c.window_start <= now - forget_after
    stmt = insert(B).values(key=key, window_start=now, hits=0, failures=1, locked_until=None)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"failures": case((quiet, 1), else_=B.c.failures + 1), "window_start": now},
    ).returning(B.c.failures)
    n = session.execute(stmt).scalar_one()
    wait = backoff_delay(n, after=after, base=base, cap=cap)
    if wait:
        session.execute(B.update().where(B.c.key == key).values(locked_until=now + wait))
    return n


def take_turn(session: Session, bucket: Bucket | None, *, after: int, base: timedelta,
              cap: timedelta, forget_after: timedelta, now: datetime, code: str,
              why: str) -> None:
    """Let one attempt through a backoff: nothing to do below ``after`` failures; else refuse
    (429 ``code``, ``Retry-After`` the wait left) until the next turn, and at the turn claim
    it, so attempts arriving together get one turn between them, not one each."""
    if (bucket is None or bucket.failures < after
            or bucket.window_start <= now - forget_after):
        return
    if bucket.locked_until is not None and bucket.locked_until > now:
        wait = _retry_after(bucket.locked_until, now)
        raise RateLimited(refusal(why, wait), code=code, bucket=bucket.key, retry_after=wait)
    hold = backoff_delay(bucket.failures, after=after, base=base, cap=cap)
    claimed = session.execute(
        B.update().where(B.c.key == bucket.key,
                         or_(B.c.locked_until.is_(None), B.c.locked_until <= now))
        .values(locked_until=now + hold)).rowcount
    if not claimed:  # another attempt took this turn a moment ago
        wait = _retry_after(now + hold, now)
        raise RateLimited(refusal(why, wait), code=code, bucket=bucket.key, retry_after=wait)


# -- housekeeping ------------------------------------------------------------------------

TRUST_KINDS = ("login:trust",)  # rows that mean something for login_trust_for
BACKOFF_KINDS = ("login:user", "login:name")  # rows that mean something for backoff_forget


def prune(session: Session, *, limits: Limits, now: datetime | None = None) -> int:
    """Delete the rows that no longer change any decision; the number deleted."""
    return session.execute(delete(B).where(prunable(limits, now or clock.now()))).rowcount or 0


def prunable(limits: Limits, now: datetime):
    """Rows that no longer change any decision (the maintenance job's rule too): a trusted
    address is kept for ``login_trust_for``, a backoff for ``login_backoff_forget`` after its
    last failure, anything else once its window and any lock are over."""
    def kind(prefixes: tuple[str, ...]):
        return or_(*(B.c.key.startswith(p + ":") for p in prefixes))

    horizon = max(limits.window, limits.lock_for)
    unlocked = or_(B.c.locked_until.is_(None), B.c.locked_until <= now)
    return or_(
        and_(kind(TRUST_KINDS), B.c.window_start <= now - limits.login_trust_for),
        and_(kind(BACKOFF_KINDS), B.c.window_start <= now - limits.login_backoff_forget,
             unlocked),
        and_(not_(kind(TRUST_KINDS + BACKOFF_KINDS)), B.c.window_start <= now - horizon,
             unlocked),
    )
