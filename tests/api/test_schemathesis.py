"""Schemathesis against the app on the small API world: no 5xx, every response matches the
OpenAPI document (status, content type, schema), invalid input is refused with a 4xx
problem+json. Bounded: a few positive and a few negative examples per operation, as the
province administrator (who may call nearly everything), a fresh Idempotency-Key per call.

``positive_data_acceptance`` is left out on purpose: schema-valid requests are often refused
by the domain (a county code with no such federation, a voucher already spent), with a
documented 4xx problem. (Schemathesis' lazy pytest fixture loader does not work with this
pytest, so the operations are driven through its Python API with Hypothesis directly.)
"""

from __future__ import annotations

import uuid

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from civicvoucher.auth.roles import Role

EXAMPLES = 3


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
                    ctype = response.headers.get("content-type", [""])
                    ctype = ctype[0] if isinstance(ctype, list) else ctype
                    assert ctype.startswith("application/problem+json"), response.text

            try:
                check()
            except Unsatisfiable:  # e.g. no invalid request exists for GET /health
                continue
            except Exception as exc:
                failures.append(f"{op.label} ({mode.value}): {str(exc)[:1500]}")
    assert operations >= 40
    assert not failures, "\n\n".join(failures)
