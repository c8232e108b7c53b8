"""The console's dashboard page (console/pages/dashpage.py) on SQLite and PostgreSQL: the
figures on the page are the data layer's (analytics.dashboard) as officials read them, the
drill-down stays inside the user's subtree, the fragment the page polls shows a new
redemption, the roles are the report's, and the page speaks both languages."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from civicvoucher.analytics.dashboard import dashboard
from civicvoucher.auth.roles import Role
from civicvoucher.core.money import format_cn, format_yuan
from civicvoucher.orgs.models import Org

FIG = re.compile(r'<div id="fig-(\w+)"><dt>[^<]*</dt><dd>(.*?)</dd>', re.S)
DATA = re.compile(r'<data value="(-?\d+)" title="([^"]*)">([^<]*)</data>')
JSON_BLOCK = re.compile(r'<script type="application/json" id="dash-data">(.*?)</script>', re.S)


def figures_on(html: str) -> dict[str, str]:
    return {k: unescape(v) for k, v in FIG.findall(html)}


def amount_on(html: str, fig: str) -> tuple[int, str, str]:
    m = DATA.search(figures_on(html)[fig])
    assert m, figures_on(html)[fig]
    return int(m.group(1)), unescape(m.group(2)), m.group(3)


def path_of(db, org_id: int) -> str:
    with db.session() as s:
        return s.get(Org, org_id).path


def expected(db, org_id: int, program="p2020"):
    with db.session() as s:
        return dashboard(s, org_path=s.get(Org, org_id).path, program=program)


def signed_in(console, role: Role):
    r = console.login(role)
    assert r.status_code == 303, r.text[:300]
    return console.client


def test_the_figures_are_the_data_layers_as_officials_read_them(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    w = console.aw.w
    r = client.get("/dashboard")
    assert r.status_code == 200, r.text[:500]
    assert "text/html" in r.headers["content-type"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    f = expected(console.aw.db, w.county_a).figures
    assert f.issued_fen > 0  # the world issued union A's vouchers
    for fig, fen in [("issued", f.issued_fen), ("redeemed", f.redeemed_fen),
                     ("outstanding", f.outstanding_fen), ("expired", f.expired_fen),
                     ("refunded", f.refunded_fen), ("shortfall", f.shortfall_fen)]:
        assert amount_on(r.text, fig) == (fen, format_yuan(fen), format_cn(fen)), fig
    shown = figures_on(r.text)
    digital = f"{f.digital_share * 100:.1f}%" if f.digital_share is not None else "—"
    assert digital in shown["digital"]
    lev = "—" if f.leverage is None else f"{f.leverage:.2f}"
    assert lev in shown["leverage"]
    # the children: union A and union B, each row linking to its own dashboard
    for union in (w.union_a, w.union_b):
        assert f'href="/dashboard?org={union}&amp;program=p2020"' in r.text
    # the charts' data block: JSON, not run (the CSP allows no inline script)
    data = json.loads(unescape(JSON_BLOCK.search(r.text).group(1)))
    assert sum(row[2] for row in data["children"]) == f.issued_fen
    assert "<script>" not in r.text and 'src="/static/vendor/echarts/echarts.min.js"' in r.text


def test_a_redemption_shows_in_the_next_poll(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    headers = {"HX-Request": "true"}
    before = client.get("/dashboard/figures?program=p2020", headers=headers)
    assert before.status_code == 200 and "<html" not in before.text
    assert 'id="dash-data"' in before.text
    n0 = amount_on(before.text, "redeemed")[0]
    r = console.aw.call("POST", "/redemptions", Role.CASHIER,
                        json={"code": console.aw.codes_in[0], "order_amount_fen": 31000})
    assert r.status_code == 201, r.text
    after = client.get("/dashboard/figures?program=p2020", headers=headers)
    assert amount_on(after.text, "redeemed")[0] == n0 + r.json()["amount_fen"]
    f = expected(console.aw.db, console.aw.w.county_a).figures
    assert amount_on(after.text, "redeemed")[0] == f.redeemed_fen
    assert "1.03倍" in figures_on(after.text)["leverage"]  # 310 yuan of order for 300


def test_the_page_polls_its_own_figures(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    html = client.get(f"/dashboard?org={console.aw.w.union_a}").text
    m = re.search(r'<div id="dash-live" hx-get="([^"]+)" hx-trigger="every (\d+)s"', html)
    assert m, html[:2000]
    assert unescape(m.group(1)) == f"/dashboard/figures?org={console.aw.w.union_a}&program=p2020"
    assert int(m.group(2)) == 10


def test_drill_down_from_the_province_to_a_union_with_breadcrumbs(console):
    client = signed_in(console, Role.PROVINCE_ADMIN)
    w = console.aw.w
    top = client.get("/dashboard", headers={"Accept-Language": "en"})
    assert top.status_code == 200
    assert "Dashboard: 山西省总工会" in top.text
    assert f'href="/dashboard?org={w.city}&amp;program=p2020"' in top.text
    county = client.get(f"/dashboard?org={w.county_a}", headers={"Accept-Language": "en"})
    crumbs = re.search(r'<nav class="crumbs".*?</nav>', county.text, re.S).group(0)
    assert [unescape(x) for x in re.findall(r">([^<>]+)</a>", crumbs)] == [
        "山西省总工会", "太原市总工会", "小店区总工会"]
    assert 'aria-current="page">小店区总工会' in crumbs
    union = client.get(f"/dashboard?org={w.union_a}&program=p2020")
    assert union.status_code == 200
    assert "基层工会下没有组织" in union.text or "没有下级组织" in union.text
    f = expected(console.aw.db, w.union_a).figures
    assert amount_on(union.text, "issued")[0] == f.issued_fen
    # every figure of the county equals the sum of its children's on the province's page
    cf = expected(console.aw.db, w.county_a).figures
    assert amount_on(county.text, "issued")[0] == cf.issued_fen


def test_a_county_admin_cannot_open_another_county(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    w = console.aw
    for org in (w.w.county_b, w.w.union_c, w.w.city, w.province2, w.union_x):
        r = client.get(f"/dashboard?org={org}", headers={"Accept-Language": "en"})
        assert r.status_code == 403 and "out_of_scope" in r.text, (org, r.status_code)
        frag = client.get(f"/dashboard/figures?org={org}", headers={"HX-Request": "true"})
        assert frag.status_code == 403 and 'id="dash-data"' not in frag.text
    for bad in ("999999", "abc", "0", "-1", "1" * 30, "1 OR 1=1"):
        r = client.get("/dashboard", params={"org": bad})
        assert (r.status_code, "org_not_found" in r.text) == (404, True), bad
    r = client.get("/dashboard?program=nope")
    assert r.status_code == 404 and "program_not_found" in r.text


@pytest.mark.parametrize("role", [Role.MERCHANT_ADMIN, Role.CASHIER])
def test_roles_without_the_report_are_refused(console, role):
    client = signed_in(console, role)
    for path in ("/dashboard", "/dashboard/figures"):
        r = client.get(path)
        assert r.status_code == 403 and "role_forbidden" in r.text, (path, r.status_code)
    assert 'href="/dashboard"' not in client.get("/").text  # and no link to it


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ANALYST, Role.UNION_ADMIN,
                                  Role.CITY_ADMIN])
def test_report_readers_see_their_own_subtree(console, role):
    client = signed_in(console, role)
    r = client.get("/dashboard")
    assert r.status_code == 200, (role, r.text[:300])
    assert 'href="/dashboard"' in client.get("/").text


def test_signed_out_goes_to_the_login(console):
    r = console.client.get("/dashboard?org=1")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = console.client.get("/dashboard/figures", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login")


def test_both_languages(console):
    client = signed_in(console, Role.COUNTY_ADMIN)
    zh = client.get("/dashboard")
    assert '<html lang="zh-CN">' in zh.text
    for word in ("数据看板", "已发放", "已核销", "未使用", "已过期", "已退款", "缺口",
                 "电子券占比", "拉动效应", "下级组织"):
        assert word in zh.text, word
    en = client.get("/dashboard", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in en.text
    for word in ("Dashboard", "Issued", "Redeemed", "Outstanding", "Expired", "Refunded",
                 "Shortfall against plan", "Digital share", "Leverage"):
        assert word in en.text, word
    words = re.sub(r"<[^>]+>", " ", en.text.split("<main", 1)[1])
    words = re.sub(r'<script type="application/json".*?</script>', "", words, flags=re.S)
    # Chinese left in the English page: names (of orgs, unions, programs) and 万/亿/元 only
    names = {"小店区总工会", "太原市总工会", "山西省总工会", "消费券"}
    leftover = {x for x in re.findall(r"[\u4e00-\u9fff]+", words)} - names - {"万", "亿",
                                                                              "元", "中文"}
    assert not leftover, leftover
    assert '"lang": "en"' in en.text or '"lang":"en"' in en.text
