"""bench/attack_http.py runs end to end in its smallest mode and reports every phase.

It checks that the script works (starts the real server, runs the four attacks beside the
authenticated client, prints the table, cleans up its server and its database), never how
fast anything was: the measures belong to the report, not to a test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, REQUIRE_PG, _pg_available

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "attack_http.py"
PHASES = ["0 baseline", "1 big bodies", "2 nested JSON", "3 wrong passwords", "4 unknown users"]


def run_smoke(tmp_path: Path, *extra: str) -> tuple[str, str]:
    md = tmp_path / "attack.md"
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--markdown", str(md), *extra],
                       capture_output=True, text=True, timeout=400,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout, md.read_text(encoding="utf-8")


def check_report(out: str, md: str) -> None:
    assert md.strip() in out  # what it prints ends with the report it writes
    assert "Targets: worker peak RSS < 300 MB, authenticated client p99 < 100 ms" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == PHASES
    total_client = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 10, row
        phase, attack, secs, peak, settled, lost, lat, client, login, targets = cells
        assert re.fullmatch(r"[\d.]+", secs) and lost.isdigit(), row
        assert re.fullmatch(r"[\d,]+( / [\d,]+)*", peak), row  # one figure per worker
        assert re.fullmatch(r"[\d,]+( / [\d,]+)*", settled), row
        assert re.fullmatch(r"(-|[\d,.]+) / (-|[\d,.]+)", lat), row
        total_client += int(client.split()[0].replace(",", ""))
        assert re.fullmatch(r"(staff|kadmin_b): (yes|no) \(.+\)", login), row
        assert targets == "all met" or targets.startswith("missed: "), row
        if not phase.startswith("0"):  # every attack was sent and its answers counted
            assert re.search(r"(\d{3}[ a-z_]*|[A-Za-z]+Error) x\d", attack), row
    assert total_client > 0  # the authenticated client worked throughout
    assert "kadmin_b" in rows[3]
    assert re.search(r"mutating routes found in the OpenAPI document: ([2-9]\d|\d{3})", md)
    # the server and its workers are gone
    pids = [int(p) for p in re.findall(r"pid (\d+), workers \[([\d, ]+)\]", out)[0][1]
            .split(", ")] + [int(re.search(r", pid (\d+), workers", out).group(1))]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower(), f"process {pid} left running"


def test_attack_script_smoke_on_sqlite(tmp_path):
    out, md = run_smoke(tmp_path)
    check_report(out, md)
    assert "SQLite" in md


@pytest.mark.pg
def test_attack_script_smoke_on_postgresql(tmp_path):
    reason = _pg_available()
    if reason:
        if REQUIRE_PG:
            pytest.fail(f"{reason} (CIVICVOUCHER_REQUIRE_PG=1)")
        pytest.skip(reason)

    def attack_databases() -> set[str]:
        eng = create_engine(PG_ADMIN_URL)
        with eng.connect() as c:
            names = set(c.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'cv_attack_%'")).scalars())
        eng.dispose()
        return names

    before = attack_databases()
    out, md = run_smoke(tmp_path, "--database-url", PG_ADMIN_URL)
    check_report(out, md)
    assert "PostgreSQL" in md
    assert attack_databases() == before  # its own database was dropped
