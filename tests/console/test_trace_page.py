"""The voucher trace page (溯源) through the console, on SQLite and PostgreSQL: a search by
each kind of key, only in the user's subtree, audited without what was typed; a voucher's
steps in Chinese and English with amounts in yuan, its transfer and audit entry."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role
from civicvoucher.funds.service import deposit
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.world import T0, make_id

CJK = re.compile(r"[\u4e00-\u9fff]")
RID = re.compile(r'<span class="rid">[^<]*</span>')


@pytest.fixture
def tw(console):
    """The console's world (tests/api/conftest.py) plus: paper vouchers for union B (county
    A, 小店), digital ones for union C (county B, 迎泽), and union A's first voucher redeemed
    at 超市 through the API by the cashier."""
    aw = console.aw
    w = aw.w
    out: dict = {"console": console, "aw": aw}
    with aw.db.session() as s:
        for union, form in ((w.union_b, "paper"), (w.union_c, "digital")):
            deposit(s, org_id=union, amount_fen=1_000_000, source="dues", idem_key=f"tp-{union}")
            issue(s, union_id=union, program=w.program, idem_key=f"tp-issue-{union}", form=form,
                  now=T0)
        for name, union in (("b", w.union_b), ("c", w.union_c)):
            v = s.execute(select(Voucher).where(Voucher.union_id == union)
                          .order_by(Voucher.id)).scalars().first()
            out[f"v{name}"], out[f"code_{name}"] = v.id, v.code
        s.commit()
    r = aw.call("POST", "/redemptions", Role.CASHIER,
                json={"code": aw.codes_in[0], "order_amount_fen": 35000})
    assert r.status_code == 201, r.text
    out["va"], out["receipt"], out["redemption"] = aw.voucher_ids_in[0], r.json()["receipt_id"], \
        r.json()["id"]
    with aw.db.session() as s:
        out["redeem_seq"] = s.execute(select(AuditEntry.seq).where(
            AuditEntry.action == "redemption.create",
            AuditEntry.target == f"redemption:{out['redemption']}")).scalar_one()
    out["id_a"], out["id_b"], out["id_c"] = make_id(1), make_id(4), make_id(6)
    return out


def _main(html: str) -> str:
    """The page's content, without its request id."""
    return RID.sub("", html.split('<main id="main"', 1)[1])


def _search(console, q: str, **headers):
    token = console.csrf("/trace")
    return console.client.post("/trace", data={"q": q, "csrf_token": token}, headers=headers)


def _linked(html: str) -> set[int]:
    return {int(x) for x in re.findall(r'href="/trace/(\d+)"', html)}


def _audits(db, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.seq)).scalars())


def test_search_by_each_kind_shows_masked_results_in_yuan(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)
    paper = tw["code_b"]
    typed_paper = "-".join(paper[i:i + 5] for i in range(0, 26, 5)).lower()
    for query, expect, found_by in [
        (str(tw["va"]), tw["va"], "券编号"),
        (tw["receipt"], tw["va"], "小票号"),
        (tw["receipt"].lower(), tw["va"], "小票号"),
        (str(tw["redemption"]), tw["va"], "核销编号"),
        (tw["id_a"], tw["va"], "身份证号"),
        (typed_paper, tw["vb"], "纸质券券码"),
    ]:
        r = _search(console, query)
        assert r.status_code == 200, (query, r.text[:400])
        assert expect in _linked(r.text), (query, r.text[-3000:])
        assert found_by in r.text and "¥300.00" in r.text
        assert "成*" in r.text and tw["id_a"] not in r.text  # masked member
        assert paper not in r.text and typed_paper not in r.text  # never the whole code
    hit = _search(console, typed_paper)
    assert f"…{paper[-4:]}" in hit.text and "纸质券" in hit.text


def test_the_search_box_does_not_repeat_an_id_number(tw):
    console = tw["console"]
    console.login(Role.AUDITOR)  # the city's auditor
    r = _search(console, tw["id_b"])
    assert r.status_code == 200 and tw["vb"] in _linked(r.text)
    assert tw["id_b"] not in r.text and "本页不再显示" in r.text
    r = _search(console, tw["receipt"])
    assert f'value="{tw["receipt"]}"' in r.text  # a receipt number is kept in the box


def test_nothing_outside_the_subtree_is_found_or_traced(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)  # 小店: unions A and B, not C (迎泽) nor X (内蒙古)
    vx = tw["aw"].voucher_ids_out[0]
    for query in (str(tw["vc"]), tw["id_c"], str(vx), tw["code_c"]):
        r = _search(console, query)
        assert r.status_code == 200 and _linked(r.text) == set(), query
        assert "找到 0 张券" in r.text
    missing = console.client.get("/trace/987654321")
    assert missing.status_code == 404 and "voucher_not_found" in missing.text
    for vid in (tw["vc"], vx):
        other = console.client.get(f"/trace/{vid}")
        assert other.status_code == 404
        # the same page as a missing voucher, but for the number itself
        assert _main(other.text) == _main(missing.text).replace("987654321", str(vid))
    for odd in ("abc", "0", "9" * 30, "-1"):
        r = console.client.get(f"/trace/{odd}")
        assert r.status_code == 404 and "voucher_not_found" in r.text, odd

    console.login(Role.UNION_ADMIN)  # union A only: union B's paper voucher is outside
    assert _linked(_search(console, tw["code_b"]).text) == set()
    assert console.client.get(f"/trace/{tw['vb']}").status_code == 404
    assert console.client.get(f"/trace/{tw['va']}").status_code == 200


@pytest.mark.parametrize("role", [Role.ANALYST, Role.CASHIER, Role.MERCHANT_ADMIN])
def test_other_roles_are_refused_and_see_no_link(tw, role):
    console = tw["console"]
    console.login(role)
    assert 'href="/trace"' not in console.client.get("/").text
    assert console.client.get("/trace").status_code == 403
    assert console.client.get(f"/trace/{tw['va']}").status_code == 403


def test_readers_see_the_link(tw):
    console = tw["console"]
    console.login(Role.AUDITOR)
    assert 'href="/trace"' in console.client.get("/").text


def test_searches_and_traces_are_audited_without_what_was_typed(tw):
    console, db = tw["console"], tw["aw"].db
    console.login(Role.COUNTY_ADMIN)
    spaced = f"{tw['id_a'][:6]} {tw['id_a'][6:14]} {tw['id_a'][14:]}"  # as people type it
    typed = [tw["id_a"], spaced, tw["receipt"], str(tw["va"]), tw["code_b"], "成员1"]
    for q in typed:
        assert _search(console, q).status_code == 200
    assert console.client.get(f"/trace/{tw['va']}").status_code == 200
    searches = _audits(db, "voucher.search")
    assert [a.detail["kind"] for a in searches] == ["id_number", "id_number", "receipt_id",
                                                    "number", "code", "other"]
    assert all(a.actor == "u-county_admin" and a.outcome == "ok" for a in searches)
    assert searches[0].detail["voucher_ids"] == [tw["va"]] and searches[0].detail["count"] == 1
    assert searches[-1].detail["count"] == 0  # a name finds nothing
    with db.session() as s:
        every = repr([(a.target, a.detail, a.scope) for a in s.execute(
            select(AuditEntry)).scalars()])
    for secret in (tw["id_a"], tw["id_a"][:-1], tw["code_b"], "成员1"):
        assert secret not in every
    (traced,) = _audits(db, "voucher.trace")
    assert traced.target == f"voucher:{tw['va']}" and traced.actor == "u-county_admin"
    assert traced.detail["steps"] == 3
    # an empty query reads nothing and is not a search
    assert _search(console, "   ").status_code == 200
    assert len(_audits(db, "voucher.search")) == len(typed)


def test_a_search_needs_the_forms_token(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)
    assert console.client.post("/trace", data={"q": str(tw["va"])}).status_code == 403
    assert _audits(tw["aw"].db, "voucher.search") == []


def test_a_long_query_finds_nothing_and_does_not_fail(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)
    r = _search(console, "1" * 5000)
    assert r.status_code == 200 and _linked(r.text) == set()


def _steps(html: str) -> list[str]:
    return re.findall(r'<span class="step-name">([^<]+)</span>', html)


def test_the_steps_in_chinese_with_yuan_transfer_and_audit_entry(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)
    r = console.client.get(f"/trace/{tw['va']}")
    assert r.status_code == 200 and '<html lang="zh-CN">' in r.text
    assert _steps(r.text) == ["发放", "推送电子券", "核销"]
    assert "¥300.00" in r.text and "订单 ¥350.00" in r.text
    assert "超市" in r.text and "u-cashier" in r.text and tw["receipt"] in r.text
    assert f'<span class="mono seq">#{tw["redeem_seq"]}</span>' in r.text
    assert re.search(r"<code>redeem:[^<]+</code>", r.text)
    assert "2020-05-01 18:00 +08:00" in r.text  # T0 10:00 UTC, shown in Beijing time
    # a county admin may not open the audit log: the entry is named, not linked (a link
    # would lead to a refusal); for an auditor or the province it is a link
    assert 'href="/audit' not in r.text
    assert "成*1" in r.text and tw["id_a"] not in r.text


def test_the_steps_in_english(tw):
    console = tw["console"]
    console.login(Role.COUNTY_ADMIN)
    r = console.client.get(f"/trace/{tw['vb']}", headers={"Accept-Language": "en"})
    assert r.status_code == 200 and '<html lang="en">' in r.text
    assert _steps(r.text) == ["issued", "printed"]
    assert "¥300.00" in r.text and "paper" in r.text and "code ending" in r.text
    assert "the fund of union B" in r.text and "not recorded" in r.text
    body = r.text.split('<main id="main"', 1)[1]
    assert not CJK.search(body.replace("union B", "").replace("消费券", "")
                          .replace("成*", "")), CJK.findall(body)[:20]
    redeemed = console.client.get(f"/trace/{tw['va']}", headers={"Accept-Language": "en"})
    assert _steps(redeemed.text) == ["issued", "pushed", "redeemed"]
    assert f'#{tw["redeem_seq"]}</span>' in redeemed.text and "Audit entry" in redeemed.text


def test_the_province_follows_a_step_to_its_audit_entry(tw):
    console = tw["console"]
    console.login(Role.PROVINCE_ADMIN)
    r = console.client.get(f"/trace/{tw['va']}")
    link = f'href="/audit?seq={tw["redeem_seq"]}"'
    assert link in r.text
    entry = console.client.get(f"/audit?seq={tw['redeem_seq']}")
    assert entry.status_code == 200 and "redemption" in entry.text
