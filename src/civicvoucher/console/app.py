"""Mounting the console on the API's app: its pages, and the static folder they use."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.staticfiles import StaticFiles

from civicvoucher.auth.policy import rule_for
from civicvoucher.console.routing import ConsoleRoute


def routers() -> list:
    from civicvoucher.console.pages import (
        auditpage,
        cashier,
        dashpage,
        fundspage,
        home,
        imports,
        member,
        merchantspage,
        programs,
        reportspage,
        settlepage,
        tracepage,
    )

    return [home.router, dashpage.router, imports.router, member.router, tracepage.router,
            cashier.router, auditpage.router, programs.router, fundspage.router,
            reportspage.router, merchantspage.router, settlepage.router]


def mount(app: FastAPI) -> None:
    for r in routers():
        app.include_router(r)
    static = resources.files("civicvoucher") / "web/static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")


def console_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, ConsoleRoute)]


def check_console_rules(app: FastAPI) -> list[str]:
    """Console routes with no rule (ConsoleRoute refuses them already; tests call this)."""
    return [r.name for r in console_routes(app) if rule_for(r.name) is None]
