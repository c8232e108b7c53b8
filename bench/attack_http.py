"""A bounded attack on the HTTP door while an authenticated client keeps working.

    python bench/attack_http.py [--quick | --smoke] [--database-url ADMIN_URL]
                                [--markdown FILE] [--timeout S] [phase sizes ...]

Prepares its own database (a SQLite file in a temporary folder, or with ``--database-url`` a
PostgreSQL database of its own made through that admin URL on this machine and dropped
afterwards), seeds a union with vouchers, a merchant, its cashier (API token) and two users
who log in with a password (``staff`` and the victim ``kadmin_b``), and starts the real server:
``civicvoucher serve --workers 2`` on 127.0.0.1. Then, while an authenticated client (a
process of its own, so the attackers' event loop does not slow it) asks GET /api/v1/auth/me
every 50 ms and redeems a scanned QR payload every tenth request, it runs:

  0. baseline: nothing but the client;
  1. 50 MB JSON bodies (50,000,000 bytes, under the server's 52,428,800-byte body limit)
     with a junk token to POST /api/v1/redemptions, six at once;
  2. ``[`` x 100,000 with a junk token to every mutating route in the OpenAPI document;
  3. 10,000 wrong passwords for ``kadmin_b`` from 127.0.0.2; then ``kadmin_b`` logs in with
     the right one from 127.0.0.3;
  4. 64 concurrent logins of unknown usernames from 100 loopback source addresses
     (127.0.1.1 ...: the client socket binds its local address; all of 127.0.0.0/8 is
     loopback on Linux).

Per phase it prints each uvicorn worker's peak RSS (the server's child processes, sampled
from /proc every 50 ms) and its RSS once the phase has settled, the authenticated client's
p50/p99 latency during the phase, the attack requests' status counts (with the problem
``code``), and whether the real user could log in afterwards (from a fresh address); at the
end a Markdown table, each measure beside its target (worker memory under 300 MB, client p99
under 100 ms, the real user logs in). Memory MB are 2**20 bytes; a body's MB are 10**6.

``--quick`` is a run of about a minute, ``--smoke`` the smallest (seconds; the test suite
runs it). Sizes can be set one by one (``--wrong-passwords 500``...). Loopback only, and it
stops by itself: every request has a timeout and the whole run a hard one (``--timeout``),
after which the server's process group is ended and the database dropped, as on every other
exit path. Exit status: 0 when the run completed and reported, whatever the measures; non-zero
only when the script itself failed (the server did not start, the hard timeout struck ...).

The machine is shared: latency figures are of this run on this machine, not a capacity claim.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_harness import SECRET, Server, pct, rss_mb, setup, throwaway_pg

API = "/api/v1"
PASSWORD = "correct-horse-battery-2020"
TARGET_MB, TARGET_P99_MS = 300.0, 100.0
JUNK = {"Authorization": "Bearer cvk_junk-token-for-the-attack"}
CLIENT_ADDR, BIG_ADDR, NESTED_ADDR = "127.0.0.1", "127.0.3.1", "127.0.3.2"
GUESSER_ADDR, VICTIM_ADDR = "127.0.0.2", "127.0.0.3"

PRESETS: dict[str, dict] = {
    "full": dict(baseline_s=10.0, big_mb=50, big_concurrency=6, big_rounds=2,
                 nested_depth=100_000, nested_rounds=3, wrong_passwords=10_000,
                 guess_concurrency=16, unknown_logins=640, unknown_concurrency=64,
                 unknown_addresses=100, settle_s=3.0, vouchers=1500, timeout=1500.0),
    "quick": dict(baseline_s=4.0, big_mb=50, big_concurrency=6, big_rounds=1,
                  nested_depth=100_000, nested_rounds=1, wrong_passwords=2000,
                  guess_concurrency=16, unknown_logins=128, unknown_concurrency=64,
                  unknown_addresses=100, settle_s=2.0, vouchers=400, timeout=400.0),
    "smoke": dict(baseline_s=2.0, big_mb=2, big_concurrency=2, big_rounds=1,
                  nested_depth=100_000, nested_rounds=1, wrong_passwords=30,
                  guess_concurrency=8, unknown_logins=8, unknown_concurrency=8,
                  unknown_addresses=4, settle_s=0.5, vouchers=30, timeout=240.0),
}


class HardTimeout(SystemExit):
    """The run's time is up: unwinds through every ``finally`` (server, database, files)."""


# --- the authenticated client, in a process of its own ---------------------------------------


def client_main(base_url: str, token: str, vouchers: list, qr_key: bytes, interval: float,
                redeem_every: int, ready, stop, out) -> None:
    """GET /auth/me every ``interval`` s, one at a time; every ``redeem_every``-th request a
    redemption of the next voucher by its QR payload. Sets ``ready`` once a first request has
    succeeded; sends back (start, seconds, status, kind) for every request, ``start`` on the
    machine's monotonic clock (the same in every process)."""
    from civicvoucher.api import qr

    class V:  # what make_payload reads
        def __init__(self, vid, code):
            self.id, self.code = vid, code

    samples: list[tuple[float, float, str, str]] = []
    todo = list(reversed(vouchers))
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDR)
    with httpx.Client(base_url=base_url, transport=transport, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        n = 0
        while not stop.is_set():
            n += 1
            redeem = n % redeem_every == 0 and todo
            if redeem:
                vid, code = todo.pop()
                payload, _ = qr.make_payload(qr_key, V(vid, code), period_s=30)
            t0 = time.monotonic()
            try:
                if redeem:
                    r = c.post(f"{API}/redemptions", json={
                        "payload": payload, "order_amount_fen": 1500},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
                else:
                    r = c.get(f"{API}/auth/me")
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            took = time.monotonic() - t0
            samples.append((t0, took, status, "redeem" if redeem else "me"))
            if status.startswith("2"):
                ready.set()
            stop.wait(max(0.0, interval - took))
    out.send(samples)
    out.close()


class AuthClient:
    def __init__(self, base_url: str, info: dict, interval: float = 0.05,
                 redeem_every: int = 10) -> None:
        ctx = mp.get_context("spawn")
        self.stop_evt, self.ready = ctx.Event(), ctx.Event()
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=client_main, daemon=True, args=(
            base_url, info["token"], list(map(tuple, info["vouchers"])), info["qr_key"],
            interval, redeem_every, self.ready, self.stop_evt, send))
        self.samples: list[tuple[float, float, str, str]] = []

    def start(self, timeout: float = 120.0) -> None:
        """Start, and wait until the client is working (its imports take a while)."""
        self.proc.start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"the authenticated client did not get a 2xx in {timeout:.0f} s")

    def finish(self) -> None:
        self.stop_evt.set()
        if self.recv.poll(45):
            self.samples = self.recv.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# --- worker memory -------------------------------------------------------------------------


class MemorySampler(threading.Thread):
    """RSS of every worker of the server every ``every`` s: (monotonic time, pid, MB)."""

    def __init__(self, server: Server, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.server, self.every = server, every
        self.samples: list[tuple[float, int, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            now = time.monotonic()
            for pid in self.server.worker_pids():
                mb = rss_mb(pid)
                if mb is not None:
                    self.samples.append((now, pid, mb))
            self.halt.wait(self.every)

    def now(self) -> dict[int, float]:
        return {pid: mb for pid in self.server.worker_pids() if (mb := rss_mb(pid)) is not None}

    def peaks(self, t0: float, t1: float) -> dict[int, float]:
        peak: dict[int, float] = {}
        for t, pid, mb in self.samples:
            if t0 <= t <= t1:
                peak[pid] = max(peak.get(pid, 0.0), mb)
        return peak


# --- phases --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    what: str
    t0: float = 0.0
    t1: float = 0.0
    attack: Counter = field(default_factory=Counter)
    peaks: dict[int, float] = field(default_factory=dict)
    after: dict[int, float] = field(default_factory=dict)
    before_pids: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    client_bad: Counter = field(default_factory=Counter)
    login_user: str = ""
    login_from: str = ""
    login: str = ""

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def lost_workers(self) -> int:
        """Workers that were serving when the phase began and had gone when it settled
        (killed and replaced by uvicorn's supervisor: their requests were dropped)."""
        return len(self.before_pids - set(self.after))

    @property
    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0.0)

    @property
    def p50(self) -> float | None:
        return pct(self.latencies, 50) * 1000 if self.latencies else None

    @property
    def p99(self) -> float | None:
        return pct(self.latencies, 99) * 1000 if self.latencies else None

    @property
    def logged_in(self) -> bool:
        return self.login.startswith("200")


def label(r: httpx.Response) -> str:
    """``401 unauthenticated``: the status and the problem's code, when there is one."""
    code = ""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        with contextlib.suppress(ValueError, AttributeError):
            code = str(r.json().get("code") or "")
    return f"{r.status_code} {code}".strip()


class Attack:
    """The attack's HTTP clients, one per source address, and the phases it runs."""

    def __init__(self, base_url: str, sizes: dict) -> None:
        self.base_url, self.sizes = base_url, sizes
        self.clients: dict[str, httpx.AsyncClient] = {}

    def client(self, addr: str, timeout: float = 60.0) -> httpx.AsyncClient:
        if addr not in self.clients:
            self.clients[addr] = httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout,
                transport=httpx.AsyncHTTPTransport(local_address=addr, limits=httpx.Limits(
                    max_connections=100, max_keepalive_connections=100)))
        return self.clients[addr]

    async def close(self) -> None:
        for c in self.clients.values():
            await c.aclose()

    async def flood(self, n: int, concurrency: int, send) -> Counter:
        """``send(i)`` for i in range(n), ``concurrency`` at a time; status counts."""
        counts: Counter = Counter()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                try:
                    counts[label(await send(i))] += 1
                except httpx.HTTPError as exc:
                    counts[type(exc).__name__] += 1

        await asyncio.gather(*(one(i) for i in range(n)))
        return counts

    async def login(self, addr: str, username: str, password: str) -> httpx.Response:
        return await self.client(addr).post(f"{API}/auth/login", json={
            "username": username, "password": password})

    async def big_bodies(self) -> Counter:
        z = self.sizes
        head = b'{"payload": "cv1.1.1.x", "order_amount_fen": 1500, "pad": ['
        pad = b"0," * ((z["big_mb"] * 1_000_000 - len(head) - 3) // 2)
        body = head + pad + b"0]}"  # a list of ~25 million numbers: what parsing costs most
        c = self.client(BIG_ADDR, timeout=180)
        return await self.flood(z["big_rounds"] * z["big_concurrency"], z["big_concurrency"],
                                lambda i: c.post(f"{API}/redemptions", content=body, headers={
                                    **JUNK, "Content-Type": "application/json",
                                    "Idempotency-Key": f"big-{uuid.uuid4()}"}))

    async def mutating_routes(self) -> list[tuple[str, str]]:
        doc = (await self.client(NESTED_ADDR).get(f"{API}/openapi.json")).json()
        routes = []
        for path, item in sorted(doc["paths"].items()):
            for method in ("post", "put", "patch", "delete"):
                if method in item:
                    concrete = "/".join("1" if p.startswith("{") else p for p in path.split("/"))
                    routes.append((method.upper(), concrete))
        return routes

    async def nested(self, routes: list[tuple[str, str]]) -> Counter:
        z = self.sizes
        body = b"[" * z["nested_depth"]
        c = self.client(NESTED_ADDR)
        todo = routes * z["nested_rounds"]
        return await self.flood(len(todo), 4, lambda i: c.request(
            todo[i][0], todo[i][1], content=body, headers={
                **JUNK, "Content-Type": "application/json",
                "Idempotency-Key": f"nest-{uuid.uuid4()}"}))

    async def guesses(self, victim: str) -> Counter:
        z = self.sizes
        return await self.flood(z["wrong_passwords"], z["guess_concurrency"],
                                lambda i: self.login(GUESSER_ADDR, victim, f"wrong-guess-{i:06d}"))

    async def unknown_users(self) -> Counter:
        z = self.sizes
        addrs = [f"127.0.{1 + k // 250}.{1 + k % 250}" for k in range(z["unknown_addresses"])]
        return await self.flood(z["unknown_logins"], z["unknown_concurrency"], lambda i: self.login(
            addrs[i % len(addrs)], f"nobody-{uuid.uuid4().hex[:12]}", f"guess-{i:06d}-xxxx"))


async def run_phases(attack: Attack, mem: MemorySampler, sizes: dict,
                     say) -> tuple[list[Phase], int]:
    z = sizes
    routes = await attack.mutating_routes()
    phases = [
        Phase("0 baseline", "no attack, the client alone"),
        Phase("1 big bodies", f"{z['big_mb']} MB JSON bodies, junk token, POST {API}/redemptions,"
              f" {z['big_concurrency']} at once x {z['big_rounds']}"),
        Phase("2 nested JSON", f"'[' x {z['nested_depth']:,}, junk token, to each of "
              f"{len(routes)} mutating routes x {z['nested_rounds']}"),
        Phase("3 wrong passwords", f"{z['wrong_passwords']:,} wrong passwords for kadmin_b "
              f"from {GUESSER_ADDR}, {z['guess_concurrency']} at once"),
        Phase("4 unknown users", f"{z['unknown_logins']:,} logins of unknown usernames, "
              f"{z['unknown_concurrency']} at once, from {z['unknown_addresses']} addresses"),
    ]
    work = [
        lambda: asyncio.sleep(z["baseline_s"], Counter()),
        attack.big_bodies,
        lambda: attack.nested(routes),
        lambda: attack.guesses("kadmin_b"),
        attack.unknown_users,
    ]
    for n, (ph, run) in enumerate(zip(phases, work, strict=True)):
        say(f"\n== phase {ph.name}: {ph.what} ==")
        ph.before_pids = set(mem.now())
        ph.t0 = time.monotonic()
        ph.attack = await run()
        ph.t1 = time.monotonic()
        ph.peaks = mem.peaks(ph.t0, ph.t1)
        for pid, mb in mem.now().items():  # a phase shorter than a sampling period has one too
            ph.peaks[pid] = max(ph.peaks.get(pid, 0.0), mb)
        await asyncio.sleep(z["settle_s"])
        ph.after = mem.now()
        ph.login_user = "kadmin_b" if ph.name.startswith("3") else "staff"
        ph.login_from = VICTIM_ADDR if ph.name.startswith("3") else f"127.0.2.{n + 1}"
        try:
            ph.login = label(await attack.login(ph.login_from, ph.login_user, PASSWORD))
        except httpx.HTTPError as exc:
            ph.login = type(exc).__name__
        say(f"  attack requests: {sum(ph.attack.values()):,} in {ph.seconds:.1f} s: "
            f"{counts_text(ph.attack)}")
        say(f"  worker peak RSS: {rss_text(ph.peaks)}; settled: {rss_text(ph.after)} "
            f"(target < {TARGET_MB:.0f} MB: {mark(ph.peak_mb < TARGET_MB)})"
            + (f"; {ph.lost_workers} worker(s) died and were replaced" if ph.lost_workers
               else ""))
        say(f"  {ph.login_user} logs in from {ph.login_from} afterwards: "
            f"{'yes' if ph.logged_in else 'no'} ({ph.login}) (target: yes)")
    return phases, len(routes)


def counts_text(c: Counter) -> str:
    return ", ".join(f"{k} x{v:,}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "-"


def rss_text(mbs: dict[int, float]) -> str:
    return " / ".join(f"{mb:,.0f}" for _, mb in sorted(mbs.items())) + " MB" if mbs else "-"


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def attribute(phases: list[Phase], samples: list) -> None:
    """Each of the client's requests belongs to the phase during which it started."""
    for t0, took, status, _kind in samples:
        for ph in phases:
            if ph.t0 <= t0 <= ph.t1:
                ph.latencies.append(took)
                if not status.startswith("2"):
                    ph.client_bad[status] += 1
                break


def report(phases: list[Phase], header: list[str]) -> str:
    lines = [*header, "",
             f"Targets: worker peak RSS < {TARGET_MB:.0f} MB, authenticated client p99 < "
             f"{TARGET_P99_MS:.0f} ms, the real user logs in afterwards. Peak and settled RSS "
             "list every worker process seen (a third value: a worker was replaced); "
             "workers lost: killed during the phase (uvicorn's supervisor restarts a worker "
             "whose event loop stops answering its health check).", "",
             "| phase | attack requests (status x count) | s | worker peak RSS (MB) | "
             "settled RSS (MB) | workers lost | client p50 / p99 (ms) | "
             "client requests (not 2xx) | real user logs in after | targets |",
             "|---|---|---:|---|---|---:|---|---|---|---|"]
    for ph in phases:
        missed = [w for w, ok in (("memory", ph.peak_mb < TARGET_MB),
                                  ("p99", ph.p99 is not None and ph.p99 < TARGET_P99_MS),
                                  ("login", ph.logged_in)) if not ok]
        bad = counts_text(ph.client_bad) if ph.client_bad else "0"
        lines.append(
            f"| {ph.name} | {counts_text(ph.attack)} | {ph.seconds:.1f} | "
            f"{rss_text(ph.peaks).removesuffix(' MB')} | {rss_text(ph.after).removesuffix(' MB')}"
            f" | {ph.lost_workers} | {ms(ph.p50)} / {ms(ph.p99)} | {len(ph.latencies):,} ({bad}) | "
            f"{ph.login_user}: {'yes' if ph.logged_in else 'no'} ({ph.login}) | "
            f"{'all met' if not missed else 'missed: ' + ', '.join(missed)} |")
    return "\n".join(lines)


# --- the run -------------------------------------------------------------------------------


def add_login_users(url: str, merchant: int) -> None:
    """Two cashiers who log in with a password: ``staff`` (checked after every phase) and
    ``kadmin_b`` (the victim of the password guessing)."""
    from civicvoucher.auth.service import create_user
    from civicvoucher.db import Database

    db = Database(url)
    with db.session() as s:
        for name in ("staff", "kadmin_b"):
            create_user(s, username=name, role="cashier", merchant_id=merchant, password=PASSWORD)
    db.dispose()


def describe_db(url: str) -> str:
    if url.startswith("sqlite"):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (file in a temporary folder)"
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.connect() as c:
        version = c.execute(text("SHOW server_version")).scalar()
    eng.dispose()
    return f"PostgreSQL {version} on 127.0.0.1 (a database of its own, dropped afterwards)"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short",
                              "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(Path(__file__).parent), "status",
                                "--porcelain", "--", "src"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + (" (src/ changed)" if dirty else "") or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(url: str, sizes: dict, workers: int, mode: str, tmp: Path, say,
        server_log: Path | None = None) -> str:
    load0, commit = os.getloadavg()[0], git_commit()  # the code the server runs: now
    say(f"setting up {sizes['vouchers']} vouchers and the users ...")
    info = setup(url, sizes["vouchers"])
    add_login_users(url, info["merchant"])
    db_text = describe_db(url)
    env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": url, "CIVICVOUCHER_SECRET_KEY": SECRET,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    server = Server(env, workers=workers, how="serve", log=tmp / "server.log")
    client = mem = attack = None
    try:
        server.wait_healthy()
        say(f"server: civicvoucher serve --workers {workers} on {server.url}, pid {server.pid}, "
            f"workers {server.worker_pids()}; {db_text}")
        mem = MemorySampler(server)
        mem.start()
        client = AuthClient(server.url, info)
        client.start()
        attack = Attack(server.url, sizes)

        async def main() -> tuple[list[Phase], int]:
            try:
                return await run_phases(attack, mem, sizes, say)
            finally:
                await attack.close()

        phases, n_routes = asyncio.run(main())
        client.finish()
        attribute(phases, client.samples)
        for ph in phases:
            say(f"  client during {ph.name}: {len(ph.latencies):,} requests, p50 {ms(ph.p50)} ms,"
                f" p99 {ms(ph.p99)} ms (target < {TARGET_P99_MS:.0f} ms: "
                f"{mark(ph.p99 is not None and ph.p99 < TARGET_P99_MS)}), not 2xx: "
                f"{counts_text(ph.client_bad) if ph.client_bad else 0}")
    finally:
        if client is not None and client.proc.is_alive():
            client.stop_evt.set()
            client.proc.join(5)
            if client.proc.is_alive():
                client.proc.kill()
        if mem is not None:
            mem.halt.set()
        server.stop()
        if server_log is not None:
            server_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / "server.log", server_log)
    load = os.getloadavg()
    header = [
        f"# HTTP attack: {mode} run on {db_text.split(' (')[0]}", "",
        f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code at commit {commit}",
        f"- database: {db_text}",
        f"- server: `civicvoucher serve --workers {workers}` on 127.0.0.1",
        f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {load0:.1f} at the start, "
        f"{load[0]:.1f} at the end "
        "(shared with other work: latencies are this run's, not a capacity claim)",
        "- client: GET /api/v1/auth/me every 50 ms, one at a time, a QR redemption every tenth "
        "request; its requests are counted in the phase during which they started",
        "- sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()),
        f"- mutating routes found in the OpenAPI document: {n_routes}",
    ]
    for ph in phases:
        header.append(f"- phase {ph.name}: {ph.what}")
    return report(phases, header)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a run of about a minute")
    size.add_argument("--smoke", action="store_true", help="the smallest run (the test's)")
    ap.add_argument("--database-url", help="a PostgreSQL admin URL on this machine: a database "
                    "of its own is made through it and dropped afterwards (default: SQLite "
                    "in a temporary folder)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", type=Path, help="also write the report to this file")
    ap.add_argument("--server-log", type=Path, help="keep the server's log in this file")
    for name, value in PRESETS["full"].items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(value), default=None,
                        help=f"(full {value}, quick {PRESETS['quick'][name]}, "
                             f"smoke {PRESETS['smoke'][name]})")
    args = ap.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = {k: (getattr(args, k) if getattr(args, k) is not None else v)
             for k, v in PRESETS[mode].items()}

    def say(text: str) -> None:
        print(text, flush=True)

    def time_up(signum, _frame):
        raise HardTimeout(f"attack_http: stopped by {signal.Signals(signum).name} "
                          f"(hard timeout {sizes['timeout']:.0f} s or a signal); cleaned up")

    signal.signal(signal.SIGALRM, time_up)
    signal.signal(signal.SIGTERM, time_up)
    signal.alarm(int(sizes["timeout"]))
    tmp = Path(tempfile.mkdtemp(prefix="cv-attack-"))
    try:
        if args.database_url:
            with throwaway_pg(args.database_url, prefix="cv_attack") as url:
                text = run(url, sizes, args.workers, mode, tmp, say, args.server_log)
        else:
            text = run(f"sqlite:///{tmp / 'attack.db'}", sizes, args.workers, mode, tmp, say,
                       args.server_log)
    finally:
        signal.alarm(0)
        shutil.rmtree(tmp, ignore_errors=True)
    say("\n" + text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n", encoding="utf-8")
        say(f"\nwritten to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
