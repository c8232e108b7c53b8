"""Password hashing: argon2id, with the work bounded per worker process.

Parameters: OWASP's minimum for argon2id (m=19 MiB, t=2, p=1). argon2-cffi's default (RFC 9106
"low-memory": m=64 MiB, t=3, p=4) took about 180 ms on two cores and four threads per hash;
64 logins at once took a worker to 2.6 GB and every core from the requests of people already
logged in. One lane (p=1) keeps a hash on one core; 19 MiB and two passes
cost about 20 ms. Offline guessing after a database leak is the threat argon2 is for, and
OWASP counts this profile as adequate for it. Hashes made with other parameters still verify
(argon2 hashes carry their parameters) and are re-hashed at the next successful login
(``Verdict.new_hash``), so the profile can change again without a migration.

Bounded work: a login runs inside a ``HashGate``, one per worker process: at most
``login_hash_slots + login_hash_queue`` logins in progress, any other refused at once, before
it touches the database (503 ``login_busy``, ``Retry-After``); ``check_password`` hashes on
the gate's own ``login_hash_slots`` threads, waiting at most ``login_hash_wait`` for one. So a
flood of logins costs a worker at most slots × 19 MiB and slots + queue threads of its
request pool, never an unbounded queue.

Unknown users: a login for a username that does not exist (or a user without a password)
is verified against a dummy hash with the same parameters, under the same gate. It takes the
same time and the same place in the queue as a real one, so neither the answer's timing nor
a refusal tells which usernames exist; the gate, not a cheaper path for misses, is what keeps
the memory bounded. (Waiting instead of hashing would save CPU, but a sleep does not slow down
with the machine the way a hash does, so under load the two would tell apart.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from civicvoucher.errors import CivicVoucherError
from civicvoucher.i18n import N_

T = TypeVar("T")
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # argon2id


class HashingBusy(CivicVoucherError):
    """Every password-hashing slot of this worker is taken and the queue is full (or the
    wait ran out): retry shortly. Not the caller's fault, so 503, not 429."""

    code = "login_busy"
    http_status = 503


def busy() -> HashingBusy:
    return HashingBusy(N_("too many logins at once: retry in a moment"), retry_after=1)


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
    """One worker process's bound on logins: at most ``slots + queue`` logins in progress
    (``admitted``: a login past that is refused at once, before it touches the database) and
    at most ``slots`` hashes at a time, run on ``slots`` threads of the gate's own (``run``:
    a hash that cannot start within ``wait_s`` is refused).

    The hashes run on the gate's own threads, not the request's, because glibc keeps a
    thread's freed 19 MiB in that thread's malloc arena: hashing on whichever thread of the
    request pool (40) served the login filled one arena per thread (up to 8 per core), and a
    worker measured 579 MB after a flood; on two threads of its own it stays near 130 MB.
    """

    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        self._lock = threading.Lock()
        self._places, self._taken = slots + queue, 0
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="argon2")
        self.wait_s = wait_s

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold one of the ``slots + queue`` places for the whole of a login."""
        with self._lock:
            if self._taken >= self._places:
                raise busy()
            self._taken += 1
        try:
            yield
        finally:
            with self._lock:
                self._taken -= 1

    def full(self) -> bool:
        """Whether every place is taken just now (a hint, for turning a flood away early)."""
        return self._taken >= self._places

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a slot's thread, if one frees up within ``wait_s``."""
        job = self._pool.submit(fn, *args)
        try:
            return job.result(timeout=self.wait_s)
        except FutureTimeout:
            if job.cancel():  # never started: nobody hashed for it
                raise busy() from None
            return job.result()  # started just now: a hash takes milliseconds


@lru_cache(maxsize=8)
def gate(slots: int, queue: int, wait_s: float) -> HashGate:
    """This process's gate for a configuration (a deployment has one: one gate per worker)."""
    return HashGate(slots, queue, wait_s)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    new_hash: str | None = None  # the password re-hashed with today's parameters, to store


def check_password(stored: str | None, password: str, *, within: HashGate) -> Verdict:
    """Verify ``password`` on the gate ``within`` (the caller holds ``within.admitted()``;
    ``HashingBusy`` when no slot frees up in time); a match whose hash has older parameters
    comes back re-hashed, on the same slot."""
    return within.run(_check, stored, password)


def _check(stored: str | None, password: str) -> Verdict:
    ok = _verify(stored or _dummy(), password) and stored is not None
    if ok and stored is not None and HASHER.check_needs_rehash(stored):
        return Verdict(True, HASHER.hash(password))
    return Verdict(ok)
