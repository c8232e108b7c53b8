"""Errors of the API edge, in the project's one tree (they subclass civicvoucher.errors)."""

from __future__ import annotations

from civicvoucher.errors import CivicVoucherError, Conflict, Forbidden


class Unauthenticated(CivicVoucherError):
    code = "unauthenticated"
    http_status = 401


class OutOfScope(Forbidden):
    code = "out_of_scope"


class RoleForbidden(Forbidden):
    code = "role_forbidden"


class RateLimited(CivicVoucherError):
    code = "rate_limited"
    http_status = 429


class IdempotencyInFlight(Conflict):
    code = "idempotency_request_in_progress"
