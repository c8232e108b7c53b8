"""One router per domain; each uses CVRoute, so each route is ruled by auth.policy."""

from __future__ import annotations

from fastapi import APIRouter

from civicvoucher.api.routing import CVRoute


def make_router(prefix: str, tag: str) -> APIRouter:
    return APIRouter(prefix=prefix, tags=[tag], route_class=CVRoute)
