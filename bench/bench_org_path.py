"""Subtree queries on the org tree (``path LIKE '/1/4/%'``) with and without migration
0007 (indexes), on PostgreSQL: the plans, from EXPLAIN ANALYZE.

    python bench/bench_org_path.py                 # 300,000 orgs
    python bench/bench_org_path.py --orgs 500000 --collation en_US.utf8

Loads N orgs (1 province, 11 cities, 117 counties, the rest unions under the counties) into a
scratch database (``cv_bench_orgpath``, dropped at the end) at migration 0004, explains the
subtree queries the code sends (orgs.service.subtree, the API's scoped org list), then
upgrades to head (0007 (indexes) makes ``ix_org_path`` a ``varchar_pattern_ops`` btree) and
explains them again. The database's collation is the cluster's unless ``--collation`` names
another: PostgreSQL before 17 treats only "C"/"POSIX" as C, so ``C.UTF-8`` counts as non-C
here. Not a test; run by hand. CIVICVOUCHER_BENCH_PG_URL names the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from civicvoucher.orgs.models import Org  # noqa: E402
from civicvoucher.schema import upgrade  # noqa: E402

PG_URL = os.environ.get("CIVICVOUCHER_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB = "cv_bench_orgpath"


def load(engine, n: int) -> None:
    """1 province (id 1), 11 cities (2-12), 117 counties (13-129), unions from id 130 on."""
    with engine.begin() as c:
        c.execute(text("""
            INSERT INTO org (id, parent_id, level, name, division_code, path, region_code,
                             created_at)
            SELECT 1, NULL, 'province', '省总工会', '140000', '/1/', '140000', now()
            UNION ALL
            SELECT g, 1, 'city', 'city ' || g, lpad((1400 + g - 1)::text, 4, '0') || '00',
                   '/1/' || g || '/', lpad((1400 + g - 1)::text, 4, '0') || '00', now()
            FROM generate_series(2, 12) g
            UNION ALL
            SELECT g, 2 + (g - 13) % 11, 'county', 'county ' || g,
                   (1400 + 1 + (g - 13) % 11)::text || lpad((1 + (g - 13) / 11)::text, 2, '0'),
                   '/1/' || (2 + (g - 13) % 11) || '/' || g || '/',
                   (1400 + 1 + (g - 13) % 11)::text || lpad((1 + (g - 13) / 11)::text, 2, '0'),
                   now()
            FROM generate_series(13, 129) g"""))
        c.execute(text("""
            INSERT INTO org (id, parent_id, level, name, uscc, unit_type, path, region_code,
                             created_at)
            SELECT g, p.id, 'union', 'union ' || g, 'U' || lpad(g::text, 17, '0'), 'enterprise',
                   p.path || g || '/', p.region_code, now()
            FROM generate_series(130, :n) g
            JOIN org p ON p.id = 13 + (g % 117)"""), {"n": n})
        c.execute(text("SELECT setval(pg_get_serial_sequence('org', 'id'), :n)"), {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE org"))


def queries(engine) -> list[tuple[str, object]]:
    with engine.connect() as c:
        county = c.execute(text("SELECT path FROM org WHERE id = 13")).scalar_one()
        city = c.execute(text("SELECT path FROM org WHERE id = 2")).scalar_one()
    return [
        (f"orgs.service.subtree of a county ({county})",
         select(Org).where(Org.path.startswith(county)).order_by(Org.path)),
        (f"API GET /orgs, a city admin's first page ({city})",
         select(Org).where(Org.path.startswith(city)).order_by(Org.id).limit(51)),
        (f"count of a county's unions ({county})",
         select(Org.id).where(Org.path.startswith(county), Org.level == "union")),
    ]


def explain(engine, title: str) -> None:
    print(f"\n=== {title} ===")
    with engine.connect() as c:
        print(c.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_org_path'")).scalar_one())
        for label, stmt in queries(engine):
            compiled = stmt.compile(dialect=engine.dialect)
            # The SQL and parameters exactly as the code sends them (path LIKE %(p)s || '%').
            plan = c.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS OFF) " + str(compiled),
                                     compiled.params).scalars().all()
            print(f"\n-- {label}")
            print("\n".join("   " + line.strip() if i == 0 else "   " + line
                            for i, line in enumerate(plan)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orgs", type=int, default=300_000)
    ap.add_argument("--collation", help="LC_COLLATE of the scratch database (TEMPLATE template0)")
    args = ap.parse_args()
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        extra = (f" TEMPLATE template0 LC_COLLATE '{args.collation}' LC_CTYPE '{args.collation}'"
                 if args.collation else "")
        c.execute(text(f"CREATE DATABASE {DB}{extra}"))
    engine = create_engine(PG_URL.rsplit("/", 1)[0] + f"/{DB}")
    try:
        with engine.connect() as c:
            print(c.execute(text("SELECT version()")).scalar_one())
            print("collation:", c.execute(text(
                "SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar_one())
        upgrade(engine, "0004")
        load(engine, args.orgs)
        with engine.connect() as c:
            print("orgs:", c.execute(text("SELECT count(*) FROM org")).scalar_one())
        explain(engine, "before: migration 0004 (plain btree on org.path)")
        upgrade(engine, "head")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE org"))
        explain(engine, "after: head (0007 (indexes))")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
