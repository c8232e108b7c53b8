"""Idempotency-Key: ten concurrent copies of one redemption make one redemption; the same key
with another body is a 409; a replay says so in a header."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.ledger.models import Transfer
from civicvoucher.vouchers.models import Redemption
from tests.api.conftest import books_ok


def _concurrently(app, n: int, headers: dict, body: dict) -> list[httpx.Response]:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await asyncio.gather(*[
                client.post("/api/v1/redemptions", headers=headers, json=body)
                for _ in range(n)])

    return asyncio.run(go())


def test_ten_concurrent_requests_with_one_key_make_one_redemption(api):
    key = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {api.tokens[Role.CASHIER]}", "Idempotency-Key": key}
    body = {"code": api.codes_in[1], "order_amount_fen": 30000}
    rs = _concurrently(api.client.app, 10, headers, body)
    assert [r.status_code for r in rs] == [201] * 10, [r.text for r in rs]
    assert len({r.content for r in rs}) == 1  # identical bodies
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in rs) == 9
    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(Redemption)).scalar() == 1
        assert s.execute(select(func.count()).select_from(Transfer)
                         .where(Transfer.code == "redeem")).scalar() == 1
    books_ok(api.db)


def test_same_key_other_body_is_409_and_replay_is_marked(api):
    key = str(uuid.uuid4())
    first = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key,
                     json={"org_id": api.w.union_a, "amount_fen": 500, "source": "dues"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key,
                     json={"amount_fen": 500, "source": "dues", "org_id": api.w.union_a})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    other = api.call("POST", "/funds/deposits", Role.COUNTY_ADMIN, key=key,
                     json={"org_id": api.w.union_a, "amount_fen": 501, "source": "dues"})
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    # another user's identical key is their own
    theirs = api.call("POST", "/funds/deposits", Role.PROVINCE_ADMIN, key=key,
                      json={"org_id": api.w.union_a, "amount_fen": 501, "source": "dues"})
    assert theirs.status_code == 201
    assert theirs.json()["balance_fen"] == first.json()["balance_fen"] + 501
    books_ok(api.db)


def test_a_stored_error_replays_too(api):
    key = str(uuid.uuid4())
    body = {"code": api.codes_out[0], "order_amount_fen": 30000}
    first = api.call("POST", "/redemptions", Role.CASHIER, key=key, json=body)
    assert (first.status_code, first.json()["code"]) == (409, "region_not_allowed")
    again = api.call("POST", "/redemptions", Role.CASHIER, key=key, json=body)
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"


def test_a_long_request_keeps_its_key_and_its_retry_waits_instead_of_running_again(
        api, monkeypatch):
    """A deposit that takes a while: while it runs its owner holds the key's lock, so the
    client's retry with the same key waits and replays the answer instead of taking the key
    over and running the deposit a second time."""
    import time
    from datetime import datetime

    from civicvoucher.api import routing
    from civicvoucher.core import clock
    from tests.world import T0

    start = datetime.now()
    clock.set_clock(lambda: T0 + (datetime.now() - start))  # real time, from T0
    runs: list[str] = []

    class SlowCtx(routing.Ctx):
        def __init__(self, *args) -> None:  # the route body starts: a big job
            super().__init__(*args)
            runs.append(self.request.url.path)
            time.sleep(1.2)

    monkeypatch.setattr(routing, "Ctx", SlowCtx)
    headers = {"Authorization": f"Bearer {api.tokens[Role.UNION_ADMIN]}",
               "Idempotency-Key": str(uuid.uuid4())}
    body = {"org_id": api.w.union_a, "amount_fen": 700, "source": "dues"}

    async def go():
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async def retry():
                await asyncio.sleep(0.8)  # the client gave up waiting and sends it again
                return await client.post("/api/v1/funds/deposits", headers=headers, json=body)

            return await asyncio.gather(
                client.post("/api/v1/funds/deposits", headers=headers, json=body), retry())

    first, again = asyncio.run(go())
    assert (first.status_code, again.status_code) == (201, 201), (first.text, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.content == first.content
    assert runs == ["/api/v1/funds/deposits"]
    books_ok(api.db)


def test_a_claim_taken_over_is_fenced_from_its_first_owner(db):
    """A worker's claim lost its lock (the worker's lock connection was cut, or it died) and a
    retry took the key over. When the first worker then fails and releases, or finishes and
    stores its answer, neither touches the claim the retry now owns: only the current token's
    answer is kept."""
    import pytest
    from starlette.responses import Response

    from civicvoucher.api import idempotency as idem
    from civicvoucher.auth.errors import IdempotencyInFlight

    claim = lambda: idem.claim(db, user_id=7, key="k-1", rh="h", timeout=0)  # noqa: E731
    first = claim()
    assert first.record_id is not None and first.lock is not None and first.lock.held
    with pytest.raises(IdempotencyInFlight):  # a duplicate waits for the live owner
        claim()
    first.unlock()  # the owner's lock is gone: the row is left in progress
    second = claim()
    assert second.record_id == first.record_id and second.token != first.token
    assert idem.release(db, first) is False  # the late failure of the first frees nothing
    with pytest.raises(IdempotencyInFlight):
        claim()
    assert idem.complete(db, first, Response(b"first", 201)) is False
    assert idem.complete(db, second, Response(b"second", 201)) is True
    second.unlock()
    replay = claim()
    assert replay.replay is not None and replay.lock is None
    assert replay.replay.body == b"second"


def test_an_expired_key_is_claimed_anew_by_one_request_only(db):
    """An expired key is deleted and inserted anew, by the request that holds the key's lock:
    a second request at the same time cannot claim it too (it waits for the first)."""
    from datetime import timedelta

    import pytest

    from civicvoucher.api import idempotency as idem
    from civicvoucher.auth.errors import IdempotencyInFlight
    from civicvoucher.core import clock
    from tests.world import T0

    old = idem.claim(db, user_id=7, key="k-2", rh="h", timeout=0)
    old.unlock()
    clock.set_clock(lambda: T0 + idem.TTL + timedelta(minutes=1))  # the key has expired
    try:
        new = idem.claim(db, user_id=7, key="k-2", rh="other body", timeout=0)
        assert new.record_id is not None and new.token != old.token
        with pytest.raises(IdempotencyInFlight):
            idem.claim(db, user_id=7, key="k-2", rh="other body", timeout=0)
        new.unlock()
    finally:
        clock.set_clock(None)


def test_a_live_owner_in_another_process_is_waited_for_and_a_dead_one_taken_over(db):
    """The key's lock is between processes (POSIX record lock on SQLite, advisory lock on
    PostgreSQL): while another process owns the key, a claim here waits (409 in progress
    after its wait); once that process is killed, the claim takes the key over at once."""
    import signal
    import subprocess
    import sys

    import pytest

    from civicvoucher.api import idempotency as idem
    from civicvoucher.auth.errors import IdempotencyInFlight

    owner = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys\n"
            "from civicvoucher.api import idempotency as idem\n"
            "from civicvoucher.db import Database\n"
            f"c = idem.claim(Database({db.url!r}), user_id=9, key='k-3', rh='h')\n"
            "print('owned' if c.record_id else 'not owned', flush=True)\n"
            "sys.stdin.read()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "owned"
        with pytest.raises(IdempotencyInFlight):
            idem.claim(db, user_id=9, key="k-3", rh="h", timeout=0.2)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        got = idem.claim(db, user_id=9, key="k-3", rh="h", timeout=15)
        assert got.record_id is not None and got.lock is not None  # taken over
        got.unlock()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)


def test_a_stored_answer_keeps_no_shown_once_secret_at_any_depth(db):
    """``complete`` stores the answer with every shown-once field (``token``,
    ``channel_secret``) nulled, wherever it sits in the JSON, and the replay names them in
    X-CV-Secret-Withheld; an answer without one is stored byte for byte."""
    import json

    from starlette.responses import JSONResponse, Response

    from civicvoucher.api import idempotency as idem

    secret, other = "cvk_" + "s" * 43, "c" * 64
    doc = {"id": 1, "token": secret, "items": [{"channel_secret": other, "n": 2},
                                              {"channel_secret": None}], "prefix": secret[:12]}
    cases = [
        (JSONResponse(doc, status_code=201), "token,items.0.channel_secret"),
        (JSONResponse({"id": 2, "token": None}), None),  # nothing to withhold
        (Response(b'"token" in prose', media_type="text/plain"), None),  # not JSON: as it is
    ]
    for n, (response, withheld) in enumerate(cases):
        c = idem.claim(db, user_id=3, key=f"w-{n}", rh="h", timeout=0)
        assert idem.complete(db, c, response)
        c.unlock()
        replay = idem.claim(db, user_id=3, key=f"w-{n}", rh="h", timeout=0).replay
        assert replay.headers.get("X-CV-Secret-Withheld") == withheld
        if withheld is None:
            assert replay.body == response.body
    stored = json.loads(idem.claim(db, user_id=3, key="w-0", rh="h", timeout=0).replay.body)
    assert stored == {**doc, "token": None, "items": [{"channel_secret": None, "n": 2},
                                                      {"channel_secret": None}]}
    with db.engine.connect() as conn:
        bodies = b"".join(bytes(b) for (b,) in conn.exec_driver_sql(
            "SELECT body FROM idempotency_key WHERE body IS NOT NULL"))
    assert b'"prefix":"' + secret[:12].encode() in bodies  # what is not secret stays
    assert secret.encode() not in bodies and other.encode() not in bodies
