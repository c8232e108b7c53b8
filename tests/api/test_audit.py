"""The audit log: changes and personal-data reads are recorded; editing a row by SQL breaks
the chain at that entry, and ``civicvoucher audit verify`` says which."""

from __future__ import annotations

from sqlalchemy import select, text, update

from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import chain_key, verify
from civicvoucher.auth.roles import Role
from tests.world import SECRET, run_cli


def _actions(db) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(e.action, e.actor) for e in
                s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()]


def test_changes_and_personal_reads_are_logged_and_chained(api):
    api.call("GET", f"/members/{api.member_in}", Role.AUDITOR)
    api.call("GET", f"/members?org_id={api.w.union_a}", Role.COUNTY_ADMIN)
    api.call("POST", "/funds/deposits", Role.UNION_ADMIN,
             json={"org_id": api.w.union_a, "amount_fen": 100, "source": "dues"})
    api.call("GET", f"/members/{api.member_out}", Role.COUNTY_ADMIN)  # refused, and logged
    acts = _actions(api.db)
    assert acts == [("member.read", "u-auditor"), ("member.list", "u-county_admin"),
                    ("fund.deposit", "u-union_admin"), ("access.refused", "u-county_admin")]
    r = api.call("GET", "/audit/verify", Role.AUDITOR)
    assert r.json() == {"ok": True, "entries": 4, "breaks": []}


def _cli_verify(db, monkeypatch):
    return _cli(db, monkeypatch, "audit", "verify")


def _cli(db, monkeypatch, *args: str):
    return run_cli(db, monkeypatch, *args)


def test_editing_one_audit_row_by_sql_is_named_by_audit_verify(api, monkeypatch):
    for _ in range(3):
        api.call("POST", "/funds/deposits", Role.UNION_ADMIN,
                 json={"org_id": api.w.union_a, "amount_fen": 100, "source": "dues"})
    ok = _cli_verify(api.db, monkeypatch)
    assert ok.exit_code == 0, ok.output
    assert "3 entries, chain intact" in ok.output
    with api.db.session() as s:  # someone hides the size of the second deposit
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2)
                  .values(detail={"amount_fen": 1, "source": "dues"}))
    bad = _cli_verify(api.db, monkeypatch)
    assert bad.exit_code == 1
    assert "entry 2: contents do not match its hash (edited): fund.deposit by u-union_admin" \
        in " ".join(bad.output.split())
    with api.db.session() as s:
        _, breaks = verify(s, key=chain_key(SECRET))
    assert [b.seq for b in breaks] == [2]


def test_deleting_an_entry_is_found(api):
    for _ in range(3):
        api.call("POST", "/funds/deposits", Role.UNION_ADMIN,
                 json={"org_id": api.w.union_a, "amount_fen": 100, "source": "dues"})
    with api.db.session() as s:
        s.execute(text("DELETE FROM audit_entry WHERE seq = 3"))
    with api.db.session() as s:
        _, breaks = verify(s, key=chain_key(SECRET))
    assert [(b.seq, "deleted" in b.reason) for b in breaks] == [(3, True)]


def test_deleting_the_newest_entries_and_rewinding_the_head_is_found(db, monkeypatch):
    """The head row is sealed with an HMAC under the audit key (not in the database): someone
    who deletes the newest entries and moves the head back to the new last one cannot seal it.
    An old copy of the head row would seal it, which is why the head is also exported
    (``civicvoucher audit head``) and checked later (``audit verify --anchor``)."""
    from sqlalchemy import delete

    from civicvoucher.audit.models import AuditHead
    from civicvoucher.audit.service import SYSTEM, append

    head = AuditHead.__table__
    key = chain_key(SECRET)
    with db.session() as s:
        for i in range(3):
            append(s, key=key, actor=SYSTEM, action="test.step", detail={"i": i})
    with db.session() as s:
        at_three = s.execute(select(head)).one()  # what a reader of the database could copy
        for i in range(3, 5):
            append(s, key=key, actor=SYSTEM, action="test.step", detail={"i": i})
    with db.session() as s:
        assert verify(s, key=key) == (5, [])
    exported = _cli(db, monkeypatch, "audit", "head").output.strip()

    with db.session() as s:  # entries 4 and 5 go, the head is moved back to entry 3
        s.execute(delete(AuditEntry).where(AuditEntry.seq > 3))
        s.execute(update(AuditHead).where(AuditHead.id == 1)
                  .values(seq=3, hash=at_three.hash))
    with db.session() as s:
        n, breaks = verify(s, key=key)
    assert n == 3 and [(b.seq, "rewritten without the audit key" in b.reason)
                       for b in breaks] == [(3, True)]
    with db.session() as s:  # stripping the seal does not help
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(mac=None))
        assert [b.seq for b in verify(s, key=key)[1]] == [3]
    with db.session() as s:  # an old copy of the whole head row fools the seal ...
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(mac=at_three.mac))
        assert verify(s, key=key) == (3, [])
    # ... but not the head exported before: "SEQ:HASH:MAC" as `audit head` printed it
    assert exported.startswith("5:") and len(exported.split(":")) == 3
    bad = _cli(db, monkeypatch, "audit", "verify", "--anchor", exported)
    assert bad.exit_code == 1, bad.output
    assert "entry 5: the entry exported as the head then is gone" in " ".join(bad.output.split())
