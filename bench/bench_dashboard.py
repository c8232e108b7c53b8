"""The console dashboard (``analytics.dashboard.dashboard``) on a demo database, beside the
same SQL run raw by pgbench: ours / raw; from the rollup (``analytics/rollup.py``: what the
page does) and computed directly (``source="live"``, the oracle, what the page did before).

    civicvoucher demo --scale 1.0 --database-url postgresql+psycopg://postgres@127.0.0.1/cv
    python bench/bench_dashboard.py --url postgresql+psycopg://postgres@127.0.0.1/cv \\
        --repeat 10 --refresh --dirty 200 --out bench/results/dashboard-postgresql.md

``--refresh``: time a full rebuild of the rollup first (a database that had data before
migration 0012 needs one; the demo does it after its load). ``--dirty N``: also measure with N
unions marked changed since the last refresh (log rows inserted for N unions spread over the
province, as redemptions coming in would leave them; computed directly by each view), then time
the incremental refresh that consumes them.

For the province root and for the county federation with the most unions: the dashboard
function's wall time (median of ``--repeat`` calls, one session each, after a warm-up call),
then every statement that call sent, captured from the engine and rendered with its values
(psycopg's ``mogrify``), written to one pgbench script and run ``pgbench -n -r -t N`` (one
transaction = one dashboard's statements; ``-r`` gives each statement's latency).
Not a test; run by hand.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import event, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from civicvoucher.analytics import rollup  # noqa: E402
from civicvoucher.analytics.dashboard import dashboard  # noqa: E402
from civicvoucher.db import Database  # noqa: E402
from civicvoucher.rollup_schema import DIRTY, SUMMARIES  # noqa: E402


def libpq_args(url: str) -> list[str]:
    u = make_url(url)
    return ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U",
            u.username or "postgres", u.database]


def capture(db: Database, org_path: str | None, source: str = "auto") -> list[str]:
    """The statements one dashboard call sends, with their values inlined."""
    sent: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.session() as s:
            dashboard(s, org_path=org_path, source=source)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    u = make_url(db.url)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                         dbname=u.database) as conn:
        cur = psycopg.ClientCursor(conn)
        return [" ".join(cur.mogrify(sql, params).split()) for sql, params in sent]


def time_ours(db: Database, org_path: str | None, repeat: int,
              source: str = "auto") -> list[float]:
    with db.session() as s:
        dashboard(s, org_path=org_path, source=source)  # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        with db.session() as s:
            dashboard(s, org_path=org_path, source=source)
        out.append(time.perf_counter() - t)
    return out


def pgbench(url: str, statements: list[str], repeat: int) -> tuple[float, list[float], str]:
    """Average latency of the whole script (ms), each statement's (ms), pgbench's output."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        # one transaction, as the dashboard's session is (its SET LOCAL holds only there)
        f.write("BEGIN;\n" + "".join(s.rstrip(";") + ";\n" for s in statements) + "COMMIT;\n")
        path = f.name
    # one untimed pass (warm cache), then the timed one
    subprocess.run(["pgbench", "-n", "-t", "1", "-f", path, *libpq_args(url)],
                   check=True, capture_output=True)
    res = subprocess.run(["pgbench", "-n", "-r", "-t", str(repeat), "-f", path,
                          *libpq_args(url)], check=True, capture_output=True, text=True)
    total = per = None
    lines = res.stdout.splitlines()
    per_stmt: list[float] = []
    for i, line in enumerate(lines):
        if line.startswith("latency average"):
            total = float(line.split("=")[1].split()[0])
        if "statement latencies in milliseconds" in line:
            per = i
    if per is not None:
        for line in lines[per + 2:-1]:  # without BEGIN and COMMIT
            parts = line.split()
            if parts and parts[0].replace(".", "", 1).isdigit():
                per_stmt.append(float(parts[0]))
    return total or 0.0, per_stmt, res.stdout


def explain(url: str, statement: str) -> str:
    # as the dashboard runs it: JIT off (see analytics/dashboard.py)
    res = subprocess.run(["psql", "-X", "-q", *libpq_args(url)],
                         input=f"SET jit = off;\nEXPLAIN (ANALYZE, BUFFERS) {statement};\n",
                         check=True, capture_output=True, text=True)
    return res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--refresh", action="store_true", help="time a full rebuild first")
    ap.add_argument("--dirty", type=int, default=0, help="also measure with N changed unions")
    ap.add_argument("--live-repeat", type=int, default=None,
                    help="repeats of the direct computation (default --repeat)")
    ap.add_argument("--note", default="", help="a line to put under the title")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    db = Database(args.url)
    out = ["# Dashboard on PostgreSQL", ""]
    if args.note:
        out += [args.note, ""]
    if args.refresh:
        with db.session() as s:
            r = rollup.refresh(s, full=True)
        out += [f"Full rebuild of the rollup (`civicvoucher dashboard refresh --full`): "
                f"{r.seconds:.1f} s, {r.unions:,} unions.", ""]
    with db.session() as s:
        if not rollup.usable(s):
            sys.exit("the rollup is not built: run with --refresh (or civicvoucher dashboard "
                     "refresh --full)")
    with db.engine.connect() as c:
        counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("org", "member", "voucher", "redemption", "refund", "merchant",
                            *(t.name for t in SUMMARIES))}
        county = c.execute(text("""
            SELECT c.path, c.name, c.division_code, count(*) AS unions
            FROM org c JOIN org u ON u.parent_id = c.id
            WHERE c.level = 'county' GROUP BY c.id ORDER BY count(*) DESC, c.id LIMIT 1
        """)).one()
        root = c.execute(text("SELECT path, name FROM org WHERE parent_id IS NULL"
                              " ORDER BY id LIMIT 1")).one()
    out += [f"`python bench/bench_dashboard.py --repeat {args.repeat}"
            + (" --refresh" if args.refresh else "")
            + (f" --dirty {args.dirty}" if args.dirty else "")
            + f"` on `{make_url(args.url).database}`; rows: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items()), ""]
    out += ["| scope | read | ours median (ms) | ours min–max (ms) | raw pgbench (ms) |"
            " ours / raw | statements |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    details = []
    scopes = ((f"province root {root.name} `{root.path}`", root.path),
              (f"county {county.name} {county.division_code} `{county.path}` "
               f"({county.unions} unions)", county.path))
    medians: dict[tuple[str, str], float] = {}

    def measure(label: str, path: str, source: str, read: str, repeat: int) -> None:
        ours = time_ours(db, path, repeat, source)
        stmts = capture(db, path, source)
        raw, _per, text_out = pgbench(args.url, stmts, repeat)
        med = statistics.median(ours) * 1000
        medians[(label, read)] = med
        out.append(f"| {label} | {read} | {med:.1f} | {min(ours) * 1000:.1f}–"
                   f"{max(ours) * 1000:.1f} | {raw:.1f} | {med / raw:.2f} | {len(stmts)} |")
        details.extend([f"## pgbench, {label}, {read}", "", "```", text_out.strip(), "```",
                        ""])

    for label, path in scopes:
        measure(label, path, "auto", "rollup, nothing changed", args.repeat)
    if args.dirty:
        with db.session() as s:
            ids = list(s.execute(text(
                "SELECT id FROM org WHERE level = 'union' ORDER BY md5(id::text) LIMIT :n"),
                {"n": args.dirty}).scalars())
            s.execute(insert(DIRTY), [{"union_id": i} for i in ids])
        for label, path in scopes:
            measure(label, path, "auto", f"rollup + {len(ids)} changed unions", args.repeat)
        with db.session() as s:
            r = rollup.refresh(s)
        refreshed = (f"Incremental refresh of those {r.unions:,} unions "
                     f"({r.log_rows:,} log rows): {r.seconds * 1000:.0f} ms.")
    else:
        refreshed = ""
    for label, path in scopes:
        measure(label, path, "live", "direct (the oracle; before the rollup)",
                args.live_repeat or args.repeat)
    out.append("")
    for label, _path in scopes:
        a = medians[(label, "rollup, nothing changed")]
        b = medians[(label, "direct (the oracle; before the rollup)")]
        out.append(f"- {label}: direct / rollup = {b / a:.1f}x")
    if refreshed:
        out += ["", refreshed]
    out.append("")
    out += details
    text_md = "\n".join(out)
    print(text_md)
    if args.out:
        args.out.write_text(text_md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
