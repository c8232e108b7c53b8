"""Schemathesis against the app on the small API world: no 5xx, every response matches the
OpenAPI document (status, content type, schema), invalid input is refused with a 4xx
problem+json. Bounded: a few positive and a few negative examples per operation, as the
province administrator (who may call nearly everything), a fresh Idempotency-Key per call.

Then hostile shapes (issue 9): starting from one valid request per operation, every path,
query and header parameter and every top-level field of a JSON body in turn gets a huge
integer (10^400, -10^400, 2^63, a page cursor holding 10^40 - 1), non-ASCII digits (``²³``,
``١٢٣``) and a 10 KB string, and so do the headers every request carries (Authorization,
Accept-Language, X-Request-Id) on a few routes of each kind. Each answer is below 500,
documented, and a problem+json when it is an error. About 1,000 requests per database.

``positive_data_acceptance`` is left out on purpose: schema-valid requests are often refused
by the domain (a county code with no such federation, a voucher already spent), with a
documented 4xx problem. (Schemathesis' lazy pytest fixture loader does not work with this
pytest, so the operations are driven through its Python API with Hypothesis directly.)
"""

from __future__ import annotations

import base64
import uuid

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.roles import Role
from civicvoucher.auth.tokens import issue_token

EXAMPLES = 3
HUGE = 10**400
# as they travel in a path, a query string or a header; the last is shaped like a page
# cursor (base64url digits) holding 10^40 - 1
HOSTILE_TEXT = [str(HUGE), str(-HUGE), str(2**63), "²³", "١٢٣", "x" * 10_240,
                base64.urlsafe_b64encode(b"9" * 40).decode().rstrip("=")]
# as JSON values in a body
HOSTILE_JSON = [HUGE, -HUGE, 2**63, "²³", "١٢٣", "x" * 10_240]
# the headers every request may carry, outside the document's parameters; the route class
# reads them the same way for every route, so a few routes of each kind stand for all
COMMON_HEADERS = ["Authorization", "Accept-Language", "X-Request-Id"]
COMMON_HEADER_ROUTES = {"health", "login", "whoami", "list_orgs", "create_deposit",
                        "create_redemption", "capture_redemption", "import_members_upload",
                        "channel_callback"}
# 5xx found by the hostile pass in code this test's author does not own, reported with their
# reproduction to be fixed there. An entry that stops failing fails the test: remove it then.
KNOWN_ELSEWHERE: dict[str, str] = {}  # 5xx found in code outside the API door, fixed there
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _content_type(response) -> str:
    ctype = response.headers.get("content-type", [""])
    return ctype[0] if isinstance(ctype, list) else ctype


def test_api_conforms_to_its_schema(api):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.client.app)
    token = api.tokens[Role.PROVINCE_ADMIN]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                headers = {"Authorization": f"Bearer {token}"}
                if case.method.upper() != "GET":
                    headers["Idempotency-Key"] = str(uuid.uuid4())
                response = case.call_and_validate(headers=headers,
                                                   excluded_checks=[positive_data_acceptance])
                if response.status_code >= 400:
                    assert _content_type(response).startswith("application/problem+json"), \
                        response.text

            try:
                check()
            except Unsatisfiable:  # e.g. no invalid request exists for GET /health
                continue
            except Exception as exc:
                failures.append(f"{op.label} ({mode.value}): {str(exc)[:1500]}")
    assert operations >= 40
    assert not failures, "\n\n".join(failures)


# --- hostile shapes ----------------------------------------------------------------------------

def _wire(value: str) -> str:
    """A header value as the transport (requests) sends it, Latin-1: ``²³`` arrives as
    ``²³``; what Latin-1 cannot carry (``١٢٣``) travels as its UTF-8 bytes."""
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8").decode("latin-1")


def _body_fields(doc: dict, op_doc: dict) -> list[str]:
    media = (op_doc.get("requestBody") or {}).get("content", {}).get("application/json")
    if not media:
        return []
    schema = media.get("schema", {})
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return list(schema.get("properties", {}))


def _mutations(doc: dict, op) -> list[tuple[str, str, str, object]]:
    """(what is changed, where, name, hostile value) for each hostile value in each slot."""
    op_doc = doc["paths"][op.path][op.method.lower()]
    out = []
    for p in op_doc.get("parameters", []):
        where = {"path": "path_parameters", "query": "query", "header": "headers"}[p["in"]]
        for v in HOSTILE_TEXT:
            value = _wire(v) if where == "headers" else v
            out.append((f"{p['in']} {p['name']}={v[:12]}", where, p["name"], value))
    for name in _body_fields(doc, op_doc):
        for v in HOSTILE_JSON:
            out.append((f"body.{name}={str(v)[:12]}", "body", name, v))
    for name in COMMON_HEADERS if op_doc["operationId"] in COMMON_HEADER_ROUTES else ():
        for v in ("x" * 10_240, "²³", "١٢٣"):
            out.append((f"header {name}={v[:12]}", "headers", name, _wire(v)))
    return out


def _fresh_token(api) -> str:
    with api.db.session() as s:
        uid = s.execute(select(ApiUser.id).where(
            ApiUser.username == f"u-{Role.PROVINCE_ADMIN}")).scalar_one()
        return issue_token(s, user_id=uid, kind="api", ttl=None)[0]


def _first_valid_case(op):
    """One schema-valid request for ``op``, the same on every run."""
    found = []

    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=1, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def first(case):
        found.append(case)

    first()
    return found[0]


def test_hostile_values_in_every_slot_are_never_a_5xx(api):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.client.app)
    doc = api.client.app.openapi()
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        base = _first_valid_case(op)
        token = _fresh_token(api)  # the revoke and logout calls revoke the one before
        for what, where, name, value in _mutations(doc, op):
            parts = {"path_parameters": dict(base.path_parameters), "query": dict(base.query),
                     "headers": {k: v for k, v in dict(base.headers).items()
                                 if k.lower() not in ("authorization", "idempotency-key")}}
            # sent as the call's own headers: those win over what schemathesis sets
            sent_headers = {"Authorization": f"Bearer {token}"}
            if op.method.upper() != "GET":
                sent_headers["Idempotency-Key"] = str(uuid.uuid4())
            body = base.body
            if where == "body":
                if not isinstance(body, dict):
                    continue
                body = {**body, name: value}
            elif where == "headers" and name in ("Authorization", "Idempotency-Key"):
                sent_headers[name] = value
            else:
                parts[where][name] = value
            case = op.Case(**parts, body=body, media_type=base.media_type)
            try:
                response = case.call(headers=sent_headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=CHECKS)
                assert response.status_code < 500, response.text[:300]
                if response.status_code >= 400:
                    assert _content_type(response).startswith("application/problem+json"), \
                        response.text[:300]
            except (Exception, FailureGroup) as exc:  # a FailureGroup is a BaseException
                failures.append(f"{op.label} {what}: {str(exc)[:600]}")
    sent = sum(statuses.values())
    known = [f for f in failures if f.split(":", 1)[0] in KNOWN_ELSEWHERE]
    failures = [f for f in failures if f not in known]
    fixed = set(KNOWN_ELSEWHERE) - {f.split(":", 1)[0] for f in known}
    assert not fixed, f"fixed now, remove from KNOWN_ELSEWHERE: {sorted(fixed)}"
    assert sent >= 900
    # most requests get past authentication: the hostile value is what is judged
    assert statuses.get(401, 0) < sent / 4, statuses
    assert not failures, f"{len(failures)} of {sent}:\n" + "\n\n".join(failures[:30])
