"""Channel secrets sealed at rest (issue 9, item 1): AES-GCM under a key kept outside the
database, a key id in every sealed value so keys rotate, callbacks that open the secret per
request, a rotation command that keeps old secrets working, and migration 0009, which
scrubs stored answers and leaves old plain secrets for the first keyed start to seal."""

from __future__ import annotations

import calendar
import json
import logging
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update

from civicvoucher.api.app import create_app
from civicvoucher.api.routers.channels import sign
from civicvoucher.auth.models import PaymentChannel
from civicvoucher.auth.roles import Role
from civicvoucher.config import Settings
from civicvoucher.core import sealed
from civicvoucher.db import Database
from civicvoucher.keys import (
    SEALING_FILE_ENV,
    add_sealing_key,
    bind_key,
    bind_sealing,
    sealing_keys_file,
)
from tests.api.conftest import build_api_world
from tests.api.test_secrets_at_rest import database_text
from tests.conftest import PG_ADMIN_URL
from tests.world import SECRET, T0, run_cli

NOW = calendar.timegm(T0.timetuple())


@pytest.fixture(autouse=True)
def frozen_clock():
    from civicvoucher.core import clock

    clock.set_clock(lambda: T0)
    yield
    clock.set_clock(None)


@pytest.fixture
def settings(db, tmp_path, monkeypatch) -> Settings:
    """The deployment's key custody in a folder of the test's own (the ID-hash key from the
    environment, the sealing-keys file in tmp_path)."""
    monkeypatch.setenv("CIVICVOUCHER_SECRET_KEY", SECRET.decode())
    monkeypatch.setenv(SEALING_FILE_ENV, str(tmp_path / "sealing-keys"))
    (tmp_path / "sealing-keys").write_text("# no key yet\n")
    return Settings(database_url=db.url, secret_file=tmp_path / "id-hash-key",
                    secret_from_env=True)


@pytest.fixture
def keyed(db, settings):
    """The API world on a database whose keyring is bound as a server binds it."""
    bind_sealing(db, SECRET, settings)
    aw = build_api_world(db)
    yield aw
    aw.client.close()


def callback(client: TestClient, secret: str, name: str, body: dict | None = None):
    """A signed callback whose body fails validation after the signature: 422 proves the
    signature verified, 401 that it did not."""
    raw = json.dumps(body or {"txn_id": f"T-{uuid.uuid4().hex[:8]}", "kind": "refund"}).encode()
    return client.post("/api/v1/channels/callbacks", content=raw, headers={
        "Content-Type": "application/json", "X-CV-Channel": name, "X-CV-Timestamp": str(NOW),
        "X-CV-Signature": sign(secret, NOW, raw), "Accept-Language": "en"})


def verifies(client: TestClient, secret: str, name: str) -> bool:
    r = callback(client, secret, name)
    assert r.status_code in (401, 422), r.text
    return r.status_code == 422


def sealed_values(db) -> dict[str, str]:
    with db.session() as s:
        return dict(s.execute(select(PaymentChannel.name, PaymentChannel.secret_sealed)).all())


def test_a_channel_secret_is_sealed_and_callbacks_open_it(keyed):
    aw = keyed
    made = aw.call("POST", "/auth/users", Role.PROVINCE_ADMIN,
                   json={"username": "pay-a", "role": "channel"})
    assert made.status_code == 201
    secret = made.json()["channel_secret"]
    with aw.db.session() as s:
        rows = s.execute(select(PaymentChannel)).scalars().all()
        assert {r.name for r in rows} == {"u-channel", "pay-a"}
        for r in rows:
            assert r.secret_sealed.startswith("cv1:h1:") and r.unsealed_secret is None
    dump = database_text(aw.db)
    assert secret not in dump and aw.channel_secret not in dump
    assert verifies(aw.client, secret, "pay-a") and verifies(aw.client, aw.channel_secret, "u-channel")
    assert not verifies(aw.client, aw.channel_secret, "pay-a")
    # the redemption path end to end, with the sealed secret
    body = {"txn_id": "UP-1", "kind": "redeem", "code": aw.codes_in[1],
            "merchant_id": aw.merchant_in, "order_amount_fen": 35000, "channel": "online"}
    assert callback(aw.client, secret, "pay-a", body).status_code == 200


def test_a_sealed_secret_copied_to_another_row_does_not_open(keyed, caplog):
    """The value is bound to its channel's user id: pasting channel A's sealed secret into B's
    row (someone with write access to the database) does not give B A's secret."""
    aw = keyed
    a = aw.call("POST", "/auth/users", Role.PROVINCE_ADMIN,
                json={"username": "pay-a", "role": "channel"}).json()["channel_secret"]
    with aw.db.session() as s:
        s.execute(update(PaymentChannel).where(PaymentChannel.name == "u-channel")
                  .values(secret_sealed=sealed_values(aw.db)["pay-a"]))
    caplog.set_level(logging.ERROR)
    r = callback(aw.client, a, "u-channel")
    assert (r.status_code, r.json()["code"]) == (500, "sealed_secret_unreadable")
    assert "u-channel" not in r.text and "cannot open its secret" in caplog.text


def test_unknown_channel_and_wrong_signature_cost_one_open_each(keyed, monkeypatch):
    """Every callback opens exactly one sealed value: its channel's, or for a channel that
    does not exist a decoy under the current key, so a prober cannot time the difference."""
    aw = keyed
    opened: list[str] = []
    real_open = sealed.Keyring.open

    def counting(self, value, *, context):
        opened.append(context)
        return real_open(self, value, context=context)

    monkeypatch.setattr(sealed.Keyring, "open", counting)
    for secret, name in ((aw.channel_secret, "u-channel"), ("0" * 64, "u-channel"),
                         ("0" * 64, "nobody")):
        opened.clear()
        callback(aw.client, secret, name)
        assert len(opened) == 1, (name, opened)


def test_rotation_keeps_old_secrets_working_and_moves_every_one(keyed, settings, monkeypatch):
    aw, db = keyed, keyed.db
    old = aw.call("POST", "/auth/users", Role.PROVINCE_ADMIN,
                  json={"username": "pay-old", "role": "channel"}).json()["channel_secret"]
    kid = add_sealing_key(settings)  # step 1: a new key at the end of the file
    assert sealing_keys_file(settings).stat().st_mode & 0o077 == 0
    bind_sealing(db, SECRET, settings)  # step 2: the server restarts with the file
    assert db.keyring.current == kid
    new = aw.call("POST", "/auth/users", Role.PROVINCE_ADMIN,
                  json={"username": "pay-new", "role": "channel"}).json()["channel_secret"]
    assert sealed.key_id_of(sealed_values(db)["pay-new"]) == kid
    assert sealed.key_id_of(sealed_values(db)["pay-old"]) == sealed.DERIVED_ID
    for secret, name in ((old, "pay-old"), (new, "pay-new"), (aw.channel_secret, "u-channel")):
        assert verifies(aw.client, secret, name), name  # old and new open side by side

    # a process that did not get the file opens the old ones only, and says why for the new
    stale = Database(db.url)
    bind_sealing(stale, SECRET)
    stale_client = TestClient(create_app(stale, secret_key=SECRET), raise_server_exceptions=False)
    assert verifies(stale_client, old, "pay-old")
    r = callback(stale_client, new, "pay-new")
    assert (r.status_code, r.json()["code"]) == (500, "sealing_key_unknown")

    # step 3: the command seals every secret again under the current key, audited, once
    before = {n: v for n, v in sealed_values(db).items()}
    got = run_cli(db, monkeypatch, "keys", "rotate-channel-secrets")
    assert got.exit_code == 0, got.output
    after = sealed_values(db)
    assert {sealed.key_id_of(v) for v in after.values()} == {kid}
    assert after["pay-new"] == before["pay-new"]  # already current: untouched
    assert after["pay-old"] != before["pay-old"]
    again = run_cli(db, monkeypatch, "keys", "rotate-channel-secrets")
    # (Rich wraps at the terminal width: compare words, not line breaks)
    assert again.exit_code == 0 and "nothing to do" in " ".join(again.output.split())
    assert sealed_values(db) == after
    from civicvoucher.audit.models import AuditEntry

    with db.session() as s:
        entries = s.execute(select(AuditEntry.actor, AuditEntry.detail).where(
            AuditEntry.action == "keys.channel_secrets.rotate")).all()
    assert len(entries) == 1 and entries[0][0].startswith("cli:")
    assert entries[0][1] == {"to": kid, "from": {"h1": 2}}
    for secret, name in ((old, "pay-old"), (new, "pay-new"), (aw.channel_secret, "u-channel")):
        assert verifies(aw.client, secret, name), name
    # step 4: h1 seals nothing any more
    status = run_cli(db, monkeypatch, "keys", "status")
    assert status.exit_code == 0 and "h1: 0 channel secrets" in status.output, status.output
    assert run_cli(db, monkeypatch, "audit", "verify").exit_code == 0
    stale_client.close()
    stale.dispose()


# --- migration 0009 ---------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def old_db(request, tmp_path):
    """A database of its own at revision 0008, before secrets were sealed."""
    from civicvoucher.schema import upgrade

    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'old.db'}", None
    else:
        request.getfixturevalue("pg_url")  # skips (or fails) without PostgreSQL
        name = f"cv_test_0009_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url, drop = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", (admin, name)
    db = Database(url)
    upgrade(db.engine, "0008")
    yield db
    db.dispose()
    if drop is not None:
        admin, name = drop
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_migration_scrubs_stored_answers_and_the_first_keyed_start_seals_old_secrets(
        old_db, tmp_path, monkeypatch):
    from civicvoucher.api import idempotency as idem
    from civicvoucher.audit.models import AuditEntry
    from civicvoucher.schema import upgrade

    db = old_db
    plain = "ab" * 32
    token = "cvk_" + "t" * 43
    answers = {
        "token": {"id": 3, "name": "ci", "prefix": token[:12], "token": token, "revoked": False},
        "channel": {"id": 9, "username": "pay-old", "role": "channel", "org_id": None,
                    "merchant_id": None, "member_id": None, "channel_secret": plain},
        "revoke": {"id": 3, "name": "ci", "prefix": token[:12], "token": None, "revoked": True},
        "deposit": {"org_id": 5, "amount_fen": 500, "balance_fen": 1500, "note": "token 票"},
    }
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO api_user (id, username, role, active, created_at) "
                       "VALUES (9, 'pay-old', 'channel', :t, :now)"), {"t": True, "now": T0})
        c.execute(text("INSERT INTO payment_channel (user_id, name, secret, channels, created_at) "
                       "VALUES (9, 'pay-old', :s, 'online', :now)"), {"s": plain, "now": T0})
        for n, (key, doc) in enumerate(answers.items()):
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            c.execute(text(
                "INSERT INTO idempotency_key (user_id, key, request_hash, state, status_code, "
                "content_type, body, created_at, locked_at, expires_at) VALUES (1, :k, :h, "
                "'done', 201, 'application/json', :b, :now, :now, :exp)"),
                {"k": key, "h": f"{n}" * 64, "b": body, "now": T0, "exp": T0 + idem.TTL})

    upgrade(db.engine)  # 0009: no key here
    with db.engine.connect() as c:
        rows = {k: (json.loads(b), w) for k, b, w in c.execute(text(
            "SELECT key, body, withheld FROM idempotency_key"))}
        assert c.execute(text("SELECT unsealed_secret, secret_sealed FROM payment_channel")
                         ).one() == (plain, None)  # the migration cannot seal
    assert rows["token"] == ({**answers["token"], "token": None}, "token")
    assert rows["channel"] == ({**answers["channel"], "channel_secret": None}, "channel_secret")
    assert rows["revoke"] == (answers["revoke"], None)
    assert rows["deposit"] == (answers["deposit"], None)
    with db.session() as s:
        replay = idem.stored_response(s.execute(select(idem.IdempotencyRecord).where(
            idem.IdempotencyRecord.key == "token")).scalar_one())
    assert replay.headers[idem.WITHHELD_HEADER] == "token" and token.encode() not in replay.body

    # the first process with the key seals what is left, audited, once
    monkeypatch.setenv("CIVICVOUCHER_SECRET_KEY", SECRET.decode())
    monkeypatch.setenv(SEALING_FILE_ENV, str(tmp_path / "sealing-keys"))
    (tmp_path / "sealing-keys").write_text("")
    settings = Settings(database_url=db.url, secret_file=tmp_path / "k", secret_from_env=True)
    bind_key(db, settings)
    other = Database(db.url)
    bind_key(other, settings)  # another worker starting: nothing left to seal
    other.dispose()
    dump = database_text(db)
    assert plain not in dump and token not in dump
    with db.session() as s:
        ch = s.execute(select(PaymentChannel)).scalar_one()
        assert ch.unsealed_secret is None and ch.open_secret(db.keyring) == plain
        sealed_by = s.execute(select(AuditEntry.actor, AuditEntry.detail).where(
            AuditEntry.action == "keys.channel_secrets.seal")).all()
    assert sealed_by == [("system", {"sealed": 1, "key_id": "h1"})]
    client = TestClient(create_app(db, secret_key=SECRET), raise_server_exceptions=False)
    assert verifies(client, plain, "pay-old") and not verifies(client, "cd" * 32, "pay-old")
    client.close()


def test_rotation_moves_merchants_account_numbers_too(keyed, settings, monkeypatch):
    """Merchants' bank account numbers (migration 0011) are sealed under the same keyring: the
    rotation seals them again under the new key, bound to the same merchant, audited once;
    ``keys status`` counts them, so a key is not deleted while a number still needs it. The
    old command name does the same."""
    from civicvoucher.audit.models import AuditEntry
    from civicvoucher.db import keyring_of
    from civicvoucher.merchants.models import Merchant
    from civicvoucher.merchants.service import set_bank_details

    aw, db = keyed, keyed.db
    number = "6217000010012345678"
    merchant = aw.merchant_in  # 超市
    with db.session() as s:
        set_bank_details(s, merchant_id=merchant, payee_name="超市有限公司", bank_name="工商银行",
                         account_no=number)
        s.commit()

    def account():
        with db.session() as s:
            return s.get(Merchant, merchant).account_sealed

    assert sealed.key_id_of(account()) == sealed.DERIVED_ID
    kid = add_sealing_key(settings)
    bind_sealing(db, SECRET, settings)
    status = " ".join(run_cli(db, monkeypatch, "keys", "status").output.split())
    assert "h1: 1 channel secret · 1 merchant account number" in status, status

    got = run_cli(db, monkeypatch, "keys", "rotate-channel-secrets")  # the old name
    assert got.exit_code == 0, got.output
    assert "1 merchant account number sealed again" in " ".join(got.output.split())
    moved = account()
    assert sealed.key_id_of(moved) == kid
    with db.session() as s:
        assert s.get(Merchant, merchant).open_account(keyring_of(s)) == number
        assert s.get(Merchant, merchant).account_masked.endswith("5678")
        entries = s.execute(select(AuditEntry.detail).where(
            AuditEntry.action == "keys.merchant_accounts.rotate")).scalars().all()
    assert entries == [{"to": kid, "from": {"h1": 1}}]
    again = run_cli(db, monkeypatch, "keys", "rotate-secrets")
    assert again.exit_code == 0 and "nothing to do" in " ".join(again.output.split())
    assert account() == moved
    status = " ".join(run_cli(db, monkeypatch, "keys", "status").output.split())
    assert "h1: 0 channel secrets · 0 merchant account numbers" in status, status
    assert f"{kid}: 1 channel secret · 1 merchant account number" in status, status
