"""Errors of the API edge, in the project's one tree (they subclass civicvoucher.errors)."""

from __future__ import annotations

from civicvoucher.errors import CivicVoucherError, Conflict, Forbidden, ValidationError


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


class DatabaseUnavailable(CivicVoucherError):
    """The database could not be reached (down, restarting, connection cut, busy): retry."""

    code = "database_unavailable"
    http_status = 503


class BindingNotAllowed(ValidationError):
    """A user was sent a binding its role does not take (``field`` names it)."""

    code = "binding_not_allowed"
    http_status = 400


class ChannelKindNotAllowed(Forbidden):
    """A payment channel reported a redemption channel kind it is not configured for."""

    code = "channel_kind_not_allowed"
