"""Redemption over HTTP on PostgreSQL, beside pgbench running the same SQL transaction.

    python bench/bench_http_redeem.py [--concurrency 8] [--http-requests 3000]
                                      [--pgbench-tx 3000] [--workers 4]

Makes a throwaway database on the local server (CIVICVOUCHER_BENCH_PG_ADMIN, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), issues vouchers, starts
``civicvoucher serve``-equivalent uvicorn workers on 127.0.0.1, and has N concurrent cashiers
redeem scanned QR payloads (POST /api/v1/redemptions with an Idempotency-Key each). Then
pgbench runs, at the same concurrency, the redemption's SQL on the same schema: look the key
and voucher up, insert the redemption, move the voucher with a conditional UPDATE, insert the
transfer, move the two account balances (the never-negative check in the UPDATE). It prints
throughput, p50/p99 latency of both and their ratio. Loopback only; the database is dropped.

What the HTTP side does on top of pgbench's transaction (and so what the ratio measures): token
lookup, the Idempotency-Key claim and its stored answer (two more commits), the audit entry
(the chain head row is a serialisation point), the voucher's spend-rules check, and Python.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text

ADMIN = os.environ.get("CIVICVOUCHER_BENCH_PG_ADMIN",
                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def setup(url: str, vouchers_needed: int) -> dict:
    from stdnum.cn import ric, uscc

    from civicvoucher.api.state import AppState
    from civicvoucher.auth.service import create_user
    from civicvoucher.auth.tokens import issue_token
    from civicvoucher.core import clock
    from civicvoucher.db import Database
    from civicvoucher.funds.service import deposit
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members
    from civicvoucher.merchants.models import Merchant
    from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
    from civicvoucher.merchants.service import add_merchants
    from civicvoucher.orgs.service import create_org
    from civicvoucher.programs.service import create_program
    from civicvoucher.programs.spec import parse_program_spec
    from civicvoucher.schema import upgrade
    from civicvoucher.vouchers.issuance import issue, outstanding_account
    from civicvoucher.vouchers.models import Voucher
    from civicvoucher.vouchers.redemption import payable_account

    db = Database(url)
    upgrade(db.engine)
    per_member = 10
    members = vouchers_needed // per_member + 1
    now = clock.now()

    def u(n: int) -> str:
        body = f"91140100{n:09d}"[:17]
        return body + uscc.calc_check_digit(body)

    with db.session() as s:
        prov = create_org(s, level="province", name="省", division_code="140000")
        city = create_org(s, level="city", name="市", division_code="140100", parent_id=prov.id)
        county = create_org(s, level="county", name="县", division_code="140105",
                            parent_id=city.id)
        union = create_org(s, level="union", name="工会", uscc=u(1), unit_type="enterprise",
                           parent_id=county.id)
        rows = []
        for n in range(members):
            body = f"1101011990{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
            body = f"{body[:6]}{1950 + n // 10000:04d}{body[10:]}"
            rows.append((n + 1, MemberRow(name=f"m{n}", id_number=body + ric.calc_check_digit(
                body + "0"), phone=None, union=u(1), status=MemberStatus.ACTIVE)))
        add_members(s, rows, key=SECRET.encode())
        add_merchants(s, [(1, MerchantRow(
            uscc=u(2), name="超市", mcc="5411", category=category_for_mcc("5411"),
            county_code="140105", channels=(Channel.OFFLINE,), status=MerchantStatus.ACTIVE))])
        merchant = s.execute(select(Merchant.id)).scalar_one()
        spec = parse_program_spec(dict(key="bench", name="bench", products=[dict(
            key="v", name="券", denominations_yuan=[10] * per_member,
            categories=["supermarket_fuel"], channels=["offline"],
            valid_from=now - timedelta(days=1), expires_at=now + timedelta(days=30))]))
        program, _ = create_program(s, spec=spec)
        deposit(s, org_id=union.id, amount_fen=members * per_member * 1000, source="fiscal",
                idem_key="bench")
        r = issue(s, union_id=union.id, program="bench", idem_key="bench")
        assert r.issuance.status == "completed", r.issuance.status
        cashier = create_user(s, username="cashier", role="cashier", merchant_id=merchant)
        token, _ = issue_token(s, user_id=cashier.user.id, kind="api", ttl=None)
        out_acct = outstanding_account(s, union.id, program.id)
        pay_acct = payable_account(s, merchant)
        vs = s.execute(select(Voucher.id, Voucher.code).order_by(Voucher.id)).all()
    state = AppState(db=db, secret_key=SECRET.encode())
    db.dispose()
    return dict(token=token, merchant=merchant, union=union.id, program=program.id,
                out_acct=out_acct, pay_acct=pay_acct, vouchers=vs, qr_key=state.qr_key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def http_load(port: int, info: dict, vouchers: list, concurrency: int) -> tuple:
    from civicvoucher.api import qr

    class V:  # what make_payload reads
        def __init__(self, vid, code):
            self.id, self.code = vid, code

    latencies: list[float] = []
    errors: dict[int, int] = {}
    queue = list(reversed(vouchers))
    headers = {"Authorization": f"Bearer {info['token']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30) as client:
        async def worker():
            while queue:
                vid, code = queue.pop()
                payload, _ = qr.make_payload(info["qr_key"], V(vid, code), period_s=30)
                t = time.perf_counter()
                r = await client.post("/api/v1/redemptions", json={
                    "payload": payload, "order_amount_fen": 1500},
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
                latencies.append(time.perf_counter() - t)
                if r.status_code != 201:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return time.perf_counter() - t0, latencies, errors


PGBENCH_SQL = """\\set amt 1000
SELECT nextval('bench_next') AS n \\gset
BEGIN;
SELECT id FROM redemption WHERE idem_key = 'pgb:' || :n;
SELECT id, code, status, amount_fen, union_id, program_id FROM voucher WHERE id = :n + {first};
SELECT id, status, category, county_code, channels FROM merchant WHERE id = {merchant};
INSERT INTO redemption (idem_key, request_hash, voucher_id, merchant_id, union_id, program_id,
  channel, order_amount_fen, amount_fen, status, transfer_id, created_at, posted_at,
  region_code)
  VALUES ('pgb:' || :n, 'h', :n + {first}, {merchant}, {union}, {program}, 'offline', 1500,
          :amt, 'posted', 'redeem:pgb:' || :n, now(), now(), '140105');
UPDATE voucher SET status = 'redeemed' WHERE id = :n + {first} AND status = 'issued';
SELECT id FROM transfer WHERE id = 'redeem:pgb:' || :n;
INSERT INTO transfer (id, debit_account_id, credit_account_id, amount, code, flags, created_at)
  VALUES ('redeem:pgb:' || :n, {out_acct}, {pay_acct}, :amt, 'redeem', 0, now());
UPDATE account SET debits_posted = debits_posted + :amt WHERE id = {out_acct}
  AND debits_posted + debits_pending + :amt <= credits_posted;
UPDATE account SET credits_posted = credits_posted + :amt WHERE id = {pay_acct};
END;
"""


def find_pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(p)
    raise SystemExit("pgbench not found")


def run_pgbench(url: str, info: dict, vouchers: list, concurrency: int, tx: int) -> tuple:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE SEQUENCE bench_next START 0 MINVALUE 0"))
    eng.dispose()
    first = vouchers[0][0]
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "redeem.sql"
    script.write_text(PGBENCH_SQL.format(first=first, **{k: info[k] for k in (
        "merchant", "union", "program", "out_acct", "pay_acct")}))
    per_client = tx // concurrency
    cmd = [find_pgbench(), "-n", "-c", str(concurrency), "-j", str(min(concurrency, 4)),
           "-t", str(per_client), "-f", str(script), "-l", "--log-prefix", str(tmp / "log"),
           conninfo]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    lat = []
    for f in tmp.glob("log*"):
        for line in f.read_text().splitlines():
            parts = line.split()
            lat.append(int(parts[2]) / 1e6)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    shutil.rmtree(tmp)
    return tps, lat, per_client * concurrency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--http-requests", type=int, default=3000)
    ap.add_argument("--pgbench-tx", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    name = f"cv_bench_{os.getpid()}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    server = None
    try:
        print(f"setting up {args.http_requests + args.pgbench_tx} vouchers in {name} ...")
        info = setup(url, args.http_requests + args.pgbench_tx)
        http_v = info["vouchers"][:args.http_requests]
        pg_v = info["vouchers"][args.http_requests:]
        port = free_port()
        env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": url,
               "CIVICVOUCHER_SECRET_KEY": SECRET}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "civicvoucher.api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
             "--log-level", "warning", "--no-access-log"], env=env)
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(http_load(port, info, http_v[:50], args.concurrency))  # warm up
        secs, lat, errors = asyncio.run(http_load(port, info, http_v[50:], args.concurrency))
        http_tps = len(lat) / secs
        tps, pg_lat, n = run_pgbench(url, info, pg_v, args.concurrency, args.pgbench_tx)
        print(f"concurrency {args.concurrency}, uvicorn workers {args.workers}, "
              f"PostgreSQL {name} on 127.0.0.1")
        print(f"HTTP    : {len(lat)} redemptions in {secs:.1f} s = {http_tps:,.0f}/s  "
              f"p50 {pct(lat, 50) * 1000:.1f} ms  p99 {pct(lat, 99) * 1000:.1f} ms  "
              f"mean {statistics.mean(lat) * 1000:.1f} ms  errors {errors or 'none'}")
        print(f"pgbench : {n} transactions = {tps:,.0f}/s  "
              f"p50 {pct(pg_lat, 50) * 1000:.2f} ms  p99 {pct(pg_lat, 99) * 1000:.2f} ms")
        print(f"ratio   : HTTP throughput is {http_tps / tps:.2%} of pgbench's "
              f"(pgbench {tps / http_tps:.1f}x); p50 latency x{pct(lat, 50) / pct(pg_lat, 50):.1f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
