"""A login flood against one API worker, while a logged-in client works (issue 9, item 4).

    python bench/bench_login_flood.py [--seconds 20] [--attackers 64] [--pg]

Starts one uvicorn worker on 127.0.0.1 (a throwaway SQLite file, or with ``--pg`` a throwaway
PostgreSQL database on the local server), creates a user and an API token, and measures an
authenticated client's ``GET /auth/me`` latency first alone, then during the attack:
``--attackers`` clients (in a process of their own), each from its own loopback address
(127.0.0.2, 127.0.0.3, …), log in as made-up usernames as fast as they can, and one more sends
wrong passwords for the real user from 127.0.0.250. The worker takes ``CIVICVOUCHER_LIMIT_*``
from the environment (to try other hashing slots and queues). Prints the worker's peak memory (VmHWM and the sampled RSS peak), the
answers by status, the client's p50/p99 alone and under attack, and whether the real user can
log in from their own address afterwards. Stops by itself (``--seconds``); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

SECRET = "bench-secret-key"
PASSWORD = "bench right password"
ADMIN = os.environ.get("CIVICVOUCHER_BENCH_PG_ADMIN",
                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def make_app():
    """The app with the deployment's ``CIVICVOUCHER_LIMIT_*`` limits (uvicorn factory)."""
    from civicvoucher.api.app import create_app
    from civicvoucher.auth.ratelimit import Limits

    from_env = getattr(Limits, "from_env", None)  # absent before issue 9: the defaults
    return create_app(limits=from_env() if from_env else None)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(url: str) -> str:
    from civicvoucher.auth.service import create_user
    from civicvoucher.auth.tokens import issue_token
    from civicvoucher.config import load_settings
    from civicvoucher.db import Database
    from civicvoucher.keys import bind_key
    from civicvoucher.orgs.service import create_org
    from civicvoucher.schema import upgrade

    db = Database(url)
    upgrade(db.engine)
    os.environ["CIVICVOUCHER_DATABASE_URL"] = url
    os.environ["CIVICVOUCHER_SECRET_KEY"] = SECRET
    bind_key(db, load_settings())
    with db.session() as s:
        org = create_org(s, level="province", name="山西省总工会", division_code="140000")
        u = create_user(s, username="victim", role="province_admin", password=PASSWORD,
                        org_id=org.id).user
        token, _ = issue_token(s, user_id=u.id, kind="api", ttl=None)
    db.dispose()
    return token


def memory(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) // 1024  # MiB
    return out


def authenticated(base: str, token: str, stop: threading.Event, lat: list[float]) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as c:
        while not stop.is_set():
            t = time.perf_counter()
            r = c.get("/api/v1/auth/me")
            lat.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            time.sleep(0.02)


async def _attack(base: str, seconds: float, attackers: int) -> collections.Counter:
    """``attackers`` clients, each from its own loopback address, logging in as made-up
    usernames; one more sends wrong passwords for the real user."""
    seen: collections.Counter = collections.Counter()
    end = time.monotonic() + seconds

    async def one(addr: str, username: str | None) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=addr)
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=30) as c:
            while time.monotonic() < end:
                name = username or f"ghost-{uuid.uuid4().hex[:12]}"
                try:
                    r = await c.post("/api/v1/auth/login",
                                     json={"username": name, "password": "guess"})
                    seen[f"{r.status_code} {r.json().get('code', '')}"] += 1
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] += 1

    await asyncio.gather(*(one(f"127.0.0.{2 + i % 240}", None) for i in range(attackers)),
                         one("127.0.0.250", "victim"))
    return seen


def attack(base: str, seconds: float, attackers: int, out) -> None:
    """In a process of its own, so the measured client shares no interpreter with it."""
    out.put(dict(asyncio.run(_attack(base, seconds, attackers))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--attackers", type=int, default=64)
    ap.add_argument("--pg", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cv-login-flood-"))
    pg_name = None
    if args.pg:
        from sqlalchemy import create_engine, text

        pg_name = f"cv_bench_login_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    else:
        url = f"sqlite:///{tmp / 'cv.db'}"
    server = None
    try:
        token = setup(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": url, "CIVICVOUCHER_SECRET_KEY": SECRET}
        server = subprocess.Popen(
            ["timeout", str(int(args.seconds * 3 + 60)), sys.executable, "-m", "uvicorn",
             "bench.bench_login_flood:make_app", "--factory", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"], env=env)
        for _ in range(300):
            try:
                if httpx.get(f"{base}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        pid = int(subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                 text=True).stdout.split()[0])
        idle = memory(pid)

        alone: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=authenticated, args=(base, token, stop, alone))
        t.start()
        time.sleep(min(5.0, args.seconds / 2))
        stop.set()
        t.join()

        under: list[float] = []
        stop = threading.Event()
        results: multiprocessing.Queue = multiprocessing.Queue()
        attackers = multiprocessing.Process(target=attack,
                                            args=(base, args.seconds, args.attackers, results))
        attackers.start()
        time.sleep(1)  # let the flood build up before measuring
        measure = threading.Thread(target=authenticated, args=(base, token, stop, under))
        measure.start()
        peak_rss = 0
        end = time.monotonic() + args.seconds - 2
        while time.monotonic() < end:
            peak_rss = max(peak_rss, memory(pid)["VmRSS"])
            time.sleep(0.1)
        stop.set()
        measure.join(60)
        seen = collections.Counter(results.get(timeout=120))
        attackers.join(60)
        after = memory(pid)
        with httpx.Client(base_url=base, transport=httpx.HTTPTransport(
                local_address="127.0.0.1"), timeout=30) as c:
            real = c.post("/api/v1/auth/login", json={"username": "victim", "password": PASSWORD})
        print(f"database: {'PostgreSQL' if args.pg else 'SQLite'}; one worker (pid {pid}); "
              f"{args.attackers} attackers for {args.seconds:.0f} s")
        print(f"worker memory: idle RSS {idle['VmRSS']} MiB; peak RSS sampled {peak_rss} MiB; "
              f"VmHWM {after['VmHWM']} MiB; RSS after {after['VmRSS']} MiB")
        print(f"authenticated GET alone : n={len(alone)} p50 {pct(alone, 50) * 1000:.1f} ms  "
              f"p99 {pct(alone, 99) * 1000:.1f} ms")
        print(f"authenticated GET attack: n={len(under)} p50 {pct(under, 50) * 1000:.1f} ms  "
              f"p99 {pct(under, 99) * 1000:.1f} ms  mean "
              f"{statistics.mean(under) * 1000 if under else float('nan'):.1f} ms")
        print("attack answers: " + ", ".join(f"{k} x{v}" for k, v in seen.most_common()))
        print(f"the real user from its own address afterwards: {real.status_code} "
              f"{real.json().get('code', 'ok')}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if pg_name:
            from sqlalchemy import create_engine, text

            admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
