"""Logins under attack (issue 9, items 3, 4 and the login part of 6): the attacker is locked
out, not the victim; unknown usernames never touch a real account; the per-username limit
slows down and skips the victim's own address; password hashing is bounded per worker and
never runs for a refused attempt; long usernames are a 401, not a 500."""

from __future__ import annotations

import queue
import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher, extract_parameters
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from civicvoucher.api.app import create_app
from civicvoucher.auth.models import ApiUser, RateBucket
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.service import create_user
from civicvoucher.core import clock
from tests.world import SECRET, T0

RIGHT = "right password 1"
HOME, ATTACKER = "198.51.100.20", "203.0.113.7"


def client(app, ip: str) -> TestClient:
    """A client connecting from ``ip`` (no proxy is trusted: the connection is the client)."""
    return TestClient(app, client=(ip, 50000), raise_server_exceptions=False)


def login(c: TestClient, username: str, password: str):
    return c.post("/api/v1/auth/login", json={"username": username, "password": password},
                  headers={"Accept-Language": "en"})


def add_user(api, username: str = "kadmin_b", password: str | None = RIGHT) -> int:
    with api.db.session() as s:
        return create_user(s, username=username, role="county_admin", password=password,
                           org_id=api.w.county_a).user.id


def app_with(api, **limits):
    return create_app(api.db, secret_key=SECRET, limits=Limits(**limits))


@pytest.fixture
def hashes(monkeypatch):
    """Every argon2 verification, counted (whatever module calls it)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self, hash, password):
        calls.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


@pytest.fixture
def moving_clock():
    """The clock at T0, moved by the test (``now[0] += ...``) instead of sleeping."""
    now = [T0]
    clock.set_clock(lambda: now[0])
    yield now
    clock.set_clock(None)


def test_an_attack_from_one_address_locks_that_address_not_the_victim(api, hashes):
    """40 wrong passwords from one address: five are checked, then that address is refused
    (without hashing); the real user, from their own address, logs in."""
    add_user(api)
    attacker = client(api.client.app, ATTACKER)
    codes = [login(attacker, "kadmin_b", f"guess {i}").json()["code"] for i in range(40)]
    assert codes == ["login_failed"] * 5 + ["locked_out"] * 35
    assert len(hashes) == 5
    victim = client(api.client.app, HOME)
    r = login(victim, "kadmin_b", RIGHT)
    assert r.status_code == 200, r.text
    # the lock holds for the attacker, even with the right password
    again = login(attacker, "kadmin_b", RIGHT)
    assert (again.status_code, again.json()["code"]) == (429, "locked_out")
    assert 0 < int(again.headers["Retry-After"]) <= 15 * 60


def test_failures_at_an_unknown_username_never_touch_the_real_account(api):
    """Usernames match exactly: KADMIN_B does not exist, kadmin_b does. Locking KADMIN_B out
    from an address leaves kadmin_b alone, even from that address."""
    uid = add_user(api)
    c = client(api.client.app, ATTACKER)
    codes = [login(c, "KADMIN_B", f"guess {i}").json()["code"] for i in range(6)]
    assert codes == ["login_failed"] * 5 + ["locked_out"]
    with api.db.session() as s:
        keys = s.execute(select(RateBucket.key)).scalars().all()
    assert not [k for k in keys if k.startswith(("login:user:", "login:user-ip:"))]
    assert not [k for k in keys if "KADMIN_B" in k.upper()]  # no attempted name in clear
    r = login(c, "kadmin_b", RIGHT)
    assert r.status_code == 200, r.text
    with api.db.session() as s:
        assert s.get(ApiUser, uid).username == "kadmin_b"


def test_the_backoff_slows_a_distributed_attack_but_not_the_victims_own_address(
        api, moving_clock, hashes):
    add_user(api)
    app = api.client.app
    home = client(app, HOME)
    assert login(home, "kadmin_b", RIGHT).status_code == 200  # the victim's usual desk
    bots = iter(client(app, f"203.0.113.{i}") for i in range(1, 200))

    def attack_until_slowed() -> None:
        for bot in (next(bots), next(bots)):  # 10 failures, five per address
            assert [login(bot, "kadmin_b", "guess").json()["code"]
                    for _ in range(5)] == ["login_failed"] * 5

    attack_until_slowed()
    waits = []
    for _ in range(6):
        slowed = login(next(bots), "kadmin_b", "guess")
        assert (slowed.status_code, slowed.json()["code"]) == (429, "login_slowed")
        waits.append(int(slowed.headers["Retry-After"]))
        moving_clock[0] += timedelta(seconds=waits[-1])
        assert login(next(bots), "kadmin_b", "guess").json()["code"] == "login_failed"  # its turn
    assert waits == [1, 2, 4, 8, 16, 32]
    hashed_before = len(hashes)
    refused = login(next(bots), "kadmin_b", RIGHT)  # a refused turn hashes nothing
    assert (refused.status_code, refused.json()["code"]) == (429, "login_slowed")
    assert len(hashes) == hashed_before
    # the real user from their own address is not slowed at all
    assert login(home, "kadmin_b", RIGHT).status_code == 200

    # from an address it never used, the real user is slowed, never locked: wait, then in
    attack_until_slowed()
    new_place = client(app, "192.0.2.55")
    slowed = login(new_place, "kadmin_b", RIGHT)
    assert (slowed.status_code, slowed.json()["code"]) == (429, "login_slowed")
    moving_clock[0] += timedelta(seconds=int(slowed.headers["Retry-After"]))
    assert login(new_place, "kadmin_b", RIGHT).status_code == 200
    # and that success cleared the backoff: the next wrong password is just wrong
    assert login(next(bots), "kadmin_b", "guess").json()["code"] == "login_failed"


def test_failed_logins_from_one_address_are_capped_before_any_hash(api, hashes):
    """Thirty guesses at thirty made-up usernames from one address, then the address is
    refused, and a refused attempt costs no hash; another address goes on."""
    app = api.client.app
    attacker = client(app, ATTACKER)
    codes = [login(attacker, f"ghost{i}", "whatever").json()["code"] for i in range(30)]
    assert codes == ["login_failed"] * 30 and len(hashes) == 30
    r = login(attacker, "ghost-next", "whatever")
    assert (r.status_code, r.json()["code"]) == (429, "locked_out")
    assert len(hashes) == 30
    add_user(api)
    assert login(client(app, HOME), "kadmin_b", RIGHT).status_code == 200


def test_past_the_request_limit_nothing_is_hashed(api, hashes):
    app = app_with(api, login_per_ip=3)
    c = client(app, ATTACKER)
    codes = [login(c, f"ghost{i}", "whatever").json()["code"] for i in range(8)]
    assert codes == ["login_failed"] * 3 + ["rate_limited"] * 5
    assert len(hashes) == 3


def test_unknown_users_are_checked_like_real_ones_under_the_same_gate(api, hashes):
    """A username that does not exist, and a user without a password, are verified against a
    hash with today's parameters (same time), inside the same bounded gate."""
    from civicvoucher.auth import passwords

    add_user(api, "token-only", password=None)
    add_user(api)
    c = client(api.client.app, HOME)
    for name in ("nobody", "token-only", "kadmin_b"):
        assert login(c, name, "wrong password").json()["code"] == "login_failed"
    today = extract_parameters(passwords.HASHER.hash("x"))
    assert [extract_parameters(h) for h in hashes] == [today] * 3
    # every login, known or not, is a place in the worker's gate: with the gate full, all
    # are turned away before they touch the database (no bucket row) or hash anything
    lim = Limits(login_hash_slots=1, login_hash_queue=0)
    gate = passwords.gate(lim.login_hash_slots, lim.login_hash_queue,
                          lim.login_hash_wait.total_seconds())
    c = client(create_app(api.db, secret_key=SECRET, limits=lim), HOME)
    rows = bucket_rows(api)
    with gate.admitted():
        for name in ("nobody", "kadmin_b"):
            r = login(c, name, RIGHT)
            assert (r.status_code, r.json()["code"]) == (503, "login_busy")
            assert r.headers["Retry-After"] == "1"
    assert len(hashes) == 3 and bucket_rows(api) == rows
    assert login(c, "kadmin_b", RIGHT).status_code == 200


def bucket_rows(api) -> list[tuple]:
    with api.db.session() as s:
        return sorted(s.execute(select(RateBucket.key, RateBucket.hits, RateBucket.failures)).all())


def test_a_login_waits_a_bounded_time_for_a_hashing_slot(api, monkeypatch):
    """One slot, hashing for another login; one place in the queue: the next login waits
    ``login_hash_wait`` and is turned away (503), not queued for ever."""
    add_user(api)
    app = app_with(api, login_hash_slots=1, login_hash_queue=1,
                   login_hash_wait=timedelta(seconds=0.05))
    real = PasswordHasher.verify
    entered, release = threading.Event(), threading.Event()

    def slow(self, hash, password):
        entered.set()
        release.wait(60)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", slow)
    first: list = []
    t = threading.Thread(target=lambda: first.append(login(client(app, HOME), "kadmin_b", RIGHT)))
    t.start()
    try:
        assert entered.wait(30)
        r = login(client(app, "198.51.100.21"), "kadmin_b", RIGHT)
        assert (r.status_code, r.json()["code"]) == (503, "login_busy")
    finally:
        release.set()
        t.join(60)
    assert first[0].status_code == 200  # the slot's own login went through


def test_concurrent_logins_hash_at_most_the_slots_at_once(api, monkeypatch):
    """Eight logins at once against two slots and two places in the queue: two hash, two
    wait, four are turned away at once; never more than two hashes run together."""
    add_user(api)
    app = app_with(api, login_hash_slots=2, login_hash_queue=2,
                   login_hash_wait=timedelta(seconds=60))
    real = PasswordHasher.verify
    lock, release, entered = threading.Lock(), threading.Event(), threading.Semaphore(0)
    running, peak, calls = [0], [0], [0]

    def held_verify(self, hash, password):
        with lock:
            running[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], running[0])
        entered.release()
        try:
            release.wait(60)
            return real(self, hash, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", held_verify)
    results: queue.Queue = queue.Queue()

    def one(i: int) -> None:
        c = client(app, f"198.51.100.{100 + i}")
        r = login(c, "kadmin_b", RIGHT)
        results.put((r.status_code, r.json()["code"] if r.status_code != 200 else "ok"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        busy = [results.get(timeout=30) for _ in range(4)]  # the turned-away answer at once
        assert busy == [(503, "login_busy")] * 4
        assert entered.acquire(timeout=30) and entered.acquire(timeout=30)
        with lock:
            assert (running[0], calls[0]) == (2, 2)  # two hashing, two waiting for a slot
    finally:
        release.set()
        for t in threads:
            t.join(60)
    rest = sorted(results.get(timeout=5) for _ in range(4))
    assert rest == [(200, "ok")] * 4
    assert peak[0] == 2 and calls[0] == 4


def test_a_hash_with_older_parameters_is_upgraded_at_the_next_login(api):
    from civicvoucher.auth import passwords

    uid = add_user(api)
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(RIGHT)
    with api.db.session() as s:
        s.execute(update(ApiUser).where(ApiUser.id == uid).values(password_hash=old))
    c = client(api.client.app, HOME)
    assert login(c, "kadmin_b", RIGHT).status_code == 200
    with api.db.session() as s:
        new = s.get(ApiUser, uid).password_hash
    assert new != old and not passwords.HASHER.check_needs_rehash(new)
    assert extract_parameters(new) == extract_parameters(passwords.HASHER.hash("x"))
    assert login(c, "kadmin_b", RIGHT).status_code == 200
    assert login(c, "kadmin_b", "wrong password").status_code == 401


@pytest.mark.parametrize("length", [101, 190, 199, 200])
def test_a_long_username_is_a_wrong_login_not_a_server_error(api, length):
    c = client(api.client.app, HOME)
    for name in ("k" * length, "工" * length):
        r = login(c, name, "whatever")
        assert (r.status_code, r.json()["code"]) == (401, "login_failed"), r.text
    with api.db.session() as s:
        assert max(len(k) for k in s.execute(select(RateBucket.key)).scalars()) <= 200


def test_prune_deletes_only_the_rows_that_no_longer_decide_anything(api, moving_clock):
    """For the maintenance job: a trusted address is kept for 30 days, a backoff for a day
    after its last failure, a lock while it holds, anything else once its window is over."""
    from civicvoucher.auth import ratelimit

    add_user(api)
    app = api.client.app
    assert login(client(app, HOME), "kadmin_b", RIGHT).status_code == 200  # trusts HOME
    attacker = client(app, ATTACKER)
    for _ in range(5):
        login(attacker, "kadmin_b", "guess")  # a username-and-address cap, and failures
    login(attacker, "ghost", "guess")
    lim = Limits()

    def kinds() -> set[str]:
        with api.db.session() as s:
            keys = s.execute(select(RateBucket.key)).scalars().all()
        return {":".join(k.split(":")[:2]) for k in keys}  # login:ip:1.2.3.4 → login:ip

    def prune_at(delta: timedelta) -> int:
        moving_clock[0] = T0 + delta
        with api.db.session() as s:
            return ratelimit.prune(s, limits=lim)

    everything = kinds()
    assert {"login:ip", "login:ip-fail", "login:user", "login:user-ip", "login:trust",
            "login:name", "login:name-ip"} <= everything
    assert prune_at(timedelta(minutes=5)) == 0  # every window still open
    prune_at(timedelta(minutes=16))
    assert kinds() == {"login:user", "login:name", "login:trust"}
    prune_at(timedelta(days=1, minutes=1))
    assert kinds() == {"login:trust"}
    prune_at(timedelta(days=30, minutes=1))
    assert kinds() == set()
