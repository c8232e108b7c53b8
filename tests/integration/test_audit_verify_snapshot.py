"""``audit verify`` while others append: it reads the log at one moment, so a busy log is not
reported as tampered (PostgreSQL only: SQLite's BEGIN IMMEDIATE lets no one commit meanwhile)."""

from __future__ import annotations

import threading

from civicvoucher.audit.service import Actor, append, verify, verify_now
from civicvoucher.core import testpoints

KEY = b"k" * 32


def _append(db) -> None:
    with db.session() as s:
        append(s, key=KEY, actor=Actor("tester"), action="test.write")


def test_an_entry_appended_mid_verify_is_not_a_deletion(pg_db):
    _append(pg_db)
    paused, go = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        assert go.wait(20)

    result: list = []
    with testpoints.hooked("audit.verify.before_head", pause):
        t = threading.Thread(target=lambda: result.append(verify_now(pg_db, key=KEY)))
        t.start()
        assert paused.wait(20), "verify never reached the head"
        _append(pg_db)  # commits while verify is between the entries and the head
        go.set()
        t.join(20)
    n, breaks = result[0]
    assert (n, [b.reason for b in breaks]) == (1, [])
    with pg_db.snapshot() as s:  # and afterwards both entries check out
        assert verify(s, key=KEY) == (2, [])
