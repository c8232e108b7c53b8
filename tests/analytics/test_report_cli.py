"""``civicvoucher report PROGRAM`` as a user types it: on a database built by the small world
(SQLite and PostgreSQL) and on the demo's database at a tiny scale; the demo's what-if in its
own folder with a readable title; the same tables whichever door and whichever database."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from civicvoucher.analytics import compute_report
from civicvoucher.errors import CivicVoucherError
from tests.analytics.world import build_report_world
from tests.conftest import PG_ADMIN_URL, REQUIRE_PG, _pg_available
from tests.world import SECRET, run_cli

DEMO_SCALE = 0.001


def invoke(monkeypatch, *args, url: str | None = None, cwd: Path | None = None):
    """The command in-process, with a configured database (or none) and working folder."""
    from civicvoucher.cli import common
    from civicvoucher.cli.main import app

    if url:
        monkeypatch.setenv("CIVICVOUCHER_DATABASE_URL", url)
    monkeypatch.setenv("CIVICVOUCHER_SECRET_KEY", SECRET.decode())
    monkeypatch.setenv("COLUMNS", "200")
    if cwd is not None:
        monkeypatch.chdir(cwd)
    common.settings.cache_clear()
    common.database.cache_clear()
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        common.settings.cache_clear()
        common.database.cache_clear()


def parse(cell: str):
    """A CSV cell back as the value it was written from."""
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell[1:] if cell[:1] == "'" else cell


def read_csv(path: Path) -> list[list]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    return [rows[0], *[[parse(c) for c in r] for r in rows[1:]]]


def csv_tables(folder: Path) -> dict[str, list[list]]:
    return {p.stem: read_csv(p) for p in sorted(folder.glob("*.csv"))}


# --------------------------------------------------------------- a database of the small world


def test_report_on_any_database(db, monkeypatch, tmp_path):
    build_report_world(db)
    out = tmp_path / "out"
    r = run_cli(db, monkeypatch, "report", "p2020", "--out", out)
    assert r.exit_code == 0, r.output
    text_ = "".join(r.output.split())  # as wide as the terminal: titles may wrap
    assert "主要指标" in text_ and "全省实发合计" in text_ and "实际数据" in text_
    assert "¥2,400.00" in text_ and "¥3,300.00" in text_  # issued and expected, in yuan
    assert "与文章对照" not in text_ and "样本值" not in text_
    assert "report:" in text_ and "(at" in text_  # progress, one line per stage off a terminal
    files = {p.name for p in out.iterdir()}
    assert {"report.html", "report.xlsx", "expected_issued.csv", "daily_spending.csv",
            "merchant_concentration.csv", "leverage.csv", "breakage.csv"} <= files
    assert "comparison.csv" not in files and "guarantee_groups.csv" not in files
    tables = csv_tables(out)
    computed = compute_report(db.url, program_key="p2020")
    for name, table in computed.tables.items():
        assert tables[name][1:] == [[row.get(c.key) for c in table.columns]
                                    for row in table.rows], name
    wb = load_workbook(out / "report.xlsx")
    assert "应发与实发" in wb.sheetnames


def test_report_of_a_subtree_with_rows_per_county(db, monkeypatch, tmp_path):
    rw = build_report_world(db)
    out = tmp_path / "city"
    r = run_cli(db, monkeypatch, "report", "p2020", "--org", "140100", "--level", "county",
                "--out", out)
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())  # as wide as the terminal: titles may wrap
    assert "太原市总工会（140100）及下属单位" in flat
    assert "发放与核销（按县（区））" in flat and "小店区总工会" in flat
    by_org = read_csv(out / "by_org.csv")
    head, rows = by_org[0], by_org[1:]
    issued = head.index("实发额 (issued_fen)")
    assert rows[-1][0] == "total" and rows[-1][issued] == sum(r[issued] for r in rows[:-1])
    level = read_csv(out / "expected_issued.csv")
    assert [row[0] for row in level[1:]] == ["city", "county", "total"]
    # the default folder names the program and the organisation; a union by its id
    r = run_cli(db, monkeypatch, "report", "p2020", "--org", rw.union_p, "--out",
                tmp_path / "p")
    assert r.exit_code == 0, r.output
    assert read_csv(tmp_path / "p" / "expected_issued.csv")[-1][3] == 60000


def test_a_program_by_id_with_nothing_issued_says_so(db, monkeypatch, tmp_path):
    from civicvoucher.programs.service import create_program, get_program
    from civicvoucher.programs.spec import parse_program_spec
    from tests.world import program_spec

    build_report_world(db)
    with db.session() as s:
        create_program(s, spec=parse_program_spec(program_spec("other")))
        pid = get_program(s, "other").id
    monkeypatch.chdir(tmp_path)
    r = run_cli(db, monkeypatch, "report", pid)
    assert r.exit_code == 0, r.output
    assert "尚未发放任何券" in "".join(r.output.split())
    assert (tmp_path / "report-" f"{pid}" / "report.html").exists()


def test_mistakes_are_named_not_traced(db, monkeypatch, tmp_path):
    """Each mistake is an error with its code (``cli.main.run`` prints it, exit 2)."""
    build_report_world(db)
    for args, code in ((("nope",), "program_not_found"),
                       (("p2020", "--org", "999999"), "org_not_found"),
                       (("p2020", "--level", "street"), "invalid_input"),
                       (("p2020", "--org", "140105", "--level", "city"), "invalid_input"),
                       (("p2020", "--database-url", f"sqlite:///{tmp_path}/none.db"),
                        "database_not_found")):
        r = run_cli(db, monkeypatch, "report", *args, "--out", tmp_path / "x")
        assert isinstance(r.exception, CivicVoucherError), (args, r.output, r.exception)
        assert r.exception.code == code, (args, r.exception)
    # as the installed command prints it
    env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": db.url,
           "CIVICVOUCHER_SECRET_KEY": SECRET.decode()}
    done = subprocess.run([sys.executable, "-c", "from civicvoucher.cli.main import run; run()",
                           "report", "nope"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "program_not_found" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------- the demo's own database


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo at a tiny scale with a what-if, as a user runs it in an empty folder."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        r = invoke(mp, "demo", "--scale", DEMO_SCALE, "--set", "county_guarantee=1.0",
                   cwd=folder)
    assert r.exit_code == 0, r.output
    return folder, r.output


def test_the_what_if_has_its_own_folder_and_a_readable_title(demo_run):
    folder, output = demo_run
    base, what = folder / "civicvoucher-report", folder / "civicvoucher-report-whatif-county_guarantee-1.0"
    assert (base / "report.html").exists() and (what / "report.html").exists()
    assert not (base / "whatif.csv").exists() and (what / "whatif.csv").exists()
    base_html = (base / "report.html").read_text(encoding="utf-8")
    what_html = (what / "report.html").read_text(encoding="utf-8")
    assert "情景" not in base_html.split("</h1>")[0]
    title = what_html.split("<h1>")[1].split("</h1>")[0]
    assert title.endswith("政策报告 · 情景：各县（区）财政保障工会经费 100%")
    assert "county_guarantee" not in title
    assert "情景与基准对比" in what_html
    # the baseline's tables are the baseline's, the what-if's differ where they should
    issued = lambda f: read_csv(f / "expected_issued.csv")[-1][4]  # noqa: E731
    assert issued(what) > issued(base)
    assert str(what / "report.html") in output.replace("\n", "")


def test_report_on_the_demos_database_writes_the_demos_tables(demo_run, monkeypatch):
    folder, _ = demo_run
    out = folder / "again"
    r = invoke(monkeypatch, "report", "shanxi-2020", "--database-url",
               f"sqlite:///{folder / 'civicvoucher-demo.db'}", "--out", out)
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())
    assert "样本值，不是实际数字" in flat and "少报1,000倍" in flat
    assert "与文章对照" in flat and "文章数字的自身矛盾" in flat
    assert csv_tables(out) == csv_tables(folder / "civicvoucher-report")
    wb = load_workbook(out / "report.xlsx")
    ws = wb["应发与实发"]
    assert any("少报 1,000 倍" in str(c.value) for c in ws["A"][:6])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="sample-warning"' in html and "样本比例 0.1%" in html


@pytest.fixture
def pg_demo_url():
    """A PostgreSQL database of our own for the demo (which empties what it is given)."""
    reason = _pg_available()
    if reason:
        if REQUIRE_PG:
            pytest.fail(f"{reason} (CIVICVOUCHER_REQUIRE_PG=1)")
        pytest.skip(reason)
    name = f"cv_report_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.pg
def test_the_demo_on_postgresql_reports_what_it_does_on_sqlite(demo_run, pg_demo_url,
                                                                monkeypatch, tmp_path):
    """Same seed, same scale: the same report tables on PostgreSQL as on SQLite, through
    the demo and through ``civicvoucher report``."""
    folder, _ = demo_run
    r = invoke(monkeypatch, "demo", "--scale", DEMO_SCALE, "--database-url", pg_demo_url,
               "--out", tmp_path / "pg", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    sqlite_tables = csv_tables(folder / "civicvoucher-report")
    assert csv_tables(tmp_path / "pg") == sqlite_tables
    r = invoke(monkeypatch, "report", "shanxi-2020", "--out", tmp_path / "again",
               url=pg_demo_url)
    assert r.exit_code == 0, r.output
    assert csv_tables(tmp_path / "again") == sqlite_tables
