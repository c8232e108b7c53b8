"""The README's tour, run exactly as written (the block is read from README.md, so the two
cannot drift), in a fresh folder holding only a copy of ``examples/``, on SQLite (the default
``civicvoucher.db`` in that folder) and on PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from civicvoucher.i18n import gettext

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"<!-- tour:[^>]*-->\n```sh\n(.*?)```", re.S)


def tour_block() -> str:
    found = MARK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, "README.md must hold exactly one block marked <!-- tour: ... -->"
    return found[0]


def test_the_tour_uses_only_what_a_clone_has():
    block = tour_block()
    for path in re.findall(r"examples/[\w./-]+", block):
        assert (ROOT / path).exists(), path
    assert "../" not in block


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def test_the_readme_tour_runs_as_written(backend, tmp_path, request):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICVOUCHER_")
           and k not in ("LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")  # no key file lands in the real home folder
    env["COLUMNS"] = "120"
    if backend == "postgresql":  # a database of its own: the tour binds its own key to it
        request.getfixturevalue("pg_url")  # PostgreSQL answers (or the test fails/skips)
        env["CIVICVOUCHER_DATABASE_URL"] = _own_database(request)
        env["CIVICVOUCHER_SECRET_FILE"] = str(tmp_path / "pg.key")
    script = tmp_path / "tour.sh"
    script.write_text(tour_block(), encoding="utf-8")
    r = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    # a newcomer's shell sets no language: the tour speaks Chinese, as the README says
    assert gettext("ledger OK", "zh") in out, out[-2000:]
    assert gettext("audit log OK: {n} entry, chain intact", "zh").split("{")[0] in out, out[-2000:]
    assert "¥100.00" in out, out[-2000:]
    assert (tmp_path / "vouchers.xlsx").stat().st_size > 0
    assert (tmp_path / "report-xiaodian" / "report.html").exists()
    assert (tmp_path / "report-xiaodian" / "report.xlsx").exists()
    if backend == "sqlite":
        assert (tmp_path / "civicvoucher.db").exists()


def _own_database(request) -> str:
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL

    name = f"cv_tour_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
