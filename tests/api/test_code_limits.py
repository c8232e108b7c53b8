"""Typed voucher codes behind one NAT address (issue 9, item 8), and whose address counts:
the cashier's and the terminal's limits carry the load, the per-address limit is a backstop
sized for a shop, and a forwarded address is believed only from a configured proxy."""

from __future__ import annotations

import itertools

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from civicvoucher.api.app import create_app
from civicvoucher.auth.models import RateBucket
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.auth.tokens import issue_token
from civicvoucher.funds.service import deposit
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.world import SECRET, T0, make_id

SHOP_NAT = "203.0.113.80"


@pytest.fixture
def proxies(monkeypatch):
    """Set CIVICVOUCHER_TRUSTED_PROXIES for one test (the setting is read once per process)."""
    from civicvoucher.api import clientip

    def configure(value: str | None, header: str | None = None) -> None:
        for var, v in ((clientip.ENV_PROXIES, value), (clientip.ENV_HEADER, header)):
            if v is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, v)
        clientip.trusted_proxies.cache_clear()

    yield configure
    monkeypatch.delenv(clientip.ENV_PROXIES, raising=False)
    monkeypatch.delenv(clientip.ENV_HEADER, raising=False)
    clientip.trusted_proxies.cache_clear()


def more_vouchers(api, n: int) -> list[str]:
    """``n`` more members of union A, funded and issued: their codes."""
    with api.db.session() as s:
        rows = [(i, MemberRow(name=f"收银测试{i}", id_number=make_id(100 + i), phone=None,
                              union=api.w.union_uscc["A"], status=MemberStatus.ACTIVE))
                for i in range(1, n + 1)]
        add_members(s, rows, key=SECRET)
        deposit(s, org_id=api.w.union_a, amount_fen=n * 30_000, source="dues",
                idem_key="nat-fund")
        issue(s, union_id=api.w.union_a, program=api.w.program, idem_key="nat-issue", now=T0)
        spent = set(api.codes_in)
        return [c for c in s.execute(select(Voucher.code).where(
            Voucher.union_id == api.w.union_a).order_by(Voucher.id)).scalars() if c not in spent]


def cashiers(api, n: int) -> list[str]:
    with api.db.session() as s:
        out = []
        for i in range(n):
            u = create_user(s, username=f"till-{i}", role=Role.CASHIER,
                            merchant_id=api.merchant_in).user
            out.append(issue_token(s, user_id=u.id, kind="api", ttl=None)[0])
        return out


def test_eight_cashiers_behind_one_address_redeem_200_typed_codes(api):
    """The attack found 80 of these 200 refused by a 120-a-minute per-address cap. All within
    one minute (the clock stands still), 25 per cashier and terminal."""
    codes = more_vouchers(api, 200)
    assert len(codes) == 200
    tokens = cashiers(api, 8)
    shop = TestClient(api.client.app, client=(SHOP_NAT, 40000), raise_server_exceptions=False)
    refused = []
    for i, code in enumerate(codes):
        till = i % 8
        r = shop.post("/api/v1/redemptions", json={"code": code, "order_amount_fen": 30_000},
                      headers={"Authorization": f"Bearer {tokens[till]}",
                               "Idempotency-Key": f"nat-{i}", "X-Terminal-Id": f"T{till}",
                               "Accept-Language": "en"})
        if r.status_code != 201:
            refused.append((i, r.status_code, r.json().get("code")))
    assert refused == []
    # the cashier's own limit still holds: the 31st code of a minute from one till is refused
    more = [shop.post("/api/v1/vouchers/lookup", json={"code": codes[0]},
                      headers={"Authorization": f"Bearer {tokens[0]}", "X-Terminal-Id": "T0"})
            for _ in range(6)]
    assert [r.status_code for r in more] == [200] * 5 + [429]


def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(api, proxies):
    """A client that makes up X-Forwarded-For is still counted by its own address; behind the
    configured proxy, the address the proxy saw is counted."""
    app = create_app(api.db, secret_key=SECRET, limits=Limits(login_per_ip=2))
    direct = TestClient(app, client=("198.51.100.9", 40000), raise_server_exceptions=False)

    names = itertools.count()  # a new username each time: only the address limit is tested

    def attempts(c: TestClient, hop=lambda i: {"X-Forwarded-For": f"192.0.2.{i}"}):
        return [c.post("/api/v1/auth/login",
                       json={"username": f"ghost{next(names)}", "password": "x"},
                       headers={**hop(i), "Accept-Language": "en"}).json()["code"]
                for i in range(4)]

    refused_after_two = ["login_failed"] * 2 + ["rate_limited"] * 2
    proxies(None)
    assert attempts(direct) == refused_after_two
    proxies("10.0.0.0/8")  # a proxy is trusted, but this client is not it
    assert attempts(TestClient(app, client=("198.51.100.10", 40000))) == refused_after_two
    proxy = TestClient(app, client=("10.1.2.3", 443), raise_server_exceptions=False)
    assert attempts(proxy) == ["login_failed"] * 4  # four clients behind the proxy
    with api.db.session() as s:
        keys = set(s.execute(select(RateBucket.key)).scalars())
    assert {f"login:ip:192.0.2.{i}" for i in range(4)} <= keys
    assert "login:ip:10.1.2.3" not in keys
    # a proxy that sets Forwarded: an X-Forwarded-For (the client's, passed through) is not read
    proxies("10.0.0.0/8", "forwarded")
    assert attempts(TestClient(app, client=("10.1.2.4", 443)),
                    lambda i: {"X-Forwarded-For": f"192.0.2.{50 + i}"}) == refused_after_two
    assert attempts(TestClient(app, client=("10.1.2.5", 443)),
                    lambda i: {"Forwarded": f'for="198.51.100.{i}";proto=https'}) == (
        ["login_failed"] * 4)
