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
    """A deposit that takes longer than the staleness window: while it runs, its claim is
    refreshed, so the client's retry with the same key waits and replays the answer instead
    of taking the key over and running the deposit a second time."""
    import time
    from datetime import datetime

    from civicvoucher.api import idempotency as idem
    from civicvoucher.api import routing
    from civicvoucher.core import clock
    from tests.world import T0

    start = datetime.now()
    clock.set_clock(lambda: T0 + (datetime.now() - start))  # real time, from T0
    monkeypatch.setattr(idem, "STALE", __import__("datetime").timedelta(seconds=0.5))
    monkeypatch.setattr(idem, "HEARTBEAT", 0.1, raising=False)
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
    """A worker's claim went stale (it hung) and a retry took the key over. When the first
    worker then fails and releases, or finishes and stores its answer, neither touches the
    claim the retry now owns: only the current token's answer is kept."""
    from datetime import timedelta

    from starlette.responses import Response

    from civicvoucher.api import idempotency as idem
    from civicvoucher.auth.models import IdempotencyRecord
    from civicvoucher.core import clock
    from tests.world import T0

    claim = lambda: db.run(idem.claim_in, user_id=7, key="k-1", rh="h")  # noqa: E731
    first = claim()
    assert isinstance(first, idem.Claim) and first.record_id is not None
    assert isinstance(claim(), IdempotencyRecord)  # a duplicate waits for it
    clock.set_clock(lambda: T0 + idem.STALE + timedelta(seconds=1))
    second = claim()
    assert isinstance(second, idem.Claim) and second.record_id == first.record_id
    assert second.token != first.token
    assert idem.release(db, first) is False  # the late failure of the first frees nothing
    assert isinstance(claim(), IdempotencyRecord)
    assert idem.complete(db, first, Response(b"first", 201)) is False
    assert idem.extend(db, first) is False
    assert idem.complete(db, second, Response(b"second", 201)) is True
    replay = claim()
    assert isinstance(replay, idem.Claim) and replay.replay is not None
    assert replay.replay.body == b"second"


def test_the_loser_of_a_concurrent_reclaim_of_an_expired_key_does_not_run(db, monkeypatch):
    """An expired key is deleted and inserted anew. Two requests doing that at once: the one
    whose insert finds the other's fresh row must wait for it (it gets that row back), not
    run without a claim."""
    from datetime import timedelta

    from civicvoucher.api import idempotency as idem
    from civicvoucher.auth.models import IdempotencyRecord
    from civicvoucher.core import clock
    from tests.world import T0

    old = db.run(idem.claim_in, user_id=7, key="k-2", rh="h")
    assert isinstance(old, idem.Claim)
    clock.set_clock(lambda: T0 + idem.TTL + timedelta(minutes=1))  # the key has expired
    real_insert, calls = idem._insert, []

    def racing_insert(session, user_id, key, rh):
        calls.append(key)
        if len(calls) == 2:  # between our delete and our insert, another request inserts
            real_insert(session, user_id, key, rh)
        return real_insert(session, user_id, key, rh)

    monkeypatch.setattr(idem, "_insert", racing_insert)
    got = db.run(idem.claim_in, user_id=7, key="k-2", rh="h")
    assert isinstance(got, IdempotencyRecord) and got.state == "in_progress", got
