"""The route class every API route uses: authenticate, check the route's rule, read the body
within the route's cap and check it (``api.bodies``), claim the Idempotency-Key (and hold its
lock while running, see ``api.idempotency``), run, turn any error into problem+json (503
``database_unavailable`` when the database cannot be reached, also while claiming,
completing or releasing the key), store the answer for replays.

The order is the defence: nothing reads a body before its caller is known (token, then role),
so a stranger's 50 MB body costs one token lookup and is never received; a public route
(login, the channel callbacks) reads at most its small cap. A response sent while the body is
still unread closes the connection, so the server does not drain it either.

Doing this in the route class (not per route) is what makes "a route without a rule",
"a mutating call without a key" and "a body without a cap" impossible to forget.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from civicvoucher.api import bodies
from civicvoucher.api import idempotency as idem
from civicvoucher.api.problems import problem_for
from civicvoucher.api.state import AppState
from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth import tokens
from civicvoucher.auth.errors import IdempotencyInFlight, RoleForbidden, Unauthenticated
from civicvoucher.auth.policy import Public, Rule, rule_for
from civicvoucher.auth.scope import Principal
from civicvoucher.core import ids
from civicvoucher.errors import Forbidden
from civicvoucher.i18n import N_, Term, msg

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
log = logging.getLogger(__name__)


def bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(N_("send Authorization: Bearer <token>"))
    return token.strip()


def needs_key(rule: Rule, methods: set[str]) -> bool:
    return rule.idempotent_key if rule.idempotent_key is not None else bool(methods & MUTATING)


class CVRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        inner = super().get_route_handler()
        name, methods = self.name, set(self.methods or ())
        rule = rule_for(name)
        if rule is None:
            raise RuntimeError(f"route {name} has no rule in civicvoucher.auth.policy")
        kind = bodies.body_kind(self)
        # an upload's body is read here only to fingerprint its key; FastAPI streams it
        read_here = kind != bodies.FORM or (isinstance(rule, Rule) and needs_key(rule, methods))

        async def handler(request: Request) -> Response:
            rid = request.headers.get("x-request-id", "")
            request.state.request_id = rid if 0 < len(rid) <= 64 and rid.isascii() else ids.new_id()
            st: AppState = request.app.state.cv
            request.state.principal = None
            claim: idem.Claim | None = None
            counted: bodies.CountedReceive | None = None
            try:
                key = None
                if isinstance(rule, Rule):
                    token = bearer(request)
                    if needs_key(rule, methods):
                        key = idem.check_key(request.headers.get(idem.HEADER))
                    principal = await run_in_threadpool(_prepare, st, token, rule)
                    request.state.principal = principal
                # only now, the caller known: the body, within the route's cap
                request, counted = bodies.capped(request, bodies.cap_for(name, kind))
                body = await bodies.read_body(request, kind) if read_here else b""
                if key is not None:
                    rh = idem.request_fingerprint(request.method, request.url.path,
                                                  request.url.query, body)
                    claim = await run_in_threadpool(
                        idem.claim, st.db, user_id=request.state.principal.user_id, key=key,
                        rh=rh)
                    if claim.replay is not None:
                        claim.replay.headers["X-Request-Id"] = request.state.request_id
                        return claim.replay
                    if claim.record_id is None:  # never run a mutating call without its key
                        raise IdempotencyInFlight(N_("a request with this Idempotency-Key "
                                                     "is still being processed; retry "
                                                     "shortly"), retry_after=1)
                    request.state.idempotency_key = key
                try:
                    response = await inner(request)
                except Exception as exc:
                    response = problem_for(request, exc)
                    if isinstance(exc, Forbidden) and request.state.principal is not None:
                        await run_in_threadpool(_audit_refusal, st, request, exc)
                if claim is not None and claim.record_id is not None:
                    if os.environ.get(TEST_HOLD_ENV):
                        await run_in_threadpool(hold_for_test, request, "after")
                    await run_in_threadpool(idem.complete, st.db, claim, response)
            except Exception as exc:
                if claim is not None and claim.record_id is not None:
                    await run_in_threadpool(_release, st, claim)
                if isinstance(exc, RoleForbidden):
                    try:
                        await run_in_threadpool(_audit_refusal, st, request, exc)
                    except Exception as audit_exc:  # the refusal must be audited: say why not
                        exc = audit_exc
                response = problem_for(request, exc)
            finally:
                if claim is not None and claim.lock is not None:
                    with anyio.CancelScope(shield=True):  # the key's lock is never left behind
                        await run_in_threadpool(claim.unlock)
            if bodies.has_body(request) and (counted is None or not counted.complete):
                response.headers["Connection"] = "close"  # the rest is not read, nor drained
            response.headers["X-Request-Id"] = request.state.request_id
            return response

        return handler


def _release(st: AppState, claim: idem.Claim) -> None:
    """Give the key back after a failure; if even that fails (the database is down), the row
    stays in progress with no lock holder, and the retry takes it over."""
    try:
        idem.release(st.db, claim)
    except Exception as exc:
        log.warning("could not release idempotency key %s: %s", claim.record_id,
                    exc.__class__.__name__)


TEST_HOLD_ENV = "CIVICVOUCHER_TEST_HOLD_DIR"
TEST_HOLD_HEADER = "x-civicvoucher-test-hold"


def hold_for_test(request: Request, stage: str) -> None:
    """A test hook, inert unless the server runs with ``CIVICVOUCHER_TEST_HOLD_DIR`` set: a
    request sent with ``X-Civicvoucher-Test-Hold: <stage>`` stops at that stage (``in_tx``:
    inside the route's transaction, at its audit entry; ``after``: its effect committed,
    its answer not yet stored), writes ``<dir>/<stage>.reached`` and waits (at most 120 s)
    for ``<dir>/<stage>.go``. Tests kill the server or cut the database there."""
    folder = os.environ.get(TEST_HOLD_ENV)
    if not folder or request.headers.get(TEST_HOLD_HEADER) != stage:
        return
    base = Path(folder)
    (base / f"{stage}.reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (base / f"{stage}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _prepare(st: AppState, token: str, rule: Rule) -> Principal:
    """Authenticate and check the role, in one short transaction."""

    def run(s: Session):
        p = tokens.authenticate(s, token)
        if p.role not in rule.roles:
            return p, RoleForbidden(msg("a {role} may not do this", role=Term(p.role, "role")))
        return p, None

    p, refused = st.db.run(run)
    if refused is not None:
        # keep the principal for the audit entry of the refusal
        refused.details["principal"] = p
        raise refused
    return p


TARGET_MAX = AuditEntry.__table__.c.target.type.length  # a varchar(200)


def _audit_refusal(st: AppState, request: Request, exc: Exception) -> None:
    p: Principal | None = request.state.principal or getattr(exc, "details", {}).get("principal")
    if p is None:
        return
    actor = actor_of(p, request)
    target = f"{request.method} {request.url.path}"[:TARGET_MAX]  # a 10 KB path fits too
    st.db.run(lambda s: append(s, key=st.audit_key, actor=actor, action="access.refused",
                               target=target, outcome="refused",
                               detail={"code": getattr(exc, "code", "forbidden")}))


def actor_of(p: Principal, request: Request) -> Actor:
    return Actor(p.username, p.user_id, str(p.role), p.scope_label,
                 getattr(request.state, "request_id", None))


@dataclass
class Ctx:
    """What a route handler gets: the caller, the database, and the audit log."""

    request: Request
    st: AppState
    principal: Principal

    @property
    def db(self):
        return self.st.db

    @property
    def actor(self) -> Actor:
        return actor_of(self.principal, self.request)

    def audit(self, session: Session, action: str, target: str | None = None,
              detail: dict | None = None, outcome: str = "ok") -> int:
        hold_for_test(self.request, "in_tx")
        return append(session, key=self.st.audit_key, actor=self.actor, action=action,
                      target=target, outcome=outcome, detail=detail)

    def service_key(self, kind: str) -> str:
        """The key a service stores for this call: derived from the caller and the
        Idempotency-Key, so two users' keys never collide and the length stays bounded."""
        key = getattr(self.request.state, "idempotency_key", None) or ids.new_id()
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"api:{kind}:{self.principal.user_id}:{digest}"


def ctx(request: Request) -> Ctx:
    p = request.state.principal
    if p is None:  # a public route asked for a principal: a programming error
        raise Unauthenticated(N_("not authenticated"))
    return Ctx(request, request.app.state.cv, p)


def state(request: Request) -> AppState:
    return request.app.state.cv


__all__ = ["CVRoute", "Ctx", "Public", "ctx", "state"]
