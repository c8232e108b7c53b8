"""The voucher trace (溯源): search by each key, a voucher's whole life as ordered steps with
their ledger transfers and audit entries, the subtree refusal, masking, a bounded query count."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select

from civicvoucher.audit.service import Actor, append, chain_key
from civicvoucher.errors import NotFound
from civicvoucher.i18n import Term
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.members.models import Member
from civicvoucher.orgs.models import Org
from civicvoucher.reconcile import verify
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import capture, redeem, refund, void
from civicvoucher.vouchers.trace import find_vouchers, receipt_id, trace
from tests.world import SECRET, T0, build_world, fund, make_id, program_spec

KEY = chain_key(SECRET)
H = timedelta(hours=1)
NEW_DEADLINE = datetime(2020, 7, 31, 16, 0)  # 2020-08-01 00:00 +08:00
DEADLINE = datetime(2020, 7, 10, 16, 0)  # the product's: 2020-07-11 00:00 +08:00


def audited(s, actor: str, action: str, target: str) -> int:
    return append(s, key=KEY, actor=Actor(actor, role="union_admin"), action=action,
                  target=target)


@pytest.fixture
def story(db):
    """Union A (3 members, digital): v1 held, voided, redeemed, refunded, re-redeemed at
    another merchant, settled; v2 redeemed, then refunded after an extension for union A
    passed it by; union B (digital): expired; union C: paper."""
    w = build_world(db, program=program_spec(channels=("offline", "online")))
    for org in (w.union_a, w.union_b, w.union_c):
        fund(w, org, 1000)
    m1, m2 = w.merchants["超市"], w.merchants["饭店"]
    out: dict = {"w": w}
    with db.session() as s:
        r = issue(s, union_id=w.union_a, program=w.program, idem_key="ia", actor="clerk-a",
                  now=T0)
        out["issuance_a"] = r.issuance.id
        audited(s, "clerk-a", "issuance.create", f"issuance:{r.issuance.id}")
        out["issue_seq"] = audited(s, "clerk-a", "test.noise", "issuance:999")
        rb = issue(s, union_id=w.union_b, program=w.program, idem_key="ib", now=T0)
        issue(s, union_id=w.union_c, program=w.program, idem_key="ic", form="paper", now=T0)
    with db.session() as s:
        vs = list(s.execute(select(Voucher).order_by(Voucher.id)).scalars())
        a = [v for v in vs if v.union_id == w.union_a]
        out["v1"], out["v2"] = a[0].id, a[1].id
        out["vb"] = next(v.id for v in vs if v.union_id == w.union_b)
        out["vb2"] = [v.id for v in vs if v.union_id == w.union_b][1]
        out["vc"], out["vc2"] = [v.id for v in vs if v.union_id == w.union_c]
        out["codes"] = {v.id: v.code for v in vs}
        out["issuance_b"] = rb.issuance.id
    c1, c2 = out["codes"][out["v1"]], out["codes"][out["v2"]]
    with db.session() as s:
        h = redeem(s, code=c1, merchant_id=m1, order_amount_fen=40000, channel="online",
                   hold=True, idem_key="h1", now=T0 + H).redemption
        out["hold"] = h.id
        audited(s, "cashier-1", "redemption.create", f"redemption:{h.id}")
        stale = redeem(s, code=out["codes"][out["vb2"]], merchant_id=m1, order_amount_fen=30000,
                       channel="online", hold=True, idem_key="stale", now=T0 + H).redemption
        out["stale"] = stale.id
        hc = redeem(s, code=out["codes"][out["vc2"]], merchant_id=m1, order_amount_fen=30000,
                    channel="online", hold=True, idem_key="hc", now=T0 + H).redemption
        out["hc"] = hc.id
        capture(s, redemption_id=hc.id, now=T0 + H + timedelta(minutes=1))
        audited(s, "cashier-1", "redemption.capture", f"redemption:{hc.id}")
    with db.session() as s:
        void(s, redemption_id=out["hold"], now=T0 + H + timedelta(minutes=5))
        audited(s, "cashier-1", "redemption.void", f"redemption:{out['hold']}")
    with db.session() as s:
        r1 = redeem(s, code=c1, merchant_id=m1, order_amount_fen=35000, idem_key="r1",
                    now=T0 + 2 * H).redemption
        out["r1"] = r1.id
        audited(s, "cashier-1", "redemption.create", f"redemption:{r1.id}")
        r2v = redeem(s, code=c2, merchant_id=m1, order_amount_fen=30000, idem_key="r2v",
                     now=T0 + 2 * H).redemption
        out["r2v"] = r2v.id
    with db.session() as s:
        refund(s, redemption_id=out["r1"], idem_key="f1", reason="退货", now=T0 + 3 * H)
        audited(s, "cashier-1", "redemption.refund", f"redemption:{out['r1']}")
    with db.session() as s:
        e = extend(s, program=w.program, new_expires_at=NEW_DEADLINE, actor="ops", reason="延期",
                   union_ids=[w.union_a], idem_key="e1", now=T0 + 3.5 * H).extension
        out["ext"] = e.id
        audited(s, "province-admin", "extension.create", f"extension:{e.id}")
    with db.session() as s:
        r2 = redeem(s, code=c1, merchant_id=m2, order_amount_fen=30000, idem_key="r2",
                    now=T0 + 4 * H).redemption
        out["r2"] = r2.id
        audited(s, "cashier-2", "redemption.create", f"redemption:{r2.id}")
        refund(s, redemption_id=out["r2v"], idem_key="f2v", now=T0 + 5 * H)
    with db.session() as s:
        run = settle(s, cutoff=T0 + 24 * H, idem_key="s1", now=T0 + 24 * H).run
        out["settle_run"] = run.id
        out["settle_seq"] = audited(s, "finance", "settlement.run", f"settlement_run:{run.id}")
    with db.session() as s:
        early = expire(s, as_of=T0 + 48 * H, idem_key="x0", now=T0 + 48 * H).run
        x = expire(s, as_of=DEADLINE, idem_key="x1", now=DEADLINE + H).run
        later = expire(s, as_of=DEADLINE + 24 * H, idem_key="x2", now=DEADLINE + 24 * H).run
        out["expiry"], out["expiry_others"] = x.id, (early.id, later.id)
        out["expiry_seq"] = audited(s, "system", "expiry.run", f"expiry_run:{x.id}")
    with db.session() as s:
        assert verify(s) == []
        out["paths"] = {o.id: o.path for o in s.execute(select(Org)).scalars()}
    return out


def transfers(s, ids):
    rows = s.execute(select(Transfer, Account.key).join(
        Account, Account.id == Transfer.debit_account_id).where(Transfer.id.in_(ids))).all()
    return {t.id: t for t, _k in rows}


def test_life_of_a_voucher_in_order_with_its_links(db, story):
    w = story["w"]
    with db.session() as s:
        t = trace(s, story["v1"], org_path=story["paths"][w.province])
        steps = t.steps
        assert [x.code for x in steps] == [
            "issued", "pushed", "held", "voided", "redeemed", "refunded", "extended",
            "redeemed", "settled"]
        assert [x.at for x in steps] == sorted(x.at for x in steps)
        assert t.status == "redeemed" and t.expires_at == NEW_DEADLINE and t.notes == ()
        assert t.code_hint is None  # digital: no part of the code is shown
        issued, pushed, held, voided, r1, refunded, extended, r2, settled = steps

        assert (issued.issuance_id, issued.actor, issued.amount_fen) == (
            story["issuance_a"], "clerk-a", 30000)
        assert issued.audit_seq is not None and issued.audit_seq != story["issue_seq"]
        assert issued.transfer_id == f"issue:{story['issuance_a']}:issue"
        assert issued.transfer_shared and issued.transfer_amount_fen == 90000  # 3 members
        assert issued.fund_transfer_id == f"issue:{story['issuance_a']}:reserve"
        assert issued.fund_account == f"union.fund:{w.union_a}"
        assert issued.fund_org_id == w.union_a and issued.fund_org_name == "union A"
        assert issued.when_local == "2020-05-01 18:00 +08:00"
        assert (pushed.form, pushed.transfer_id, pushed.audit_seq) == ("digital", None, None)

        assert held.redemption_id == story["hold"] and held.channel == "online"
        assert (held.transfer_id, held.transfer_amount_fen) == ("redeem:h1", 30000)
        assert held.actor == "cashier-1" and held.audit_seq is not None
        assert held.merchant_name == "超市" and held.order_amount_fen == 40000
        assert voided.transfer_id == f"void:{story['hold']}" and voided.outcome == "voided"
        assert voided.at == T0 + H + timedelta(minutes=5) and voided.actor == "cashier-1"

        assert (r1.redemption_id, r1.transfer_id, r1.order_amount_fen) == (
            story["r1"], "redeem:r1", 35000)
        assert r1.receipt_id == receipt_id(T0 + 2 * H, story["r1"])
        assert refunded.transfer_id == f"refund:{story['r1']}" and refunded.outcome == "restored"
        assert refunded.reason == "退货" and refunded.actor == "cashier-1"
        assert refunded.debit_account == f"merchant.payable:{w.merchants['超市']}"
        assert (extended.extension_id, extended.expires_before, extended.expires_after) == (
            story["ext"], DEADLINE, NEW_DEADLINE)
        assert extended.derived and extended.actor == "province-admin"
        assert r2.merchant_name == "饭店" and r2.transfer_id == "redeem:r2"
        assert r2.actor == "cashier-2" and r2.channel == "offline"
        assert settled.settlement_run_id == story["settle_run"]
        assert settled.settlement_batch_id is not None and settled.redemption_id == story["r2"]
        assert settled.transfer_id == f"settle:{settled.settlement_batch_id}"
        assert settled.audit_seq == story["settle_seq"] and settled.actor == "finance"

        # every link is a real ledger transfer, and its amount is the step's (or, for a
        # transfer shared by many vouchers, at least the step's)
        linked = [x for x in steps if x.transfer_id]
        found = transfers(s, [x.transfer_id for x in linked] + [issued.fund_transfer_id])
        assert set(found) == {x.transfer_id for x in linked} | {issued.fund_transfer_id}
        for x in linked:
            assert found[x.transfer_id].amount == x.transfer_amount_fen
            if x.transfer_shared:
                assert x.transfer_amount_fen >= x.amount_fen
            else:
                assert x.transfer_amount_fen == x.amount_fen == 30000


def test_extension_made_while_spent_applies_on_refund(db, story):
    with db.session() as s:
        t = trace(s, story["v2"], org_path=None)
    assert [x.code for x in t.steps] == ["issued", "pushed", "redeemed", "refunded", "extended"]
    ext = t.steps[-1]
    assert ext.outcome == "on_refund" and ext.at == T0 + 5 * H
    assert ext.expires_after == NEW_DEADLINE == t.expires_at and t.status == "issued"
    assert t.notes == ()


def test_expired_voucher_names_its_run(db, story):
    w = story["w"]
    with db.session() as s:
        t = trace(s, story["vb"], org_path=story["paths"][w.county_a])
        assert [x.code for x in t.steps] == ["issued", "pushed", "expired"]
        x = t.steps[-1]
        assert x.expiry_run_id == story["expiry"] and x.derived
        assert x.transfer_id == f"expire:{story['expiry']}:{w.union_b}:{t.program_id}"
        assert x.audit_seq == story["expiry_seq"] and x.at == DEADLINE + H
        assert x.credit_account == f"union.fund:{w.union_b}"
        assert transfers(s, [x.transfer_id])[x.transfer_id].amount == x.transfer_amount_fen
        assert x.transfer_amount_fen == 60000  # union B's two vouchers
        assert t.steps[0].actor is None  # issued without an actor or an audit entry


def test_timed_out_hold_voided_by_an_expiry_run_then_expired(db, story):
    w = story["w"]
    with db.session() as s:
        t = trace(s, story["vb2"], org_path=None)
    assert [x.code for x in t.steps] == ["issued", "pushed", "held", "voided", "expired"]
    held, voided, expired = t.steps[2:]
    assert held.actor is None and held.audit_seq is None  # nobody audited this hold
    assert voided.outcome == "timed_out" and voided.at == T0 + 48 * H  # by the early run
    assert voided.transfer_id == f"void:{story['stale']}" and voided.audit_seq is None
    assert expired.expiry_run_id == story["expiry"]
    assert expired.transfer_id == f"expire:{story['expiry']}:{w.union_b}:{t.program_id}"


def test_captured_hold_is_redeemed_by_the_capture(db, story):
    with db.session() as s:
        t = trace(s, story["vc2"], org_path=None)
    assert [x.code for x in t.steps] == ["issued", "printed", "held", "redeemed", "settled"]
    held, redeemed, settled = t.steps[2:]
    assert (held.transfer_id, redeemed.transfer_id) == ("redeem:hc", f"capture:{story['hc']}")
    assert redeemed.actor == "cashier-1" and redeemed.at == T0 + H + timedelta(minutes=1)
    assert redeemed.receipt_id == held.receipt_id == receipt_id(T0 + H, story["hc"])
    assert settled.settlement_run_id == story["settle_run"]


def test_out_of_subtree_is_the_same_not_found_as_missing(db, story):
    w = story["w"]
    other = story["paths"][w.county_b]
    with db.session() as s:
        with pytest.raises(NotFound) as outside:
            trace(s, story["v1"], org_path=other)
        with pytest.raises(NotFound) as missing:
            trace(s, 10**9, org_path=other)
        assert outside.value.code == missing.value.code == "voucher_not_found"
        assert type(outside.value) is type(missing.value)
        assert trace(s, story["vc"], org_path=other).voucher_id == story["vc"]
        for q in (str(story["v1"]), str(story["r2"]), receipt_id(T0 + 4 * H, story["r2"]),
                  make_id(1)):
            hits = find_vouchers(s, query=q, org_path=other, key=SECRET)
            assert story["v1"] not in {h.voucher_id for h in hits}, q


def test_search_by_each_key(db, story):
    w = story["w"]
    root = story["paths"][w.province]
    with db.session() as s:
        by_receipt = find_vouchers(s, query=receipt_id(T0 + 4 * H, story["r2"]).lower(),
                                   org_path=root)
        assert [(h.voucher_id, h.matched_by, h.redemption_id) for h in by_receipt] == [
            (story["v1"], "receipt_id", story["r2"])]
        wrong_day = f"R20200502-{story['r2']:08d}"
        assert find_vouchers(s, query=wrong_day, org_path=root) == []

        by_number = find_vouchers(s, query=str(story["r2"]), org_path=root)
        assert (story["v1"], "redemption_id") in {(h.voucher_id, h.matched_by) for h in by_number}
        by_id = find_vouchers(s, query=str(story["vb"]), org_path=root)
        assert (story["vb"], "voucher_id") in {(h.voucher_id, h.matched_by) for h in by_id}

        member = s.execute(select(Member).where(Member.id == s.get(
            Voucher, story["v1"]).member_id)).scalar_one()
        number = make_id(1)
        hits = find_vouchers(s, query=number, org_path=root, key=SECRET)
        assert [(h.voucher_id, h.matched_by) for h in hits] == [(story["v1"], "id_number")]
        h = hits[0]
        assert h.member_name == "成*1" and h.member_name != member.name
        assert h.member_id_masked == member.id_masked and "*" in h.member_id_masked
        assert number not in repr(hits)
        assert find_vouchers(s, query=number, org_path=root) == []  # no key, no lookup
        assert find_vouchers(s, query="成员1", org_path=root, key=SECRET) == []  # no name search

        paper, digital = story["codes"][story["vc"]], story["codes"][story["v1"]]
        typed = "-".join(paper[i:i + 5] for i in range(0, 26, 5)).lower()
        hits = find_vouchers(s, query=typed, org_path=root)
        assert [(h.voucher_id, h.matched_by, h.code_hint) for h in hits] == [
            (story["vc"], "code", paper[-4:])]
        assert paper not in repr(hits)
        assert find_vouchers(s, query=digital, org_path=root) == []  # digital codes: secrets
        assert find_vouchers(s, query="", org_path=root) == []
        assert find_vouchers(s, query="x" * 500, org_path=root) == []


def test_paper_trace_and_step_names_in_chinese(db, story):
    with db.session() as s:
        t = trace(s, story["vc"], org_path=None)
    assert [x.code for x in t.steps] == ["issued", "printed", "expired"]
    assert t.code_hint == story["codes"][story["vc"]][-4:]
    assert Term("printed", "trace_step").localized("zh") == "印制纸质券"
    assert Term("refunded", "trace_step").localized("zh") == "退款"
    assert Term("refunded", "trace_step").localized("en") == "refunded"


def test_a_trace_is_a_handful_of_queries_however_long_the_history(db, story):
    counts = {}
    for name in ("vc", "v1", "v2", "vb"):
        seen: list[str] = []

        def count(conn, cursor, statement, *args, seen=seen):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            with db.session() as s:
                trace(s, story[name], org_path=None)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        counts[name] = len([q for q in seen if q.lstrip().upper().startswith("SELECT")])
    # nine steps (v1) or three (vc, vb): the same few queries; an expired voucher adds one
    # (its candidate expiry runs)
    assert counts["v1"] == counts["v2"] == 5 and counts["vc"] == counts["vb"] == 6, counts
