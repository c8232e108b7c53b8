"""A console form's attempt key: made when the form is rendered, claimed in the API's own key
table (``api.idempotency``) under ``console:<kind>:<key>`` with a fingerprint of what the form
asked, so a double submit or a retry replays the first answer and a different request under
the same key is refused, exactly as the API's Idempotency-Key is.

``claim`` checks the key and claims it; ``finish`` stores the answer (or gives the key back when
there is none: nothing was done) and unlocks; ``once`` is both around one piece of work whose
answer is a JSON-ready dict."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from starlette.responses import JSONResponse

from civicvoucher.api import idempotency as idem
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_

KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")


def check_key(key: str | None) -> str:
    if not KEY_RE.fullmatch(key or ""):
        raise ValidationError(N_("the page's attempt key is missing: reload the page"),
                              field="idempotency_key", code="idempotency_key_missing")
    return key


def claim(c, kind: str, key: str | None, body: bytes) -> idem.Claim:
    check_key(key)
    rh = idem.request_fingerprint("POST", c.request.url.path, "", body)
    return idem.claim(c.db, user_id=c.principal.user_id, key=f"console:{kind}:{key}", rh=rh)


def finish(c, claim_: idem.Claim, answer: dict | None) -> None:
    try:
        if answer is None:
            idem.release(c.db, claim_)
        else:
            idem.complete(c.db, claim_, JSONResponse(answer))
    finally:
        claim_.unlock()


def once(c, kind: str, key: str | None, body: bytes, work: Callable[[], dict]) -> dict:
    """Run ``work()`` once per attempt key: a replay answers the first run's dict; a failure
    gives the key back."""
    got = claim(c, kind, key, body)
    if got.replay is not None:
        got.unlock()
        return json.loads(got.replay.body)
    answer = None
    try:
        answer = work()
        return answer
    finally:
        finish(c, got, answer)
