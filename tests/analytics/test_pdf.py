"""report.pdf read back as a reader reads it (``pdftotext`` from poppler): Chinese headings,
the program, the organisation and the figures of the report's own tables (as ``analytics.view``
formats them: one unit per column of amounts), the sample warning, English when asked; a table
longer than a page repeats its header on every page, and every page is numbered."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from civicvoucher.analytics import fmt
from civicvoucher.analytics.pdf import pdf_bytes, write_pdf
from civicvoucher.analytics.render import all_tables, write_outputs
from civicvoucher.analytics.tables import Column, Report, Table
from civicvoucher.analytics.view import table_view
from tests.analytics.world import build_report_world
from tests.world import run_cli


@pytest.fixture
def world_url(sqlite_db):
    build_report_world(sqlite_db)
    return sqlite_db.url


def text_of(pdf: Path, *, first: int | None = None, last: int | None = None,
            layout: bool = True) -> str:
    args = ["pdftotext"] + (["-layout"] if layout else [])
    if first:
        args += ["-f", str(first)]
    if last:
        args += ["-l", str(last)]
    return subprocess.run([*args, str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def pages(pdf: Path) -> list[tuple[int, float, float]]:
    """(page, width, height) in points, from pdfinfo."""
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True,
                         text=True, check=True).stdout
    return [(int(n), float(w), float(h)) for n, w, h in
            re.findall(r"Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+)", out)]


def squeeze(text: str) -> str:
    return " ".join(text.split())


def test_headings_program_and_the_tables_figures(world_url, make_report, tmp_path):
    report = make_report(world_url, scale=1, org="140000", level="county")
    tables = all_tables(report)
    pdf = write_pdf(tmp_path / "r.pdf", report, tables)
    text = text_of(pdf)
    flat = squeeze(text)
    assert report.program_name in text and "政策报告" in text
    assert "山西省总工会（140000）及下属单位" in flat  # what it covers
    assert "实际数据" in text and "生成时间" in text and "(Asia/Shanghai)" in text
    for t in tables:  # every table's Chinese title, with its English beneath
        assert t.title_zh in text, t.title_zh
        assert t.title_en in text, t.title_en
    # the headline figures in yuan as officials read them
    issued = report.headline["issued_fen_total"]
    assert fmt.value(issued.full, "fen") == "¥2,400.00" and "¥2,400.00" in flat
    # every row of the issuance tables is a line of the PDF with the same figures
    for name in ("expected_issued", "issued_by_form", "by_org", "redemption_rate"):
        v = table_view(report.table(name))
        for h in v["columns"]:
            assert squeeze(h["label_zh"]) in flat or h["label_zh"][:3] in flat, h["label_zh"]
        for row in v["rows"]:
            line = squeeze(" ".join(c["text"] for c in row["cells"]))
            assert line in flat, (name, line)
    total = report.table("expected_issued").row(level="total")
    assert f"合计 11 3,300 2,400 900 {total['issue_rate'] * 100:.1f}%" in flat
    # the by-organisation table is too wide for portrait: its page is landscape A4
    sizes = {(round(w), round(h)) for _, w, h in pages(pdf)}
    assert sizes == {(595, 842), (842, 595)}
    n = len(pages(pdf))
    for i in range(1, n + 1):
        assert f"第 {i} 页，共 {n} 页" in text_of(pdf, first=i, last=i)


def test_a_sample_says_so_and_english_when_asked(world_url, make_report, tmp_path):
    report = make_report(world_url, scale=0.01)
    tables = all_tables(report)
    zh = tmp_path / "zh.pdf"
    zh.write_bytes(pdf_bytes(report, tables))
    flat = squeeze(text_of(zh, layout=False))
    assert "样本值，不是实际数字" in flat and "少报 100 倍" in flat
    assert "要点（全规模）" in flat and "（样本值）" in flat
    full = report.headline["issued_fen_total"].full
    assert fmt.value(full, "fen") in flat  # the key figures at full size: 24万
    assert "与文章对照" in flat  # a sample of the scenario is compared with the article
    en = tmp_path / "en.pdf"
    en.write_bytes(pdf_bytes(report, tables, lang="en"))
    flat = squeeze(text_of(en, layout=False))
    assert "SAMPLE VALUES, NOT REAL FIGURES" in flat and "policy report" in flat
    assert "Expected vs issued by level" in flat and "At a glance (full size)" in flat
    assert "page 1 of" in flat and "Generated: " in flat
    assert "应发与实发" not in flat and "样本值" not in flat
    with pytest.raises(ValueError):
        pdf_bytes(report, tables, lang="fr")


def test_a_long_table_repeats_its_header_on_every_page(tmp_path):
    cols = (Column("day", "日期", "day"), Column("redemptions", "核销笔数", "redemptions",
                                                 "count"),
            Column("voucher_fen", "券抵扣额", "vouchers spent", "fen"),
            Column("share", "占比", "share", "share"))
    rows = [dict(day=f"2020-{5 + i // 28:02d}-{1 + i % 28:02d}", redemptions=i * 37,
                 voucher_fen=i * 123_457, share=i / 400) for i in range(180)]
    table = Table("daily_spending", "每日消费", "Spending by day", cols, rows)
    report = Report("p-long", "长表测试", 1.0, {"daily_spending": table})
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(pdf_bytes(report, [table]))
    n = len(pages(pdf))
    assert n >= 3
    unit = fmt.money_unit(r["voucher_fen"] for r in rows)
    assert unit.zh == "万元"
    header = f"日期 核销笔数 券抵扣额（{unit.zh}） 占比"
    seen = []
    for i in range(1, n + 1):
        page = squeeze(text_of(pdf, first=i, last=i))
        assert header in page, (i, page[:200])
        assert f"第 {i} 页，共 {n} 页" in page
        seen += re.findall(r"2020-\d\d-\d\d", page)
    assert len(seen) == 180 and len(set(seen)) == 180  # every row once, none lost at a break
    last = rows[-1]
    assert f"{last['day']} {last['redemptions']:,} {fmt.in_unit(last['voucher_fen'], unit)} " \
           f"{last['share'] * 100:.1f}%" in squeeze(text_of(pdf, first=n, last=n))


def test_the_report_folder_has_the_pdf(sqlite_db, monkeypatch, tmp_path):
    build_report_world(sqlite_db)
    out = tmp_path / "out"
    r = run_cli(sqlite_db, monkeypatch, "report", "p2020", "--org", "140000", "--out", out)
    assert r.exit_code == 0, r.output
    assert "PDF" in r.output and "report.pdf" in "".join(r.output.split())
    pdf = out / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "应发与实发（按层级）" in text_of(pdf)
    en = tmp_path / "en"
    r = run_cli(sqlite_db, monkeypatch, "report", "p2020", "--out", en, "--pdf-lang", "en")
    assert r.exit_code == 0, r.output
    assert "Expected vs issued by level" in text_of(en / "report.pdf")
    r = run_cli(sqlite_db, monkeypatch, "report", "p2020", "--out", en, "--pdf-lang", "fr")
    assert r.exception.code == "invalid_input" and r.exception.field == "pdf_lang"


def test_write_outputs_can_leave_the_pdf_out(world_url, make_report, tmp_path):
    report = make_report(world_url, scale=1)
    paths = write_outputs(report, tmp_path / "a")
    assert paths["pdf"].name == "report.pdf"
    assert "pdf" not in write_outputs(report, tmp_path / "b", pdf=False)
    assert not (tmp_path / "b" / "report.pdf").exists()
