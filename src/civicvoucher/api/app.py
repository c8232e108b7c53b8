"""The FastAPI app: ``create_app()`` (uvicorn: ``civicvoucher.api.app:create_app --factory``).

OpenAPI at /api/v1/openapi.json, interactive docs at /api/v1/docs. Every route is a CVRoute:
authenticated and ruled by ``auth.policy``, Idempotency-Key on mutating calls, problem+json
errors, every body within its route's cap (``api.bodies``). The OpenAPI document is
completed here from the same rules: security, the Idempotency-Key header, the body cap
(``x-max-body-bytes``, 413 past it) and the problem responses of every operation.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from civicvoucher.api import bodies
from civicvoucher.api.problems import (
    MEDIA_TYPE,
    PROBLEM_RESPONSES,
    Language,
    Problem,
    problem_for,
)
from civicvoucher.api.routers import (
    audit,
    auth,
    channels,
    issuance,
    login,
    me,
    members,
    merchants,
    orgs,
    programs,
    redemptions,
    reports,
    runs,
)
from civicvoucher.api.routers import make_router as _make_router
from civicvoucher.api.routing import needs_key
from civicvoucher.api.schemas import CallbackIn
from civicvoucher.api.state import AppState
from civicvoucher.auth.policy import RULES, Rule, rule_for
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.db import Database

PREFIX = "/api/v1"
ROUTERS = [login.router, auth.router, orgs.router, orgs.funds, members.router, programs.router,
           issuance.router, merchants.router, redemptions.vouchers, redemptions.router,
           runs.router, reports.router, audit.router, me.router, channels.router]

meta = _make_router("", "meta")


@meta.get("/health", name="health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(db: Database | None = None, *, secret_key: bytes | None = None,
               limits: Limits | None = None) -> FastAPI:
    """Build the app on ``db`` (default: the configured database, migrated)."""
    if db is None or secret_key is None:
        from civicvoucher.config import load_settings
        from civicvoucher.keys import bind_key
        from civicvoucher.schema import upgrade

        settings = load_settings()
        if db is None:
            db = Database(settings.database_url)
            upgrade(db.engine)
        if secret_key is None:
            secret_key = bind_key(db, settings)  # checks the key and binds the sealing keys
    from civicvoucher.keys import bind_sealing

    # A caller holding the key (tests, an embedding program) seals under it too; binding
    # again what bind_key bound changes nothing (the keys merge).
    bind_sealing(db, secret_key)
    app = FastAPI(
        title="civicvoucher API", version="1", openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None, redoc_url=None,  # the docs page below serves vendored Swagger UI
        description=(
            "Consumption-voucher programs (消费券) on a double-entry ledger. Authenticate with "
            "`POST /api/v1/auth/login` (or an API token) and send `Authorization: Bearer …`. "
            "Every mutating call needs an `Idempotency-Key` header. Errors are RFC 9457 "
            "`application/problem+json` with a stable `code`; send `Accept-Language: en` "
            "for English (zh-CN by default)."),
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.cv = AppState(db=db, secret_key=secret_key, limits=limits or Limits.from_env())
    app.include_router(meta, prefix=PREFIX)
    for r in ROUTERS:
        app.include_router(r, prefix=PREFIX)

    async def _problem(request: Request, exc: Exception):
        return problem_for(request, exc)

    app.add_exception_handler(StarletteHTTPException, _problem)
    app.add_exception_handler(RequestValidationError, _problem)
    app.add_exception_handler(Exception, _problem)
    from civicvoucher.api.uploads import UploadLimit  # bounds: refuse big uploads before buffering
    app.add_middleware(UploadLimit)
    app.add_middleware(Language)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _docs_page(app)
    from civicvoucher.console.app import mount  # the web console, on the same services

    mount(app)
    return app


def _docs_page(app: FastAPI) -> None:
    """Interactive docs from the vendored swagger-ui-dist: no CDN at run time."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import Response

    vendor = resources.files("civicvoucher") / "web/static/vendor/swagger-ui-dist"
    assets = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}

    # Plain Starlette routes, like FastAPI's own openapi.json: public, outside the role rules.
    def docs(_request):
        return get_swagger_ui_html(
            openapi_url=f"{PREFIX}/openapi.json", title="civicvoucher API",
            swagger_js_url=f"{PREFIX}/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/docs/swagger-ui.css", swagger_favicon_url="")

    def docs_asset(request):
        name = request.path_params["name"]
        if name not in assets:
            return Response(status_code=404)
        return Response((vendor / name).read_bytes(), media_type=assets[name],
                        headers={"Cache-Control": "public, max-age=86400"})

    app.router.add_route(f"{PREFIX}/docs", docs, include_in_schema=False)
    app.router.add_route(PREFIX + "/docs/{name}", docs_asset, include_in_schema=False)


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    comps = doc.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schemas["Problem"].pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    cb = CallbackIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["CallbackIn"] = cb
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    comps["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    kinds = {rc.name: bodies.body_kind(rc.original_route) for rc in api_routes(app)}
    for path_item in doc.get("paths", {}).values():
        for method, op in path_item.items():
            name = op.get("operationId", "")
            rule = rule_for(name)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for status, resp in PROBLEM_RESPONSES.items():
                responses.setdefault(status, resp)
            if name in kinds:
                op["x-max-body-bytes"] = bodies.cap_for(name, kinds[name])
                responses.setdefault("413", TOO_LARGE)
            if isinstance(rule, Rule):
                op["security"] = [{"bearerAuth": []}]
                if needs_key(rule, {method.upper()}):
                    op.setdefault("parameters", []).append({
                        "name": "Idempotency-Key", "in": "header", "required": True,
                        "description": "a fresh UUID per logical operation; a retry resends it",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                   "pattern": "^[!-~]+$"},
                    })
            else:
                op["security"] = []
                if op.get("operationId") == "health":
                    for status in ("400", "401", "403", "404", "409", "413", "422", "429",
                                   "503"):
                        responses.pop(status, None)
    app.openapi_schema = doc
    return doc


TOO_LARGE = {
    "description": "Request body larger than the operation's cap (x-max-body-bytes)",
    "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def check_rules(app: FastAPI) -> list[str]:
    """Names of API routes with no rule (CVRoute refuses them already; tests call this)."""
    return [r.name for r in api_routes(app) if rule_for(r.name) is None]


def api_routes(app: FastAPI) -> list:
    """Every API route as mounted (full path, methods, name), through included routers."""
    from fastapi.routing import APIRoute, iter_route_contexts

    return [rc for rc in iter_route_contexts(app.routes)
            if isinstance(rc.original_route, APIRoute) and (rc.path or "").startswith(PREFIX)]


__all__ = ["PREFIX", "RULES", "api_routes", "check_rules", "create_app"]
