"""The audit log viewer through the console, on SQLite and PostgreSQL: filters, paging newest
first, one entry by ?seq=, the API's scope (an auditor sees their subtree's actors), other
roles refused, the chain's verification OK and then a break after an entry is edited in the
database, in Chinese and English."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.roles import Role

SEQS = re.compile(r'<tr id="seq-(\d+)">')


@pytest.fixture
def aw_log(console):
    aw = console.aw
    for role, org in ((Role.UNION_ADMIN, aw.w.union_a), (Role.PROVINCE_ADMIN, aw.w.union_a)):
        r = aw.call("POST", "/funds/deposits", role,
                    json={"org_id": org, "amount_fen": 100, "source": "dues"})
        assert r.status_code in (200, 201), r.text
    return console


def _seqs(html: str) -> list[int]:
    return [int(s) for s in SEQS.findall(html)]


def test_the_province_sees_everything_newest_first_and_filters(aw_log):
    console, db = aw_log, aw_log.aw.db
    console.login(Role.PROVINCE_ADMIN)
    r = console.client.get("/audit")
    assert r.status_code == 200 and '<html lang="zh-CN">' in r.text and "审计日志" in r.text
    seqs = _seqs(r.text)
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 2
    r = console.client.get("/audit", params={"action": "fund.deposit"})
    deposits = _seqs(r.text)
    with db.session() as s:
        want = s.execute(select(AuditEntry.seq).where(AuditEntry.action == "fund.deposit")
                         .order_by(AuditEntry.seq.desc())).scalars().all()
    assert deposits == want and len(want) == 2
    r = console.client.get("/audit", params={"action": "fund.deposit", "actor": "u-union_admin"})
    assert len(_seqs(r.text)) == 1 and "u-union_admin" in r.text
    r = console.client.get("/audit", params={"outcome": "refused"})
    assert r.status_code == 200 and _seqs(r.text) == []
    r = console.client.get("/audit", params={"from": "2000-01-01", "to": "2000-01-02"})
    assert _seqs(r.text) == []
    r = console.client.get("/audit", params={"from": "2000-01-01", "to": "2999-01-01"})
    assert _seqs(r.text)
    assert console.client.get("/audit", params={"from": "yesterday"}).status_code == 400
    assert console.client.get("/audit", params={"action": "DROP TABLE"}).status_code == 400


def test_paging_goes_on_with_the_filters(aw_log, monkeypatch):
    from civicvoucher.console.pages import auditpage

    monkeypatch.setattr(auditpage, "PAGE_SIZE", 1)
    console = aw_log
    console.login(Role.PROVINCE_ADMIN)
    first = console.client.get("/audit", params={"action": "fund.deposit"}).text
    nxt = re.search(r'href="(/audit\?[^"]*cursor=[^"]*)" rel="next"', first).group(1)
    assert "action=fund.deposit" in nxt
    second = console.client.get(nxt.replace("&amp;", "&")).text
    assert _seqs(first)[0] > _seqs(second)[0] and len(_seqs(second)) == 1


def test_one_entry_by_seq_and_escaped_detail(aw_log):
    console, db = aw_log, aw_log.aw.db
    with db.session() as s:
        seq = s.execute(select(func.max(AuditEntry.seq))
                        .where(AuditEntry.action == "fund.deposit")).scalar()
        s.execute(update(AuditEntry).where(AuditEntry.seq == seq)
                  .values(detail={"note": "<script>x</script>"}))
        s.commit()
    console.login(Role.PROVINCE_ADMIN)
    r = console.client.get("/audit", params={"seq": seq})
    assert r.status_code == 200 and "fund.deposit" in r.text
    assert "<script>x" not in r.text and "&lt;script&gt;x" in r.text
    assert console.client.get("/audit", params={"seq": "999999"}).status_code == 404
    assert console.client.get("/audit", params={"seq": "x"}).status_code == 404


def test_an_auditor_sees_only_their_subtrees_actors(aw_log):
    console, db = aw_log, aw_log.aw.db
    console.login(Role.AUDITOR)  # bound to the city: the province admin's deposit is outside
    r = console.client.get("/audit", params={"action": "fund.deposit"})
    assert r.status_code == 200 and "u-union_admin" in r.text
    assert "u-province_admin" not in r.text and len(_seqs(r.text)) == 1
    with db.session() as s:
        outside = s.execute(select(AuditEntry.seq).where(
            AuditEntry.actor == "u-province_admin")).scalars().first()
    assert console.client.get("/audit", params={"seq": outside}).status_code == 404


def test_reading_is_audited(aw_log):
    console, db = aw_log, aw_log.aw.db
    console.login(Role.AUDITOR)
    console.client.get("/audit")
    with db.session() as s:
        last = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().first()
    assert (last.action, last.actor) == ("audit.read", "u-auditor")


@pytest.mark.parametrize("role", [Role.COUNTY_ADMIN, Role.CITY_ADMIN, Role.ANALYST,
                                  Role.CASHIER])
def test_other_roles_are_refused_and_see_no_link(aw_log, role):
    console = aw_log
    console.login(role)
    assert 'href="/audit"' not in console.client.get("/").text
    assert console.client.get("/audit").status_code == 403
    assert console.client.get("/audit/verify").status_code == 403


def test_readers_see_the_link(aw_log):
    aw_log.login(Role.AUDITOR)
    assert 'href="/audit"' in aw_log.client.get("/").text


def test_verification_only_when_asked_then_ok_then_a_break(aw_log):
    console, db = aw_log, aw_log.aw.db
    console.login(Role.PROVINCE_ADMIN)
    page = console.client.get("/audit").text
    assert "audit-ok" not in page and 'hx-get="/audit/verify"' in page
    r = console.client.get("/audit/verify", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert "链完整" in r.text and "audit-ok" in r.text
    with db.session() as s:
        n = s.execute(select(func.count()).select_from(AuditEntry)).scalar()
    assert f"{n} " in r.text
    with db.session() as s:  # someone hides the size of the first deposit
        seq = s.execute(select(func.min(AuditEntry.seq))
                        .where(AuditEntry.action == "fund.deposit")).scalar()
        s.execute(update(AuditEntry).where(AuditEntry.seq == seq)
                  .values(detail={"amount_fen": 1, "source": "dues"}))
        s.commit()
    r = console.client.get("/audit/verify", headers={"HX-Request": "true"})
    assert "audit-broken" in r.text and f'href="/audit?seq={seq}"' in r.text
    assert "哈希" in r.text  # the reason, in Chinese
    r = console.client.get("/audit/verify", headers={"Accept-Language": "en"})  # no script
    assert '<html lang="en">' in r.text and "The chain is broken" in r.text
    assert "contents do not match its hash (edited): fund.deposit by u-union_admin" in r.text


def test_the_page_in_english(aw_log):
    console = aw_log
    console.login(Role.PROVINCE_ADMIN)
    r = console.client.get("/audit", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in r.text and "Audit log" in r.text and "Entries, newest first" \
        in r.text
    r = console.client.get("/audit/verify", headers={"HX-Request": "true",
                                                     "Accept-Language": "en"})
    assert "Chain intact" in r.text
