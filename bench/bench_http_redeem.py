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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_harness import SECRET, Server, pct, setup, throwaway_pg

ADMIN = os.environ.get("CIVICVOUCHER_BENCH_PG_ADMIN",
                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


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
    with throwaway_pg(ADMIN) as url:
        name = make_url(url).database
        print(f"setting up {args.http_requests + args.pgbench_tx} vouchers in {name} ...")
        info = setup(url, args.http_requests + args.pgbench_tx)
        http_v = info["vouchers"][:args.http_requests]
        pg_v = info["vouchers"][args.http_requests:]
        server = Server({**os.environ, "CIVICVOUCHER_DATABASE_URL": url,
                         "CIVICVOUCHER_SECRET_KEY": SECRET}, workers=args.workers)
        try:
            server.wait_healthy()
            port = server.port
            asyncio.run(http_load(port, info, http_v[:50], args.concurrency))  # warm up
            secs, lat, errors = asyncio.run(http_load(port, info, http_v[50:], args.concurrency))
            http_tps = len(lat) / secs
            tps, pg_lat, n = run_pgbench(url, info, pg_v, args.concurrency, args.pgbench_tx)
        finally:
            server.stop()
        print(f"concurrency {args.concurrency}, uvicorn workers {args.workers}, "
              f"PostgreSQL {name} on 127.0.0.1")
        print(f"HTTP    : {len(lat)} redemptions in {secs:.1f} s = {http_tps:,.0f}/s  "
              f"p50 {pct(lat, 50) * 1000:.1f} ms  p99 {pct(lat, 99) * 1000:.1f} ms  "
              f"mean {statistics.mean(lat) * 1000:.1f} ms  errors {errors or 'none'}")
        print(f"pgbench : {n} transactions = {tps:,.0f}/s  "
              f"p50 {pct(pg_lat, 50) * 1000:.2f} ms  p99 {pct(pg_lat, 99) * 1000:.2f} ms")
        print(f"ratio   : HTTP throughput is {http_tps / tps:.2%} of pgbench's "
              f"(pgbench {tps / http_tps:.1f}x); p50 latency x{pct(lat, 50) / pct(pg_lat, 50):.1f}")

if __name__ == "__main__":
    main()
