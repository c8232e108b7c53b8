"""Logging in with a password: limits first, then the password check (bounded), then a
short-lived access token. The policy locks out the attacker, not the victim
(``docs/login-limits.md`` says it for operators):

1. **Per address**: every attempt counts against the client's address (an IPv6 client by its
   /64) before anything else: past ``login_per_ip`` a minute, 429 ``rate_limited``; after
   ``login_failures_per_ip`` failed logins in ``lock_for`` (15 min), whatever the usernames,
   the address is refused until that window ends (429 ``locked_out``).
2. **Per username and address**: ``login_failures_to_lock`` wrong passwords at one username
   from one address refuse that address for that username until the window ends (429
   ``locked_out``, even for the right password, so the refusal confirms no guess). Anybody
   else, from anywhere else, is not affected; the right password from that address clears it.
3. **Per username, everywhere**: past ``login_backoff_after`` failures since the last success,
   attempts slow down: one turn per wait, the wait doubling from ``login_backoff_base`` up to
   ``login_backoff_max`` (429 ``login_slowed`` with ``Retry-After``). It never locks, and an
   address the user logged in from within ``login_trust_for`` skips it: the victim at their
   usual desk logs in while a botnet guesses. Failures are forgotten after a quiet
   ``login_backoff_forget``.

Usernames are matched exactly, case included (``KADMIN_B`` is not ``kadmin_b``), and so are
the buckets: a real account's buckets are keyed by its id, an unknown username's by a keyed
hash of it, so guesses at names that do not exist never touch a real account (and no
attempted name, which is sometimes a password typed in the wrong box, is stored in clear).
Unknown usernames get the same limits, answers and timing as real ones, so they tell nothing.

Only then is the password hashed (``passwords.check_password``, at most a few at once per
worker): a refused attempt costs a few indexed rows, never a hash. Before all of it, a worker
already busy with ``login_hash_slots + login_hash_queue`` logins turns the attempt away
(503 ``login_busy``) without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.auth import credentials, passwords, ratelimit
from civicvoucher.auth.errors import Unauthenticated
from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.ratelimit import Limits, bucket_key, hashed
from civicvoucher.auth.tokens import ACCESS_TTL, issue_token
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.i18n import N_

MAX_USERNAME = 100  # api_user.username is varchar(100): a longer name cannot exist


@dataclass(frozen=True)
class Login:
    token: str
    user: ApiUser
    expires_in: int


@dataclass(frozen=True)
class Keys:
    """The buckets of one attempt (see the module docstring for what each one limits)."""

    ip: str
    ip_failures: str
    name: str  # the username's backoff
    name_ip: str  # the username's failures from this address
    trust: str | None  # a real account's last success from this address

    @classmethod
    def of(cls, user: ApiUser | None, username: str, addr: str, name_key: bytes) -> Keys:
        if user is not None:
            who, kind = user.id, "login:user"
        else:
            who, kind = hashed(username, name_key), "login:name"
        return cls(ip=bucket_key("login:ip", addr), ip_failures=bucket_key("login:ip-fail", addr),
                   name=bucket_key(kind, who), name_ip=bucket_key(kind + "-ip", who, addr),
                   trust=bucket_key("login:trust", who, addr) if user is not None else None)


@dataclass(frozen=True)
class _Attempt:
    user: ApiUser | None
    keys: Keys


def login(db: Database, *, username: str, password: str, ip: str,
          limits: Limits = Limits(), name_key: bytes = b"") -> Login:
    """Check a password and hand out a short-lived access token.

    Refuses (``RateLimited``) before any hashing when a limit holds; a wrong password (or an
    unknown or inactive user) is ``Unauthenticated`` ``login_failed``, with ``known``,
    ``locked`` (this failure reached a cap) and ``slowed`` (it started the backoff) for the
    caller's audit log. ``name_key`` keys the hash of unknown usernames in their buckets.
    """
    gate = gate_for(limits)
    with gate.admitted():  # a flood is turned away here, before any database work
        return _login(db, gate, username, password, ip, limits, name_key)


def gate_for(limits: Limits) -> passwords.HashGate:
    """This worker's login gate (``passwords.HashGate``) for ``limits``."""
    return passwords.gate(limits.login_hash_slots, limits.login_hash_queue,
                          limits.login_hash_wait.total_seconds())


def _login(db: Database, gate: passwords.HashGate, username: str, password: str, ip: str,
           limits: Limits, name_key: bytes) -> Login:
    addr = ratelimit.address_key(ip)
    ratelimit.hit(db, bucket_key("login:ip", addr), limit=limits.login_per_ip,
                  window=limits.window)
    attempt = db.run(lambda s: _admit(s, username, addr, limits, name_key))
    user = attempt.user
    verdict = passwords.check_password(user.password_hash if user else None, password,
                                       within=gate)
    # a member's credential counts only if the member set it (auth.credentials)
    if not verdict.ok or user is None or not credentials.usable(user):
        locked, slowed = db.run(lambda s: _failed(s, attempt.keys, limits))
        raise Unauthenticated(N_("wrong username or password"), code="login_failed", locked=locked,
                              slowed=slowed, known=user is not None,
                              user_id=user.id if user else None)

    def succeed(s: Session) -> str:
        now = clock.now()
        ratelimit.forget(s, attempt.keys.name, attempt.keys.name_ip)
        if attempt.keys.trust is not None:  # a real account: this address is now trusted
            ratelimit.mark(s, attempt.keys.trust, now)
        if verdict.new_hash:  # hashed with older parameters: store today's
            s.execute(update(ApiUser).where(ApiUser.id == user.id)
                      .values(password_hash=verdict.new_hash))
        token, _ = issue_token(s, user_id=user.id, kind="access", ttl=ACCESS_TTL)
        return token

    return Login(db.run(succeed), user, int(ACCESS_TTL.total_seconds()))


def _admit(s: Session, username: str, addr: str, limits: Limits, name_key: bytes) -> _Attempt:
    """Find the user and refuse while a cap or the backoff holds (claiming the backoff's
    turn when it is this attempt's)."""
    user = (s.execute(select(ApiUser).where(ApiUser.username == username)).scalar()
            if len(username) <= MAX_USERNAME else None)
    keys = Keys.of(user, username, addr, name_key)
    now = clock.now()
    rows = ratelimit.read(s, [k for k in (keys.ip_failures, keys.name_ip, keys.name, keys.trust)
                              if k is not None])
    ratelimit.refuse_past_cap(
        rows.get(keys.ip_failures), cap=limits.login_failures_per_ip, window=limits.lock_for,
        now=now, why=N_("too many failed logins from this address"))
    ratelimit.refuse_past_cap(
        rows.get(keys.name_ip), cap=limits.login_failures_to_lock, window=limits.lock_for,
        now=now, why=N_("too many wrong passwords for this user from this address"))
    trusted = keys.trust is not None and ratelimit.marked_since(
        rows.get(keys.trust), now - limits.login_trust_for)
    if not trusted:
        ratelimit.take_turn(
            s, rows.get(keys.name), after=limits.login_backoff_after,
            base=limits.login_backoff_base, cap=limits.login_backoff_max,
            forget_after=limits.login_backoff_forget, now=now, code="login_slowed",
            why=N_("too many failed logins for this user"))
    return _Attempt(user, keys)


def _failed(s: Session, keys: Keys, limits: Limits) -> tuple[bool, bool]:
    """Count a failed login against the address, the username from the address and the
    username; whether it reached a cap (locked) and whether it started the backoff."""
    now = clock.now()
    by_ip = ratelimit.failures(s, keys.ip_failures, window=limits.lock_for, now=now)
    by_name_ip = ratelimit.failures(s, keys.name_ip, window=limits.lock_for, now=now)
    by_name = ratelimit.slow_down(
        s, keys.name, after=limits.login_backoff_after, base=limits.login_backoff_base,
        cap=limits.login_backoff_max, forget_after=limits.login_backoff_forget, now=now)
    locked = by_ip == limits.login_failures_per_ip or by_name_ip == limits.login_failures_to_lock
    return locked, by_name == limits.login_backoff_after
