"""Password hashing: argon2id, with the work bounded per worker process.

Parameters: OWASP's minimum for argon2id (m=19 MiB, t=2, p=1). argon2-cffi's default (RFC 9106
"low-memory": m=64 MiB, t=3, p=4) took about 180 ms on two cores and four threads per hash,
so a handful of logins at once took every core and a couple of hundred MB from the requests
of people already logged in. One lane (p=1) keeps a hash on one core; 19 MiB and two passes
cost about 20 ms. Offline guessing after a database leak is the threat argon2 is for, and
OWASP counts this profile as adequate for it. Hashes made with other parameters still verify
(argon2 hashes carry their parameters) and are re-hashed at the next successful login
(``Verdict.new_hash``), so the profile can change again without a migration.

Bounded work: ``check_password`` hashes only inside a ``HashGate``, one per worker process:
``login_hash_slots`` hashes at a time, ``login_hash_queue`` logins waiting at most
``login_hash_wait`` for a slot, and any other login is refused at once (503 ``login_busy``,
``Retry-After``). So a flood of logins costs a worker at most slots × 19 MiB and a few
threads of its pool, never an unbounded queue.

Unknown users: a login for a username that does not exist (or a user without a password)
is verified against a dummy hash with the same parameters, under the same gate. It takes the
same time and the same place in the queue as a real one, so neither the answer's timing nor
a refusal tells which usernames exist; the gate, not a cheaper path for misses, is what keeps
the memory bounded. (Waiting instead of hashing would save CPU, but a sleep does not slow down
with the machine the way a hash does, so under load the two would tell apart.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from civicvoucher.errors import CivicVoucherError

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # argon2id


class HashingBusy(CivicVoucherError):
    """Every password-hashing slot of this worker is taken and the queue is full (or the
    wait ran out): retry shortly. Not the caller's fault, so 503, not 429."""

    code = "login_busy"
    http_status = 503


def hash_password(password: str) -> str:
    return HASHER.hash(password)


@cache
def _dummy() -> str:
    """Verified against when there is no stored hash, so a miss costs what a hit costs."""
    return HASHER.hash("not-a-real-password")


def _verify(stored: str, password: str) -> bool:
    """One argon2 verification (tests count and pause these)."""
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``, outside any gate (the CLI, one at a time)."""
    return _verify(stored or _dummy(), password) and stored is not None


class HashGate:
    """At most ``slots`` hashes at once, at most ``queue`` callers waiting up to ``wait_s``
    seconds for one; everybody else is refused at once."""

    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        self._admitted = threading.BoundedSemaphore(slots + queue)
        self._slots = threading.BoundedSemaphore(slots)
        self.wait_s = wait_s

    @contextmanager
    def held(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise HashingBusy("too many logins at once: retry in a moment", retry_after=1)
        try:
            if not self._slots.acquire(timeout=self.wait_s):
                raise HashingBusy("too many logins at once: retry in a moment", retry_after=1)
            try:
                yield
            finally:
                self._slots.release()
        finally:
            self._admitted.release()


@lru_cache(maxsize=8)
def gate(slots: int, queue: int, wait_s: float) -> HashGate:
    """This process's gate for a configuration (a deployment has one: one gate per worker)."""
    return HashGate(slots, queue, wait_s)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    new_hash: str | None = None  # the password re-hashed with today's parameters, to store


def check_password(stored: str | None, password: str, *, within: HashGate) -> Verdict:
    """Verify ``password`` inside the gate ``within`` (``HashingBusy`` when it is full); a
    match whose hash has older parameters comes back re-hashed, still inside the gate."""
    with within.held():
        ok = _verify(stored or _dummy(), password) and stored is not None
        if ok and stored is not None and HASHER.check_needs_rehash(stored):
            return Verdict(True, HASHER.hash(password))
    return Verdict(ok)
