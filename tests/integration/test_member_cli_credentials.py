"""The command line makes member users the same way as the API: an activation code, never a
password set by the operator, and no token minted for a member."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth import credentials
from civicvoucher.auth.models import ApiUser
from tests.world import SECRET, T0, build_world, run_cli

CODE = re.compile(r"one-time activation code[^:]*: ([0-9A-Z]{5}-[0-9A-Z]{5})")


def _code(output: str) -> str:
    m = CODE.search(output)
    assert m, output
    return m.group(1)


def _activate(db, code: str, password: str = "the member's own 1"):
    return credentials.activate(db, code=code, password=password, ip="127.0.0.1",
                                key=credentials.activation_key(SECRET), username="m1")


def test_cli_members_get_an_activation_code_not_a_password(db, monkeypatch):
    from civicvoucher.core import clock

    build_world(db)
    monkeypatch.setattr(clock, "_now", lambda: T0)
    monkeypatch.setenv("CIVICVOUCHER_PASSWORD", "from the environment 1")  # ignored for members
    refused = run_cli(db, monkeypatch, "user", "create", "m0", "--role", "member",
                      "--member", 1, "--password", "operator chose 1")
    assert getattr(refused.exception, "code", None) == "member_password_not_allowed"
    made = run_cli(db, monkeypatch, "user", "create", "m1", "--role", "member", "--member", 1)
    assert made.exit_code == 0, made.output
    code = _code(made.output)
    with db.session() as s:
        users = {u.username: u for u in s.execute(select(ApiUser)).scalars()}
        detail = s.execute(select(AuditEntry.detail).where(
            AuditEntry.action == "user.create")).scalar_one()
    assert "m0" not in users and users["m1"].password_hash is None
    assert users["m1"].credential_origin == "invited" and code not in str(detail)
    # no token for a member from the operator
    token = run_cli(db, monkeypatch, "token", "create", "m1")
    assert "own login" in str(token.exception)
    # the member activates; a new invitation voids the code and clears the password
    assert not _activate(db, code).replayed
    again = run_cli(db, monkeypatch, "user", "invite", "m1")
    assert again.exit_code == 0 and "the old password is cleared" in again.output, again.output
    with pytest.raises(credentials.ActivationFailed):
        _activate(db, code, "another password 2")
    assert _activate(db, _code(again.output), "another password 2").user_id == users["m1"].id
    with db.session() as s:
        assert s.execute(select(ApiUser.credential_origin).where(
            ApiUser.username == "m1")).scalar_one() == "self"
        assert s.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "user.invite")).scalar_one().startswith("cli:")
