"""Member logins made before migration 0008 had their password chosen by an admin: after the
upgrade, neither that password nor a token issued under it works, until the member is
invited again and activates the account with a password of their own.

The old rows are written the old way, straight into a database at revision 0007."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from civicvoucher.api.app import create_app
from civicvoucher.auth.passwords import hash_password
from civicvoucher.auth.tokens import token_hash
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.orgs.service import create_org
from civicvoucher.schema import upgrade
from tests.world import SECRET, T0, make_id, make_uscc

ADMIN_CHOSE = "chosen by the admin 1"


def _old_world(db: Database) -> dict:
    """At revision 0007: a union, a member, a member login whose password the union admin
    chose, an API token minted for it, and the union admin."""
    upgrade(db.engine, "0007")
    with db.session() as s:
        p = create_org(s, level="province", name="山西省总工会", division_code="140000")
        u = create_org(s, level="union", name="union A", uscc=make_uscc(1),
                       unit_type="enterprise", parent_id=p.id)
        add_members(s, [(1, MemberRow(name="成员1", id_number=make_id(1), phone=None,
                                      union=make_uscc(1), status=MemberStatus.ACTIVE))],
                    key=SECRET)
        member = s.execute(text("SELECT id FROM member")).scalar_one()
        ins = text("INSERT INTO api_user (username, password_hash, role, org_id, member_id, "
                   "active, created_at) VALUES (:n, :h, :r, :o, :m, :a, :t)")
        s.execute(ins, {"n": "m-old", "h": hash_password(ADMIN_CHOSE), "r": "member", "o": None,
                        "m": member, "a": True, "t": T0})
        s.execute(ins, {"n": "ua-old", "h": hash_password("union admin's 1"), "r": "union_admin",
                        "o": u.id, "m": None, "a": True, "t": T0})
        uid = s.execute(text("SELECT id FROM api_user WHERE username = 'm-old'")).scalar_one()
        s.execute(text("INSERT INTO api_token (user_id, kind, token_hash, prefix, name, "
                       "created_at) VALUES (:u, 'api', :h, 'cvk_legacy', 'old', :t)"),
                  {"u": uid, "h": token_hash("cvk_legacy-token"), "t": T0})
    return {"member_user": uid}


def test_admin_set_member_credentials_are_refused_after_the_migration(blank_db):
    db = blank_db
    old = _old_world(db)
    upgrade(db.engine)
    clock.set_clock(lambda: T0)
    try:
        client = TestClient(create_app(db, secret_key=SECRET), raise_server_exceptions=False)
        with client:
            def login(name, password):
                return client.post("/api/v1/auth/login",
                                   json={"username": name, "password": password})

            assert login("m-old", ADMIN_CHOSE).status_code == 401
            legacy = client.get("/api/v1/me/vouchers",
                                headers={"Authorization": "Bearer cvk_legacy-token"})
            assert (legacy.status_code, legacy.json()["code"]) == (401, "unauthenticated")
            with db.session() as s:  # the migration marked every old user
                marks = dict(s.execute(text("SELECT username, credential_origin FROM api_user")).all())
            assert marks == {"m-old": "admin", "ua-old": "admin"}
            # other roles are not touched
            admin = login("ua-old", "union admin's 1")
            assert admin.status_code == 200, admin.text
            bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
            # the way back: invite again, the member activates with their own password
            inv = client.post(f"/api/v1/auth/users/{old['member_user']}/invite",
                              headers={**bearer, "Idempotency-Key": "re-1"})
            assert inv.status_code == 200, inv.text
            assert inv.json()["cleared_password"] is True
            assert login("m-old", ADMIN_CHOSE).status_code == 401
            done = client.post("/api/v1/auth/activate", json={
                "username": "m-old", "code": inv.json()["activation_code"],
                "password": "the member's own 1"})
            assert done.status_code == 200, done.text
            assert login("m-old", "the member's own 1").status_code == 200
            # the token minted under the admin's password stays dead
            assert client.get("/api/v1/me/vouchers", headers={
                "Authorization": "Bearer cvk_legacy-token"}).status_code == 401
        with db.session() as s:
            origin = s.execute(text("SELECT credential_origin FROM api_user WHERE id = :i"),
                               {"i": old["member_user"]}).scalar_one()
        assert origin == "self"
    finally:
        clock.set_clock(None)
