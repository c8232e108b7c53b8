"""No secret at rest in clear (issue 9, item 1): after API tokens and channel users are made
through the API (and their creations replayed), no token and no channel secret appears in any
text or binary column of any table; a replay of a secret-bearing answer withholds the secret
and says so; database errors reach the log without bound parameters or row values."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import inspect, select

from civicvoucher.auth.roles import Role

WITHHELD_HEADER = "X-CV-Secret-Withheld"  # api.idempotency.WITHHELD_HEADER


def database_text(db) -> str:
    """Every text and binary value of every table the database has (not only the models'),
    as one string: what an attacker with a copy of the database can read."""
    out: list[str] = []
    with db.engine.connect() as c:
        for table in inspect(db.engine).get_table_names():
            for row in c.exec_driver_sql(f'SELECT * FROM "{table}"'):
                for v in row:
                    if isinstance(v, bytes | bytearray | memoryview):
                        out.append(bytes(v).decode("latin-1"))
                    elif isinstance(v, str):
                        out.append(v)
    return "\n".join(out)


def _make_secrets(api) -> tuple[list[str], list[tuple[str, str]]]:
    """Tokens and channel secrets made through the API, each creation replayed once."""
    made: list[str] = []
    replays: list[tuple[str, str]] = []
    for n in range(3):
        key = str(uuid.uuid4())
        r = api.call("POST", "/auth/tokens", Role.COUNTY_ADMIN, key=key,
                     json={"name": f"integration {n}"})
        assert r.status_code == 201, r.text
        made.append(r.json()["token"])
        again = api.call("POST", "/auth/tokens", Role.COUNTY_ADMIN, key=key,
                         json={"name": f"integration {n}"})
        replays.append(("token", again.headers.get(WITHHELD_HEADER, "")))
    for n in range(2):
        key = str(uuid.uuid4())
        body = {"username": f"paynet-{n}", "role": "channel", "channels": ["online"]}
        r = api.call("POST", "/auth/users", Role.PROVINCE_ADMIN, key=key, json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["channel_secret"])
        again = api.call("POST", "/auth/users", Role.PROVINCE_ADMIN, key=key, json=body)
        replays.append(("channel_secret", again.headers.get(WITHHELD_HEADER, "")))
    assert all(made) and len(set(made)) == len(made)
    return made, replays


def test_no_token_and_no_channel_secret_anywhere_in_the_database(api):
    made, replays = _make_secrets(api)
    known = made + list(api.tokens.values()) + [api.channel_secret]  # the world's own too
    dump = database_text(api.db)
    # the dump does read where the secrets were made: usernames, token prefixes, answers
    assert "paynet-1" in dump and all(t[:12] in dump for t in made[:3])
    assert '"prefix":"' + made[0][:12] in dump  # the stored answer of the token's creation
    found = [s[:8] + "…" for s in known if s in dump]
    assert found == [], f"secrets in the database in clear: {found}"
    assert replays == [("token", "token")] * 3 + [("channel_secret", "channel_secret")] * 2


def test_a_replayed_creation_withholds_the_secret_and_says_so(api):
    key = str(uuid.uuid4())
    first = api.call("POST", "/auth/tokens", Role.UNION_ADMIN, key=key, json={"name": "ci"})
    assert first.status_code == 201 and first.json()["token"].startswith("cvk_")
    assert WITHHELD_HEADER not in first.headers
    again = api.call("POST", "/auth/tokens", Role.UNION_ADMIN, key=key, json={"name": "ci"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers[WITHHELD_HEADER] == "token"
    assert again.json() == {**first.json(), "token": None}  # all else as the first answer
    # the first answer's token is the one that works; the replay made no second one
    me = api.call("GET", "/auth/me", token=first.json()["token"])
    assert me.status_code == 200
    with api.db.session() as s:
        from civicvoucher.auth.models import ApiToken

        assert s.execute(select(ApiToken.id).where(ApiToken.name == "ci")).all() == \
            [(first.json()["id"],)]

    key = str(uuid.uuid4())
    body = {"username": "pos-2", "role": "channel", "channels": ["offline"]}
    made = api.call("POST", "/auth/users", Role.PROVINCE_ADMIN, key=key, json=body)
    replay = api.call("POST", "/auth/users", Role.PROVINCE_ADMIN, key=key, json=body)
    assert made.json()["channel_secret"] and replay.json()["channel_secret"] is None
    assert replay.headers[WITHHELD_HEADER] == "channel_secret"
    # a user without a secret replays as it was, with no such header
    key = str(uuid.uuid4())
    body = {"username": "clerk-2", "role": "cashier", "merchant_id": api.merchant_in}
    plain = api.call("POST", "/auth/users", Role.COUNTY_ADMIN, key=key, json=body)
    again = api.call("POST", "/auth/users", Role.COUNTY_ADMIN, key=key, json=body)
    assert plain.status_code == 201 and again.content == plain.content
    assert WITHHELD_HEADER not in again.headers


def test_a_secret_name_is_shown_once_in_every_response_model():
    """Withholding goes by field name (``complete`` sees the rendered body, not its model):
    a name marked shown-once in one model must be marked in every model that has it."""
    from pydantic import BaseModel

    from civicvoucher.api import schemas
    from civicvoucher.api.idempotency import shown_once_fields
    from civicvoucher.core.sealed import ShownOnce

    names = shown_once_fields()
    assert {"token", "channel_secret"} <= names
    unmarked = [f"{m.__name__}.{n}" for m in vars(schemas).values()
                if isinstance(m, type) and issubclass(m, BaseModel)
                for n, f in m.model_fields.items()
                if n in names and not any(isinstance(x, ShownOnce) for x in f.metadata)]
    assert unmarked == []


def test_the_schema_says_which_fields_are_shown_once(api):
    doc = api.client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert doc["ApiTokenOut"]["properties"]["token"]["x-shown-once"] is True
    assert doc["UserOut"]["properties"]["channel_secret"]["x-shown-once"] is True
    assert "x-shown-once" not in doc["ApiTokenOut"]["properties"]["prefix"]


def _request():
    from starlette.requests import Request

    return Request({"type": "http", "method": "POST", "path": "/api/v1/auth/tokens",
                    "headers": [], "query_string": b"", "app": None})


def test_database_errors_reach_the_log_without_parameters_or_row_values(db, caplog):
    """An unexpected database error is logged by ``problems.problem_for`` with its traceback
    (which prints the driver's error too): neither a bound parameter nor a value PostgreSQL
    echoes back (DETAIL: "Key (token_hash)=(...)", "Failing row contains (...)") is in it."""
    from civicvoucher.api.problems import problem_for
    from civicvoucher.auth.models import ApiToken, ApiUser
    from civicvoucher.core import clock

    secret = "cvk_" + uuid.uuid4().hex
    with db.session() as s:
        user = ApiUser(username="alice", role="auditor", active=True, created_at=clock.now())
        s.add(user)
        s.flush()
        s.add(ApiToken(user_id=user.id, kind="api", token_hash=secret[:64], prefix="cvk_",
                       created_at=clock.now()))
        uid = user.id

    def duplicate(s):  # a unique violation: PostgreSQL names the value in DETAIL
        s.add(ApiToken(user_id=uid, kind="api", token_hash=secret[:64], prefix=secret[:12],
                       name=secret, created_at=clock.now()))
        s.flush()

    def not_null(s):  # a NOT NULL violation: PostgreSQL echoes the whole row
        s.add(ApiToken(user_id=uid, kind=None, token_hash=secret + "x", prefix="p",
                       name=secret, created_at=clock.now()))
        s.flush()

    caplog.set_level(logging.INFO)
    for fn in (duplicate, not_null):
        try:
            with db.session() as s:
                fn(s)
        except Exception as exc:
            response = problem_for(_request(), exc)
            assert response.status_code == 500
            assert secret[:64].encode() not in response.body
        else:
            raise AssertionError(f"{fn.__name__} did not fail")
    text = caplog.text
    assert "IntegrityError" in text and "Traceback" in text  # the error was logged, in full
    assert secret[:20] not in text, text
    if db.dialect == "postgresql":
        from civicvoucher.db import DETAIL_WITHHELD

        assert "Failing row" not in text and DETAIL_WITHHELD in text


def test_a_token_name_as_long_as_the_api_allows_is_stored(api):
    """``ApiTokenIn.name`` allows 200 characters; the column held 100, so on PostgreSQL a
    longer name was a 500 whose log carried the INSERT's parameters (the token's hash among
    them). Migration 0009 makes the column as long as the API allows."""
    name = "名" * 200
    r = api.call("POST", "/auth/tokens", Role.UNION_ADMIN, json={"name": name})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name
