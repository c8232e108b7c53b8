"""After a crash, a retry with the same Idempotency-Key is answered at once and correctly.

(a) A real server (uvicorn, the app factory) in a subprocess is killed with SIGKILL while one
deposit is inside its transaction and another has committed but not stored its answer; a new
server answers both retries within seconds: the first afresh, the second with the service's
first result; the fund grows by each amount once.
(b) The connection to PostgreSQL is cut (a TCP proxy in the test, never the shared cluster)
mid-request: the client gets 503 problem+json, and the retry after the database is back is
answered promptly and correctly.

The request is stopped at a stage by the route's test hook (``routing.hold_for_test``), so no
step depends on timing; the only clock in these tests is a generous bound (20 s) that proves
the old 300 s wait for a stale key is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from starlette.responses import Response

from civicvoucher.api import idempotency as idem
from civicvoucher.api.routing import TEST_HOLD_ENV, TEST_HOLD_HEADER
from civicvoucher.auth.roles import Role
from civicvoucher.db import Database
from civicvoucher.funds.service import fund_balance
from civicvoucher.ledger.models import Transfer
from tests.api.conftest import books_ok, build_api_world
from tests.world import SECRET

PROMPT = 20.0  # seconds: "promptly" (the old wait was STALE = 300 s)


def _wait_for(path: Path, what: str, proc: subprocess.Popen | None = None,
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn civicvoucher.api.app:create_app --factory`` on a loopback port."""

    def __init__(self, url: str, hold_dir: Path, log: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": url,
               "CIVICVOUCHER_SECRET_KEY": SECRET.decode(), TEST_HOLD_ENV: str(hold_dir)}
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "civicvoucher.api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def _deposit(base: str, token: str, key: str, amount: int, org: int, hold: str | None = None,
             timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key,
               "Accept-Language": "en"}
    if hold:
        headers[TEST_HOLD_HEADER] = hold
    return httpx.post(f"{base}/funds/deposits", headers=headers, timeout=timeout,
                      json={"org_id": org, "amount_fen": amount, "source": "dues"})


def _balance(db: Database, org: int) -> int:
    with db.session() as s:
        return fund_balance(s, org)


def _transfers(db: Database, key: str, user_id: int) -> int:
    """Deposit transfers made for one Idempotency-Key (the service's key embeds a digest)."""
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Transfer).where(
            Transfer.id == f"deposit:api:deposit:{user_id}:{digest}")).scalar()


def _user_id(db: Database, token: str) -> int:
    from civicvoucher.auth import tokens

    with db.session() as s:
        return tokens.authenticate(s, token).user_id


def test_a_killed_worker_s_keys_are_answered_at_once_by_the_next_server(db, tmp_path):
    """kill -9 with one deposit inside its transaction (not committed) and one committed but
    not yet answered: the next server runs the first afresh and replays the second, at once,
    and each amount reaches the fund once."""
    aw = build_api_world(db)
    aw.client.close()
    org, token = aw.w.union_a, aw.tokens[Role.COUNTY_ADMIN]
    uid = _user_id(db, token)
    before = _balance(db, org)
    holds, log = tmp_path / "holds", tmp_path / "server.log"
    holds.mkdir()
    k_open, k_done = str(uuid.uuid4()), str(uuid.uuid4())
    server = Server(db.url, holds, log)
    pool = ThreadPoolExecutor(2)
    try:
        # committed, answer not stored (first: on SQLite the other holds the write lock)
        done_call = pool.submit(_deposit, server.base, token, k_done, 222, org, "after")
        _wait_for(holds / "after.reached", "the committed deposit", server.proc)
        open_call = pool.submit(_deposit, server.base, token, k_open, 111, org, "in_tx")
        _wait_for(holds / "in_tx.reached", "the open deposit", server.proc)
        server.kill()
        for call in (done_call, open_call):
            with pytest.raises(httpx.TransportError):
                call.result(timeout=30)
    finally:
        server.stop()
        pool.shutdown(wait=True)
    assert _balance(db, org) == before + 222  # the first committed, the second did not
    assert (_transfers(db, k_done, uid), _transfers(db, k_open, uid)) == (1, 0)

    server = Server(db.url, holds, log)
    try:
        t0 = time.monotonic()
        again_done = _deposit(server.base, token, k_done, 222, org)
        again_open = _deposit(server.base, token, k_open, 111, org)
        elapsed = time.monotonic() - t0
        assert (again_done.status_code, again_open.status_code) == (201, 201), (
            again_done.text, again_open.text)
        assert elapsed < PROMPT, elapsed
        assert again_done.json()["amount_fen"] == 222 and again_open.json()["amount_fen"] == 111
        assert _balance(db, org) == before + 333
        assert (_transfers(db, k_done, uid), _transfers(db, k_open, uid)) == (1, 1)
        # and now both answers are stored
        for key, amount in ((k_done, 222), (k_open, 111)):
            r = _deposit(server.base, token, key, amount, org)
            assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
        assert _balance(db, org) == before + 333
    finally:
        server.stop()
    books_ok(db)


class Proxy:
    """A TCP proxy to PostgreSQL on a loopback port; ``cut()`` drops every connection and
    refuses new ones (the database is "down") until ``restore()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.closed = False
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.closed = True
        self.listener.close()
        self.thread.join(timeout=5)


def _problem_503(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "database_unavailable" and int(r.headers["Retry-After"]) > 0


@pytest.mark.pg
def test_the_database_cut_mid_request_is_a_503_and_the_retry_is_answered(pg_url, tmp_path,
                                                                           monkeypatch):
    """The connection to PostgreSQL is cut while a deposit is inside its transaction, and
    again while a committed deposit's answer is being stored: each client gets problem+json
    503 (not a plain-text 500), a request while the database is away too, and each retry
    after it is back is answered at once: afresh, or with the first result."""
    from fastapi.testclient import TestClient

    from civicvoucher.api.app import create_app
    from tests.conftest import wipe

    db = Database(pg_url)
    wipe(db)
    aw = build_api_world(db)
    aw.client.close()
    org, token = aw.w.union_a, aw.tokens[Role.COUNTY_ADMIN]
    uid = _user_id(db, token)
    before = _balance(db, org)
    host, port = db.engine.url.host or "127.0.0.1", db.engine.url.port or 5432
    proxy = Proxy((host, port))
    proxied = Database(db.engine.url.set(host="127.0.0.1", port=proxy.port)
                       .render_as_string(hide_password=False))
    holds = tmp_path / "holds"
    holds.mkdir()
    monkeypatch.setenv(TEST_HOLD_ENV, str(holds))
    client = TestClient(create_app(proxied, secret_key=SECRET), raise_server_exceptions=False)
    pool = ThreadPoolExecutor(1)

    def deposit(key: str, amount: int, hold: str | None = None, lang: str = "en"):
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key,
                   "Accept-Language": lang}
        if hold:
            headers[TEST_HOLD_HEADER] = hold
        return client.post("/api/v1/funds/deposits", headers=headers,
                           json={"org_id": org, "amount_fen": amount, "source": "dues"})

    try:
        for stage, amount in (("in_tx", 111), ("after", 222)):
            key = str(uuid.uuid4())
            call = pool.submit(deposit, key, amount, stage)
            _wait_for(holds / f"{stage}.reached", stage)
            proxy.cut()
            (holds / f"{stage}.go").touch()
            _problem_503(call.result(timeout=60))
            down = deposit(str(uuid.uuid4()), 5, lang="zh")  # claiming fails too
            _problem_503(down)
            assert down.json()["title"].startswith("数据库暂时无法访问")
            expected = before + (222 if stage == "after" else 0)
            assert _balance(db, org) == expected
            proxy.restore()
            t0 = time.monotonic()
            again = deposit(key, amount)
            assert again.status_code == 201, again.text
            assert time.monotonic() - t0 < PROMPT
            assert _transfers(db, key, uid) == 1
            before += amount
            assert _balance(db, org) == before
            replay = deposit(key, amount)
            assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    finally:
        pool.shutdown(wait=True)
        client.close()
        proxy.close()
        proxied.dispose()
    books_ok(db)
    db.dispose()


def test_a_database_error_while_storing_or_releasing_the_key_is_a_problem_503(api, monkeypatch):
    """Completing and then releasing the key both fail (the database went away after the
    effect): the answer is problem+json 503 with Retry-After, never a plain-text 500; the
    retry replays the service's first result and the key is left to nobody."""
    from sqlalchemy.exc import OperationalError

    def down(*_a, **_k):
        raise OperationalError("UPDATE idempotency_key", {}, ConnectionError(
            "server closed the connection unexpectedly"))

    key = str(uuid.uuid4())
    body = {"org_id": api.w.union_a, "amount_fen": 333, "source": "dues"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(idem, "complete", down)
        mp.setattr(idem, "release", down)
        first = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key, json=body)
    assert first.status_code == 503, first.text
    assert first.headers["content-type"].startswith("application/problem+json")
    assert first.json()["code"] == "database_unavailable" and first.headers["Retry-After"]
    again = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key, json=body)
    assert again.status_code == 201, again.text
    replay = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key, json=body)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.content == again.content
    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(Transfer)
                         .where(Transfer.amount == 333)).scalar() == 1
    books_ok(api.db)


def test_a_committed_effect_whose_owner_died_before_complete_replays_on_takeover(api):
    """The first attempt commits its effect and dies before ``complete`` (its lock is freed,
    its row stays in progress): the retry takes the key over at once and the service answers
    its first result, with no second effect."""
    key = str(uuid.uuid4())
    body = {"org_id": api.w.union_a, "amount_fen": 444, "source": "dues"}
    seen: list[Response] = []
    real_complete = idem.complete

    class Killed(BaseException):
        pass

    def die(_db, claim, response):  # the worker dies here: nothing stored, lock gone
        seen.append(response)
        claim.unlock()
        raise Killed

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(idem, "complete", die)
        with contextlib.suppress(Killed):  # what the dead worker's client saw does not matter
            api.client.post("/api/v1/funds/deposits", json=body, headers={
                "Authorization": f"Bearer {api.tokens[Role.COUNTY_ADMIN]}",
                "Idempotency-Key": key})
    assert idem.complete is real_complete and len(seen) == 1 and seen[0].status_code == 201
    t0 = time.monotonic()
    again = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key, json=body)
    assert again.status_code == 201 and time.monotonic() - t0 < PROMPT, again.text
    assert again.json()["transfer_id"] == __import__("json").loads(seen[0].body)["transfer_id"]
    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(Transfer)
                         .where(Transfer.amount == 444)).scalar() == 1
    books_ok(api.db)
