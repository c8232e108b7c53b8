"""The policy report over ~100,000 vouchers, beside a raw DuckDB scan of the same tables.

    python bench/bench_report.py                  # SQLite, 20 unions x 834 members x 6 vouchers
    python bench/bench_report.py --db postgresql  # CIVICVOUCHER_BENCH_PG_URL or local
    python bench/bench_report.py --members 200 --runs 5

Setup (the world, built through the real services by tests/analytics/bigworld.py) is not
timed. Timed, best of ``--runs``: ``compute_report`` (stage, every table, headlines), then the
baseline: a DuckDB cursor with the same scanner attaching the same database and reading the
voucher and redemption tables once (count and sum by form and status) — the floor any report
pays to read its inputs. Printed as seconds and as a ratio report/baseline. This used to be a
wall-clock assert in tests/analytics/test_speed.py; timing belongs here, run by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.analytics.bigworld import build_big_world  # noqa: E402

from civicvoucher.analytics import compute_report, duck  # noqa: E402
from civicvoucher.db import Database  # noqa: E402
from civicvoucher.schema import upgrade  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB = "cv_bench_report"


def fresh(kind: str, workdir: Path) -> Database:
    if kind == "sqlite":
        db = Database(f"sqlite:///{workdir / 'report.db'}")
    else:
        admin_url = os.environ.get("CIVICVOUCHER_BENCH_PG_URL", PG_URL)
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
            c.execute(text(f"CREATE DATABASE {DB}"))
        admin.dispose()
        db = Database(admin_url.rsplit("/", 1)[0] + f"/{DB}")
    upgrade(db.engine)
    return db


def baseline(url: str) -> float:
    """One read of the voucher and redemption tables through the same DuckDB scanner."""
    with duck.open_source(url) as src:
        a = src.alias
        t0 = time.perf_counter()
        src.con.execute(f"""
            SELECT CAST(form AS VARCHAR), CAST(status AS VARCHAR), count(*),
                   sum(CAST(amount_fen AS BIGINT))
            FROM {a}.voucher GROUP BY ALL""").fetchall()
        src.con.execute(f"""
            SELECT CAST(status AS VARCHAR), count(*), sum(CAST(amount_fen AS BIGINT))
            FROM {a}.redemption GROUP BY ALL""").fetchall()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--unions", type=int, default=20)
    ap.add_argument("--members", type=int, default=834, help="members per union")
    ap.add_argument("--redemptions", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    published = tomllib.loads((resources.files("civicvoucher")
                               / "scenarios/data/shanxi-2020.toml").read_text("utf-8"))["published"]
    with tempfile.TemporaryDirectory() as tmp:
        db = fresh(args.db, Path(tmp))
        t0 = time.perf_counter()
        build_big_world(db, unions=args.unions, members_per_union=args.members,
                        redemptions=args.redemptions)
        url = db.engine.url.render_as_string(hide_password=False)
        db.dispose()
        print(f"{args.db}: world of {args.unions * args.members * 6:,} vouchers built in "
              f"{time.perf_counter() - t0:.1f} s (not timed)")
        baseline(url)  # load the scanner once, outside the timings, for both sides
        report_s, raw_s = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            report = compute_report(url, scale=0.01, published=published,
                                    guarantee_by_county={"140105": 1.0})
            report_s.append(time.perf_counter() - t)
            raw_s.append(baseline(url))
        total = report.table("redemption_rate").row(form="total")
        print(f"report:   best {min(report_s):.3f} s of {args.runs} "
              f"({', '.join(f'{x:.3f}' for x in report_s)}); "
              f"{total['vouchers']:,} vouchers, {total['redeemed']:,} redeemed")
        print(f"baseline: best {min(raw_s):.3f} s (raw DuckDB scan of voucher + redemption)")
        print(f"ratio report/baseline: {min(report_s) / min(raw_s):.1f}x")


if __name__ == "__main__":
    main()
