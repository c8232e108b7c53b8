"""The console's world: the API's world (tests/api/conftest.py), its users given passwords,
and a browser-like client that keeps cookies and does not follow redirects."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.passwords import hash_password
from civicvoucher.auth.roles import Role
from civicvoucher.core import clock
from tests.api.conftest import build_api_world
from tests.world import T0

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Console:
    aw: object
    client: TestClient

    def csrf(self, path: str = "/") -> str:
        """The CSRF token a page carries (its forms' hidden field)."""
        r = self.client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        found = CSRF_FIELD.findall(r.text)
        assert found, r.text[:500]
        return found[-1]

    def login(self, role: Role, *, password: str = PASSWORD, next_: str = "/"):
        token = self.csrf("/login")
        return self.client.post("/login", data={"username": f"u-{role}", "password": password,
                                                "csrf_token": token, "next": next_})


@pytest.fixture
def now():
    """The console's clock, movable: ``now.shift(minutes=31)``."""

    class Clock:
        at = T0

        def shift(self, **kw):
            from datetime import timedelta

            self.at = self.at + timedelta(**kw)

    c = Clock()
    clock.set_clock(lambda: c.at)
    yield c
    clock.set_clock(None)


@pytest.fixture
def console(db, now):
    aw = build_api_world(db)
    with db.session() as s:
        s.execute(update(ApiUser).where(ApiUser.role != Role.MEMBER.value)
                  .values(password_hash=hash_password(PASSWORD)))
        s.commit()
    client = TestClient(aw.client.app, base_url="http://127.0.0.1", follow_redirects=False,
                        raise_server_exceptions=False)
    yield Console(aw, client)
    client.close()
    aw.client.close()
