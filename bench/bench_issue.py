"""Issue 1,000,000 vouchers through the engine, beside the raw bulk load of the same rows.

    python bench/bench_issue.py --db sqlite           # embedded default
    python bench/bench_issue.py --db postgresql       # CIVICVOUCHER_BENCH_PG_URL or local

Setup (orgs, members, funds) is not timed. Timed: ``issue()`` for every union (entitlements,
vouchers, ledger transfers, fund checks), then the baseline: the same number of voucher rows
loaded raw (psql \\copy on PostgreSQL, one executemany transaction on SQLite) into a copy of
the voucher table. Peak memory is the process's max RSS. Not a test; run by hand.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.world import make_id, make_uscc, program_spec  # noqa: E402

from civicvoucher.db import Database  # noqa: E402
from civicvoucher.funds.service import deposit  # noqa: E402
from civicvoucher.members.rules import MemberRow, MemberStatus  # noqa: E402
from civicvoucher.members.service import add_members  # noqa: E402
from civicvoucher.orgs.service import create_org  # noqa: E402
from civicvoucher.programs.service import create_program  # noqa: E402
from civicvoucher.programs.spec import parse_program_spec  # noqa: E402
from civicvoucher.schema import upgrade  # noqa: E402
from civicvoucher.vouchers.issuance import issue  # noqa: E402

PG_URL = os.environ.get("CIVICVOUCHER_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2020, 4, 27, 9)


def fresh_db(kind: str, workdir: Path) -> Database:
    if kind == "sqlite":
        db = Database(f"sqlite:///{workdir / 'bench.db'}")
    else:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("DROP DATABASE IF EXISTS cv_bench WITH (FORCE)"))
            c.execute(text("CREATE DATABASE cv_bench"))
        admin.dispose()
        db = Database(PG_URL.rsplit("/", 1)[0] + "/cv_bench")
    upgrade(db.engine)
    return db


def setup(db: Database, unions: int, per_union: int) -> list[int]:
    ids = []
    with db.session() as s:
        prov = create_org(s, level="province", name="省总工会", division_code="140000")
        city = create_org(s, level="city", name="太原市总工会", division_code="140100",
                          parent_id=prov.id)
        county = create_org(s, level="county", name="小店区总工会", division_code="140105",
                            parent_id=city.id)
        n = 0
        for u in range(unions):
            code = make_uscc(u + 1)
            org = create_org(s, level="union", name=f"union {u}", uscc=code,
                             unit_type="enterprise", parent_id=county.id)
            ids.append(org.id)
            rows = []
            for _ in range(per_union):
                n += 1
                rows.append((n, MemberRow(name="职工", id_number=_unique_id(n), phone=None,
                                          union=code, status=MemberStatus.ACTIVE)))
            add_members(s, rows, key=b"bench")
            deposit(s, org_id=org.id, amount_fen=per_union * 30000, source="dues",
                    idem_key=f"d{u}")
        create_program(s, spec=parse_program_spec(program_spec("bench")))
    return ids


def _unique_id(n: int) -> str:
    # make_id repeats after 1,000 people per birthday; vary the area and year too
    area = ["140105", "140106", "140107", "140108", "140109", "140110"][n % 6]
    return make_id(n // 6, area=area) if n < 6000 else make_id_wide(n, area)


def make_id_wide(n: int, area: str) -> str:
    from civicvoucher.members.rules import with_ric_check

    year = 1960 + (n // 336000) % 40
    month, day, seq = (n // 1000) % 12 + 1, (n // 12000) % 28 + 1, n % 1000
    body = f"{area}{year}{month:02d}{day:02d}{seq:03d}"
    return with_ric_check(body)


def timed_issue(db: Database, union_ids: list[int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    total = 0
    for uid in union_ids:
        with db.session() as s:
            total += issue(s, union_id=uid, program="bench", idem_key=f"i{uid}",
                           now=NOW).issuance.vouchers_issued
    return time.perf_counter() - t0, total


def baseline(db: Database, rows: int, workdir: Path) -> float:
    """The same number of voucher-shaped rows, loaded raw."""
    cols = "code, program_id, product_id, union_id, member_id, issuance_id, amount_fen, " \
           "threshold_fen, form, status, valid_from, expires_at, issued_at, region_code"
    sample = lambda: (secrets.token_hex(13).upper(), 1, 1, 4, 1, 1, 30000, 0, "digital",  # noqa: E731
                      "issued", "2020-04-26 00:00:00", "2020-07-11 00:00:00", NOW.isoformat(" "),
                      "140105")
    with db.engine.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS voucher_raw"))
        if db.dialect == "postgresql":
            c.execute(text("CREATE TABLE voucher_raw (LIKE voucher INCLUDING ALL)"))
        else:
            ddl = c.execute(text("SELECT sql FROM sqlite_master WHERE name='voucher'")).scalar()
            c.execute(text(ddl.replace('"voucher"', "voucher_raw", 1).replace(
                "CREATE TABLE voucher", "CREATE TABLE voucher_raw", 1)))
    if db.dialect == "postgresql":
        path = workdir / "raw.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            for _ in range(rows):
                w.writerow(sample())
        url = db.engine.url
        t0 = time.perf_counter()
        subprocess.run(["psql", "-q", "-h", url.host or "127.0.0.1", "-U", url.username or "postgres",
                        "-d", url.database, "-c",
                        f"\\copy voucher_raw ({cols}) FROM '{path}' CSV"], check=True)
        return time.perf_counter() - t0
    data = [sample() for _ in range(rows)]
    raw = db.engine.raw_connection()
    t0 = time.perf_counter()
    cur = raw.cursor()
    cur.execute("BEGIN")
    cur.executemany(f"INSERT INTO voucher_raw ({cols}) VALUES ({', '.join('?' * 14)})", data)
    cur.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    raw.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--vouchers", type=int, default=1_000_000)
    ap.add_argument("--per-union", type=int, default=10_000)
    args = ap.parse_args()
    unions = max(1, args.vouchers // args.per_union)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = fresh_db(args.db, workdir)
        t0 = time.perf_counter()
        union_ids = setup(db, unions, args.per_union)
        print(f"setup: {unions} unions x {args.per_union} members in {time.perf_counter() - t0:.1f} s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        engine_s, n = timed_issue(db, union_ids)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        raw_s = baseline(db, n, workdir)
        print(f"{args.db}: issued {n:,} vouchers in {engine_s:.2f} s ({n / engine_s:,.0f}/s); "
              f"raw load of {n:,} rows {raw_s:.2f} s; ratio {engine_s / raw_s:.2f}x")
        print(f"peak RSS {rss_after / 1024:.0f} MiB (before issuing {rss_before / 1024:.0f} MiB)")
        db.dispose()


if __name__ == "__main__":
    main()
