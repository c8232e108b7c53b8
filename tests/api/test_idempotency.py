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
