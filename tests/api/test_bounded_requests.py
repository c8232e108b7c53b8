"""Bounded work before authentication, and no 500 on any malformed input (issue 9, items 2
and 6), on SQLite and PostgreSQL.

A stranger's big body is refused 401 without being received; each route's body is capped
(413 at once by Content-Length, or as soon as a chunked body passes the cap), login and the
channel callback too, before any work; nested, non-UTF-8, non-JSON, NaN, huge-number and
duplicate-key bodies are 4xx problem+json on every mutating route, and no traceback is
logged; a cursor or an integer parameter past the database's range is 400, not "integer out
of range".

The requests that must show what the server *received* are sent straight to the ASGI app
with a ``receive`` that counts the bytes it hands out (``Wire``): the test client reads a
body whole before the app sees a byte, so it could not tell.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import uuid

import pytest
from sqlalchemy import func, select

from civicvoucher.api.app import api_routes, create_app
from civicvoucher.auth.models import RateBucket
from civicvoucher.auth.policy import RULES, Rule, rule_for
from civicvoucher.auth.roles import Role
from civicvoucher.db import Database
from civicvoucher.schema import upgrade

MB = 1024 * 1024
CHUNK = 64 * 1024
PREFIX = "/api/v1"


class Wire:
    """One request sent to the ASGI app in chunks, counting what the app took."""

    def __init__(self, app, method: str, path: str, *, headers: dict[str, str],
                 size: int = 0, body: bytes | None = None, declare: bool = True) -> None:
        self.app, self.method, self.path = app, method, path
        self.body = body if body is not None else b"x" * size
        self.headers = {"accept-language": "en", **{k.lower(): v for k, v in headers.items()}}
        if declare:
            self.headers["content-length"] = str(len(self.body))
        else:
            self.headers["transfer-encoding"] = "chunked"
        self.received = 0
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.answer = b""

    async def _go(self) -> None:
        chunks = [self.body[i:i + CHUNK] for i in range(0, len(self.body), CHUNK)] or [b""]
        sent = 0

        async def receive():
            nonlocal sent
            if sent >= len(chunks):
                return {"type": "http.disconnect"}
            chunk = chunks[sent]
            sent += 1
            self.received += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": sent < len(chunks)}

        async def send(message):
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                self.answer += message.get("body", b"")

        path, _, query = self.path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": self.method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "",
                 "headers": [(k.encode(), v.encode("latin-1")) for k, v in self.headers.items()],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        await self.app(scope, receive, send)

    def run(self) -> Wire:
        asyncio.run(self._go())
        return self

    @property
    def problem(self) -> dict:
        assert self.response_headers.get("content-type", "").startswith(
            "application/problem+json"), (self.status, self.answer[:300])
        return json.loads(self.answer)


def _app(api):
    return api.client.app


def _auth(api, role: Role | None, token: str | None = None) -> dict[str, str]:
    h = {"content-type": "application/json", "idempotency-key": str(uuid.uuid4())}
    tok = token or (api.tokens[role] if role is not None else None)
    if tok:
        h["authorization"] = f"Bearer {tok}"
    return h


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if anything logged an error (a 500 logs its traceback)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


def _buckets(api) -> int:
    with api.db.session() as s:
        return s.execute(select(func.count()).select_from(RateBucket)).scalar()


# --- authenticate first; cap every body -----------------------------------------------------

STRANGER_ROUTES = [("POST", "/redemptions"), ("POST", "/funds/deposits"),
                   ("POST", "/programs"), ("POST", "/members/import"),
                   ("POST", "/redemptions/1/capture")]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
def test_a_stranger_s_big_body_is_refused_401_without_being_read(api, declare, no_tracebacks):
    for method, path in STRANGER_ROUTES:
        w = Wire(_app(api), method, PREFIX + path, size=10 * MB, declare=declare,
                 headers=_auth(api, None, token="junk-token-" + "x" * 40)).run()
        assert (w.status, w.problem["code"]) == (401, "unauthenticated"), (path, w.answer)
        assert w.received == 0, (path, w.received)
        assert w.response_headers.get("connection") == "close"  # and not drained either


def test_a_role_that_may_not_call_the_route_does_not_get_its_body_read(api):
    w = Wire(_app(api), "POST", PREFIX + "/programs", size=10 * MB, declare=False,
             headers=_auth(api, Role.CASHIER)).run()
    assert (w.status, w.problem["code"]) == (403, "role_forbidden")
    assert w.received == 0


def test_a_body_over_the_route_s_cap_is_413_at_once_or_as_soon_as_it_passes(api, no_tracebacks):
    cases = [(Role.CASHIER, "/redemptions", 8 * 1024), (Role.COUNTY_ADMIN, "/orgs", 64 * 1024),
             (Role.CASHIER, "/redemptions/1/capture", 1024)]
    for role, path, cap in cases:
        declared = Wire(_app(api), "POST", PREFIX + path, size=cap + 1,
                        headers=_auth(api, role)).run()
        assert (declared.status, declared.problem["code"]) == (413, "request_too_large"), path
        assert declared.received == 0
        chunked = Wire(_app(api), "POST", PREFIX + path, size=10 * MB, declare=False,
                       headers=_auth(api, role)).run()
        assert (chunked.status, chunked.problem["code"]) == (413, "request_too_large"), path
        assert chunked.received <= cap + CHUNK, (path, chunked.received)
        assert chunked.response_headers.get("connection") == "close"
        assert chunked.problem["field"] == "body"


def test_a_body_within_a_large_cap_is_read(api):
    """An issuance names up to 100,000 members: its cap (2 MB) lets the longest list in."""
    ids = ", ".join(["2147483647"] * 100_000)
    body = f'{{"union_id": 2147483647, "program": "p", "member_ids": [{ids}]}}'.encode()
    w = Wire(_app(api), "POST", PREFIX + "/issuances", body=body, declare=False,
             headers=_auth(api, Role.PROVINCE_ADMIN)).run()
    assert w.received == len(body) > 1 * MB
    assert w.status != 413 and w.status < 500, w.answer[:300]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
def test_login_and_the_callback_are_capped_before_any_work(api, declare, no_tracebacks):
    before = _buckets(api)
    for path in ("/auth/login", "/channels/callbacks"):
        w = Wire(_app(api), "POST", PREFIX + path, size=50 * MB if declare else 10 * MB,
                 declare=declare, headers={"content-type": "application/json",
                                           "x-cv-channel": "u-channel", "x-cv-timestamp": "1",
                                           "x-cv-signature": "0" * 64}).run()
        assert (w.status, w.problem["code"]) == (413, "request_too_large"), (path, w.answer)
        assert w.received <= (0 if declare else 8 * 1024 + CHUNK), (path, w.received)
    assert _buckets(api) == before  # no rate-limit bucket touched: nothing else was done


# --- malformed bodies: 4xx problem+json, never 500 --------------------------------------------

def _path_of(rc) -> str:
    return re.sub(r"\{[^}]+_id\}", "1", rc.path).replace("{program}", "p")


def _caller(rule) -> Role | None:
    return sorted(rule.roles, key=str)[0] if isinstance(rule, Rule) else None


def _mutating(api):
    for rc in api_routes(_app(api)):
        for method in sorted(rc.methods or ()):
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                yield method, rc


def test_nested_json_is_400_on_every_mutating_route(api, no_tracebacks):
    seen, wrong = 0, []
    for method, rc in _mutating(api):
        rule = rule_for(rc.name)
        headers = {**_auth(api, _caller(rule)), "x-cv-channel": "u-channel",
                   "x-cv-timestamp": "1", "x-cv-signature": "0" * 64}
        upload = rc.name.startswith("import_")
        for depth in (50_000, 33):  # the attack's shape; just past the limit
            body = b"[" * depth + b"]" * depth
            w = Wire(_app(api), method, _path_of(rc), body=body, declare=depth < 1000,
                     headers=headers).run()
            got = (w.status, json.loads(w.answer).get("code"))
            if depth == 33:
                want = [(400, "invalid_input" if upload else "json_too_deep")]
            else:  # over a small route's cap first, else too deep
                want = [(400, "invalid_input" if upload else "json_too_deep"),
                        (413, "request_too_large")]
            if got not in want or w.problem.get("field") != "body":
                wrong.append(f"{rc.name} depth {depth}: {got}")
        seen += 1
    assert seen >= 25
    assert not wrong, wrong


def _redeem(api, code: str, amount) -> dict:
    return {"code": code, "merchant_id": api.merchant_in, "order_amount_fen": amount}


def _malformed(api) -> list[tuple[str, bytes, int, str]]:
    code = api.codes_in[0]
    ok = json.dumps(_redeem(api, code, 35000))
    return [
        ("not UTF-8", b'{"code": "\xff\xfe", "order_amount_fen": 1}', 400, "invalid_json"),
        ("UTF-16", ok.encode("utf-16"), 400, "invalid_json"),
        ("a BOM", b"\xef\xbb\xbf" + ok.encode(), 400, "invalid_json"),
        ("not JSON", b'{"code": ', 400, "invalid_json"),
        ("trailing bytes", ok.encode() + b" x", 400, "invalid_json"),
        ("an array", b"[" + ok.encode() + b"]", 422, "invalid_input"),
        ("a string", b'"hello"', 422, "invalid_input"),
        ("1e999999", ok.replace("35000", "1e999999").encode(), 400, "invalid_json"),
        ("10^400", ok.replace("35000", "1" + "0" * 400).encode(), 422, "invalid_input"),
        ("-10^400", ok.replace("35000", "-1" + "0" * 400).encode(), 422, "invalid_input"),
        ("5000 digits", ok.replace("35000", "9" * 5000).encode(), 400, "invalid_json"),
        ("NaN", ok.replace("35000", "NaN").encode(), 400, "invalid_json"),
        ("Infinity", ok.replace("35000", "Infinity").encode(), 400, "invalid_json"),
        ("-Infinity", ok.replace("35000", "-Infinity").encode(), 400, "invalid_json"),
        ("a duplicate key", ok[:-1].encode() + b', "code": "X"}', 400, "invalid_json"),
        ("a lone surrogate", ok.replace(code, "\\ud800").encode(), 400, "invalid_json"),
        ("non-ASCII digits", ok.replace("35000", '"\u0661\u0662\u0663"').encode(), 422,
         "invalid_input"),
    ]


def test_malformed_bodies_are_4xx_problems_never_500(api, no_tracebacks):
    wrong = []
    for what, raw, status, code in _malformed(api):
        for role, path in ((Role.CASHIER, "/redemptions"), (None, "/auth/login"),
                           (Role.UNION_ADMIN, "/funds/deposits")):
            body = raw if path == "/redemptions" else raw.replace(b'"code"', b'"username"')
            r = api.call("POST", path, role, content=body,
                         headers={"Content-Type": "application/json"})
            assert r.headers["content-type"].startswith("application/problem+json"), what
            got = (r.status_code, r.json()["code"], r.json().get("field"))
            if path == "/redemptions":
                field = "body" if status == 400 else got[2]
                if got != (status, code, field):
                    wrong.append(f"{what}: {got}")
            elif r.status_code >= 500:
                wrong.append(f"{what} at {path}: {got}")
    assert not wrong, wrong


def test_a_huge_number_for_an_amount_is_named(api):
    r = api.call("POST", "/redemptions", Role.CASHIER,
                 content=json.dumps(_redeem(api, api.codes_in[0], 35000))
                 .replace("35000", "1" + "0" * 400).encode(),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body.order_amount_fen", r.text


def test_a_well_formed_body_still_works_and_replays(api):
    key = str(uuid.uuid4())
    body = _redeem(api, api.codes_in[0], 35000)
    first = api.call("POST", "/redemptions", Role.CASHIER, key=key, json=body)
    assert first.status_code in (200, 201), first.text
    again = api.call("POST", "/redemptions", Role.CASHIER, key=key,
                     content=json.dumps(body, indent=2).encode(),
                     headers={"Content-Type": "application/json"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()


# --- cursors and integer parameters --------------------------------------------------------

def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_cursor_past_the_id_range_is_400_naming_the_cursor(api, no_tracebacks):
    for raw in ("9" * 40, str(2**31), str(2**63), "\u0661\u0662\u0663", "\u00b2\u00b3", " 7",
                "1_0", "-1"):
        r = api.call("GET", f"/orgs?cursor={_cursor(raw)}", Role.PROVINCE_ADMIN)
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            400, "invalid_cursor", "cursor"), (raw, r.text)
    first = api.call("GET", "/orgs?limit=1", Role.PROVINCE_ADMIN).json()
    nxt = api.call("GET", f"/orgs?limit=1&cursor={first['next_cursor']}", Role.PROVINCE_ADMIN)
    assert nxt.status_code == 200 and nxt.json()["items"][0]["id"] > first["items"][0]["id"]
    # a redemption id is a bigint: a cursor past 2^31 is a cursor there, past 2^63 not
    r = api.call("GET", f"/redemptions?cursor={_cursor(str(2**40))}", Role.PROVINCE_ADMIN)
    assert (r.status_code, r.json()["items"]) == (200, []), r.text
    r = api.call("GET", f"/redemptions?cursor={_cursor(str(2**63))}", Role.PROVINCE_ADMIN)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_cursor"), r.text


def test_a_refusal_on_a_10_kb_path_is_audited_not_a_500(api, no_tracebacks):
    """A role refused on a huge path is audited with the path cut to the column's length."""
    for ref in ("1" + "0" * 400, "x" * 10_240):
        r = api.call("POST", f"/redemptions/{ref}/capture", Role.PROVINCE_ADMIN)
        assert (r.status_code, r.json()["code"]) == (403, "role_forbidden"), r.text[:300]


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _integers(doc: dict, schema: dict, where: str, seen: set) -> list[tuple[str, dict]]:
    """Every integer schema inside ``schema``, with where it is."""
    if "$ref" in schema:
        name = schema["$ref"]
        if name in seen:
            return []
        seen = seen | {name}
    schema = _resolve(doc, schema)
    found = [(where, schema)] if schema.get("type") == "integer" else []
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found += _integers(doc, sub, where, seen)
    for name, sub in schema.get("properties", {}).items():
        found += _integers(doc, sub, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        found += _integers(doc, schema["items"], f"{where}[]", seen)
    return found


@pytest.fixture(scope="module")
def doc():
    """The OpenAPI document (the same on every database)."""
    db = Database("sqlite://")
    upgrade(db.engine)
    yield create_app(db, secret_key=b"k" * 32).openapi()
    db.dispose()


def test_every_integer_a_client_sends_is_bounded(doc):
    """Every integer path, query and header parameter and every integer field of a request
    body has a minimum and a maximum that the database can hold, so an id of 10^20 is a 422
    naming it, not "integer out of range"."""
    checked, unbounded = 0, []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            found = []
            for p in op.get("parameters", []):
                found += _integers(doc, p.get("schema", {}), f"{p['in']}:{p['name']}", set())
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                found += _integers(doc, media.get("schema", {}), "body", set())
            for where, s in found:
                checked += 1
                top = s.get("maximum", s.get("exclusiveMaximum"))
                low = s.get("minimum", s.get("exclusiveMinimum"))
                if top is None or low is None or top > 2**63 - 1 or low < -(2**63):
                    unbounded.append(f"{method.upper()} {path} {where}")
    assert checked >= 20
    assert not unbounded, unbounded


# --- every route's largest legal body fits its cap -------------------------------------------

DATE_TIME = "2020-07-11T00:00:00+08:00"


def _largest(doc: dict, schema: dict, seen: frozenset = frozenset()):
    """The longest legal value of ``schema`` as a Python client sends it (json.dumps escapes
    every non-ASCII character as \\uXXXX): strings at their maximum length, in Chinese where
    the pattern allows it, lists at their maximum length (20 items when unbounded, as a
    program's products are), numbers at their maximum."""
    ref = schema.get("$ref")
    if ref in seen:
        return None
    schema = _resolve(doc, schema)
    seen = seen | {ref} if ref else seen
    options = [o for o in schema.get("anyOf", []) + schema.get("oneOf", [])
               if o.get("type") != "null"]
    if options:
        values = [_largest(doc, o, seen) for o in options]
        return max(values, key=lambda v: len(json.dumps(v)))
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)))
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {k: _largest(doc, v, seen) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_largest(doc, schema.get("items", {}), seen)] * schema.get("maxItems", 20)
    if kind == "integer":
        return schema.get("maximum", 2**31 - 1)
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") == "date-time":
            return DATE_TIME
        n = schema.get("maxLength", 200)
        pattern = schema.get("pattern", "")
        return ("中" if not pattern or "^\\x00-\\x1f" in pattern else "9") * n
    return None


def test_every_route_s_largest_legal_body_fits_its_cap(doc):
    from civicvoucher.api import bodies

    checked = 0
    for item in doc["paths"].values():
        for op in item.values():
            media = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if not media:
                continue
            body = json.dumps(_largest(doc, media["schema"]), indent=1).encode()
            assert len(body) <= op["x-max-body-bytes"], (op["operationId"], len(body))
            checked += 1
    assert checked >= 15
    assert set(bodies.CAPS) <= set(RULES) | {"login", "channel_callback"}


# --- the depth scanner alone -----------------------------------------------------------------

def test_the_depth_scanner_counts_brackets_outside_strings_only():
    from civicvoucher.api import bodies

    deep = b"[" * 33 + b"]" * 33
    assert bodies.too_deep(deep) and not bodies.too_deep(b"[" * 32 + b"]" * 32)
    assert not bodies.too_deep(b'{"a": "' + b"[" * 1000 + b'"}')
    assert not bodies.too_deep(b'{"a": "\\"' + b"{" * 1000 + b'"}')  # an escaped quote
    assert bodies.too_deep(b'{"a": "\\\\", "b": ' + b"[" * 40 + b"]" * 40 + b"}")
    assert not bodies.too_deep(b'"' + b'\\"' * 100_000)  # never closed: one string
    assert not bodies.too_deep(b"[]" * 100_000)  # wide, not deep
    assert bodies.too_deep(b"\xff" + b"{" * 40)  # not JSON at all: still ends
