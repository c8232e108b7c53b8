"""The console's reports page (console/pages/reportspage.py) on SQLite and PostgreSQL: the
report of the user's own subtree in the page (the same figures ``compute_report`` gives, as
``analytics.view`` lays them out), its XLSX and PDF downloads of exactly that report, the
scope refusals (audited), the roles of the API's program report, both languages."""

from __future__ import annotations

import io
import re
import subprocess
from decimal import Decimal
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from civicvoucher.analytics import compute_report, fmt
from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.core import clock
from tests.world import T0

TABLE = re.compile(r'<table id="table-(\w+)" class="rep-table">(.*?)</table>', re.S)
ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)
CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def signed_in(console, role: Role):
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console.client


def page_tables(html: str) -> dict[str, list[list[str]]]:
    """Every report table on the page: its rows (the header first) as cell texts."""
    out = {}
    for name, body in TABLE.findall(html):
        out[name] = [[unescape(c).strip() for c in CELL.findall(row)] for row in ROW.findall(body)]
    return out


def cards(html: str) -> dict[str, str]:
    return {k: unescape(v) for k, v in
            re.findall(r'<div id="card-(\w+)"><dt>[^<]*</dt><dd>([^<]*)</dd>', html)}


def refusals(db) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == "access.refused")
                              .order_by(AuditEntry.seq)).scalars())


def test_the_page_shows_the_report_of_the_users_subtree(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    w = console.aw.w
    form = client.get("/reports")
    assert form.status_code == 200, form.text[:500]
    assert 'id="rep-program"' in form.text and 'id="table-' not in form.text  # nothing computed
    assert "unsafe-inline" not in form.headers["content-security-policy"]
    r = client.get("/reports", params={"program": "p2020"})
    assert r.status_code == 200, r.text[:800]
    want = compute_report(console.aw.db.url, program_key="p2020", org=w.county_a)
    shown = page_tables(r.text)
    total = want.table("expected_issued").row(level="total")
    assert total["issued_fen"] > 0
    rows = shown["expected_issued"]
    assert rows[0] == ["层级", "在册会员", "应发额（元）", "实发额（元）", "缺口（元）", "发放率"]
    unit = fmt.money_unit(x["issued_fen"] for x in want.table("expected_issued").rows)
    last = rows[-1]
    assert last[0] == "合计" and last[1] == f"{total['members']:,}"
    assert last[3] == fmt.in_unit(total["issued_fen"], unit)
    assert last[5] == fmt.value(total["issue_rate"], "share")
    # the county's report: county and total rows only, every table of the report on the page
    assert [x[0] for x in rows[1:]] == ["县级", "合计"]
    from civicvoucher.analytics.render import all_tables

    for t in all_tables(want):  # each table titled; those with rows shown, the others said so
        assert f'id="h-{t.name}">{t.title_zh}' in r.text, t.name
        assert (t.name in shown) == bool(t.rows), t.name
        if t.rows:
            assert len(shown[t.name]) == len(t.rows) + 1, t.name
    assert "无数据。" in r.text or all(t.rows for t in all_tables(want))
    c = cards(r.text)
    assert c["issued_fen_total"] == fmt.value(want.headline["issued_fen_total"].full, "fen")
    assert "小店区总工会" in r.text and "实际数据" in r.text
    assert 'href="/reports/download.pdf?program=p2020&amp;org=' in r.text
    assert "计算于" in r.text  # when it was computed, and that a download computes again


def test_a_sub_organisation_and_a_breakdown(console):
    client = signed_in(console, Role.CITY_ADMIN)
    w = console.aw.w
    r = client.get("/reports", params={"program": "p2020"})
    assert r.status_code == 200
    assert f'<option value="{w.county_a}">' in r.text  # the counties are in the picker
    r = client.get("/reports", params={"program": "p2020", "level": "county"})
    by_org = page_tables(r.text)["by_org"]
    assert [x[0] for x in by_org[1:]] == ["小店区总工会", "迎泽区总工会", "合计"]
    r = client.get("/reports", params={"program": "p2020", "org": w.county_a})
    assert r.status_code == 200
    assert [x[0] for x in page_tables(r.text)["expected_issued"][1:]] == ["县级", "合计"]
    # a union has nothing below it: the page says so, naming the field, and shows no report
    r = client.get("/reports", params={"program": "p2020", "org": w.union_a,
                                       "level": "union"}, headers={"Accept-Language": "en"})
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and 'role="alert"' in r.text
    assert "is not below" in r.text and 'id="table-' not in r.text
    r = client.get("/reports", params={"program": "p2020", "level": "town"},
                   headers={"Accept-Language": "en"})
    assert r.status_code == 422 and 'id="table-' not in r.text
    assert "level must be one of" in unescape(r.text) and "town" in r.text
    r = client.get("/reports/download.xlsx", params={"program": "p2020", "level": "town"})
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]


def test_a_county_admin_cannot_ask_for_another_county(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    aw = console.aw
    before = len(refusals(aw.db))
    for org in (aw.w.county_b, aw.w.union_c, aw.w.city, aw.province2, aw.union_x):
        for path in ("/reports", "/reports/download.xlsx", "/reports/download.pdf"):
            r = client.get(path, params={"program": "p2020", "org": org},
                           headers={"Accept-Language": "en"})
            assert r.status_code == 403 and "out_of_scope" in r.text, (path, org, r.status_code)
            assert "text/html" in r.headers["content-type"]
            assert "迎泽区总工会" not in r.text and "union C" not in r.text
    refused = refusals(aw.db)[before:]
    assert len(refused) == 15
    assert {e.target for e in refused} == {"GET /reports", "GET /reports/download.xlsx",
                                           "GET /reports/download.pdf"}
    assert all(e.detail["code"] == "out_of_scope" and e.actor == "u-county_admin"
               for e in refused)
    for bad in ("999999", "abc", "0", "-1", "1 OR 1=1"):
        r = client.get("/reports", params={"program": "p2020", "org": bad})
        assert (r.status_code, "org_not_found" in r.text) == (404, True), bad
    r = client.get("/reports", params={"program": "nope"})
    assert r.status_code == 404 and "program_not_found" in r.text
    r = client.get("/reports/download.pdf")  # no program chosen: named, not a fault
    assert r.status_code == 422 and "program" in r.text


def test_downloads_are_the_report_on_the_page(console, tmp_path):
    client = signed_in(console, Role.COUNTY_ADMIN)
    w = console.aw.w
    q = {"program": "p2020", "org": w.county_a}
    page = client.get("/reports", params=q)
    shown = page_tables(page.text)["expected_issued"]
    x = client.get("/reports/download.xlsx", params=q)
    assert x.status_code == 200, x.text[:300]
    assert x.headers["content-type"] == XLSX
    day = clock.to_local(T0).strftime("%Y%m%d")  # the console's clock stands at T0
    assert x.headers["content-disposition"].startswith(
        f'attachment; filename="report-p2020-140105-{day}.xlsx"')
    wb = load_workbook(io.BytesIO(x.content))
    ws = wb["应发与实发"]
    head = int(ws.freeze_panes[1:]) - 2
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=head + 2)]
    rows = [r for r in rows if r[0] in ("县级", "合计")]
    assert [r[0] for r in rows] == [s[0] for s in shown[1:]]
    unit = fmt.money_unit(int(v * 100) for r in rows for v in r[2:5])
    for xl, html in zip(rows, shown[1:], strict=True):
        assert f"{xl[1]:,}" == html[1]
        for i in (2, 3, 4):  # the yuan of the workbook are the page's amounts
            assert isinstance(xl[i], (int, float, Decimal))
            assert fmt.in_unit(round(Decimal(str(xl[i])) * 100), unit) == html[i]
        assert fmt.value(xl[5], "share") == html[5]
    assert "小店区总工会" in ws["A2"].value  # what it covers, as the page
    p = client.get("/reports/download.pdf", params=q)
    assert p.status_code == 200 and p.headers["content-type"] == "application/pdf"
    assert p.content.startswith(b"%PDF-")
    assert f'filename="report-p2020-140105-{day}.pdf"' in p.headers["content-disposition"]
    f = tmp_path / "r.pdf"
    f.write_bytes(p.content)
    text = subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "小店区总工会" in text and "应发与实发（按层级）" in text
    total = " ".join(shown[-1])
    assert total in " ".join(text.split()), total
    en = client.get("/reports/download.pdf", params=q, headers={"Accept-Language": "en"})
    assert f'report-p2020-140105-{day}-en.pdf' in en.headers["content-disposition"]
    f.write_bytes(en.content)
    text = subprocess.run(["pdftotext", str(f), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "policy report" in text and "Expected vs issued by level" in text


@pytest.mark.parametrize("role", [Role.MERCHANT_ADMIN, Role.CASHIER])
def test_roles_without_the_report_are_refused(console, role):
    client = signed_in(console, role)
    for path in ("/reports", "/reports/download.xlsx", "/reports/download.pdf"):
        r = client.get(path, params={"program": "p2020"})
        assert r.status_code == 403 and "role_forbidden" in r.text, (path, r.status_code)
    assert 'href="/reports"' not in client.get("/").text


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ANALYST, Role.UNION_ADMIN,
                                  Role.PROVINCE_ADMIN])
def test_report_readers_see_their_own_subtree(console, role):
    client = signed_in(console, role)
    r = client.get("/reports", params={"program": "p2020"})
    assert r.status_code == 200, (role, r.text[:300])
    assert "table-expected_issued" in r.text
    assert 'href="/reports"' in client.get("/").text


def test_signed_out_goes_to_the_login(console):
    r = console.client.get("/reports/download.pdf?program=p2020")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_both_languages(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    zh = client.get("/reports", params={"program": "p2020"})
    assert '<html lang="zh-CN">' in zh.text
    for word in ("统计报告", "生成报告", "下载 PDF", "应发与实发（按层级）", "要点", "主要指标"):
        assert word in zh.text, word
    en = client.get("/reports", params={"program": "p2020"}, headers={"Accept-Language": "en"})
    assert '<html lang="en">' in en.text
    for word in ("Reports", "Show report", "Download PDF", "Download XLSX",
                 "Expected vs issued by level", "At a glance", "Headline figures"):
        assert word in en.text, word
    shown = page_tables(en.text)
    assert shown["expected_issued"][0][0] == "level"
    assert shown["headline"][0][0] == "figure"  # its rows are the English labels
    assert shown["headline"][1][0] == "active members, county"
    words = re.sub(r"<[^>]+>", " ", en.text.split("<main", 1)[1])
    names = {"小店区总工会", "太原市总工会", "山西省总工会", "消费券", "迎泽区总工会"}
    leftover = {x for x in re.findall(r"[\u4e00-\u9fff]+", words)} - names - {"万", "亿",
                                                                              "元", "中文"}
    assert not leftover, leftover


def test_the_downloads_are_the_report_the_page_showed(console):
    """The page's links carry its snapshot: a member registered after the page was shown is
    not in its files; without the snapshot (or for another user, or other choices) the
    report is computed again and has them."""
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members
    from civicvoucher.orgs.models import Org
    from tests.world import SECRET, make_id

    client = signed_in(console, Role.COUNTY_ADMIN)
    w = console.aw.w
    page = client.get("/reports", params={"program": "p2020"})
    link = unescape(re.search(r'id="dl-xlsx" href="([^"]+)"', page.text).group(1))
    assert "snapshot=" in link
    members = int(page_tables(page.text)["expected_issued"][-1][1])
    with console.aw.db.session() as s:
        union = s.get(Org, w.union_a).uscc
        add_members(s, [(1, MemberRow(name="新会员", id_number=make_id(950, "140105"),
                                      phone=None, union=union, status=MemberStatus.ACTIVE))],
                    key=SECRET)
        s.commit()

    def total_members(r) -> int:
        ws = load_workbook(io.BytesIO(r.content))["应发与实发"]
        return next(row for row in ws.iter_rows(values_only=True) if row[0] == "合计")[1]

    same = client.get(link)
    assert same.headers["x-report-source"] == "snapshot"
    assert total_members(same) == members  # the page's figures, not the new member
    pdf = client.get(link.replace("download.xlsx", "download.pdf"))
    assert pdf.headers["x-report-source"] == "snapshot"
    fresh = client.get(link.split("&snapshot=")[0])
    assert fresh.headers["x-report-source"] == "computed"
    assert total_members(fresh) == members + 1
    other = client.get(link + "&level=union")  # other choices: not the page's report
    assert other.headers["x-report-source"] == "computed"
    client.post("/logout", data={"csrf_token": console.csrf("/")})
    analyst = signed_in(console, Role.ANALYST)  # the same county, another user
    r = analyst.get(link)
    assert r.status_code == 200 and r.headers["x-report-source"] == "computed"
    client.post("/logout", data={"csrf_token": console.csrf("/")})
    signed_in(console, Role.UNION_ADMIN)  # below the county: refused, snapshot or not
    r = console.client.get(link)
    assert r.status_code == 403 and "out_of_scope" in r.text
