"""The one exception tree. Every error carries a stable ``code`` (API and CLI print it).

    CivicVoucherError                      code
    ├── ValidationError                    invalid_input (field, row, reason)
    │   └── ImportRejected                 import_rejected (list of row errors)
    ├── NotFound                           not_found
    ├── Conflict                           conflict
    │   ├── IdempotencyConflict            idempotency_key_reused / exists_with_different_amount
    │   ├── InsufficientFunds              insufficient_funds
    │   ├── VoucherNotRedeemable           voucher_already_redeemed, voucher_expired,
    │   │                                  voucher_not_yet_valid, category_not_allowed,
    │   │                                  channel_not_allowed, region_not_allowed,
    │   │                                  order_below_threshold, voucher_not_issued, ...
    │   ├── InvalidTransition              invalid_transition
    │   └── RedemptionNotRefundable        redemption_not_refundable
    ├── Forbidden                          forbidden
    ├── DatabaseUnavailable                database_unavailable, database_missing,
    │                                      database_unreachable, database_login_refused
    └── LedgerInvariantBroken              ledger_invariant_broken (a bug, not user error)

The HTTP layer adds its own leaves in ``auth/errors.py`` (401 unauthenticated, 403 role and
scope refusals, 429 rate limits, 409 idempotency request in flight), all subclasses of these.

A message is English in the code, ``msg("no program {ref}", ref=ref)`` when it has parameters
(see ``civicvoucher.i18n``); ``str(exc)`` is English (for logs), and each door shows a person
``exc.localized()``, in their language.
"""

from __future__ import annotations

from dataclasses import dataclass

from civicvoucher.i18n import Text, localize, msg, nmsg


class CivicVoucherError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def localized(self, lang: str | None = None) -> str:
        """The message for a person, in ``lang`` (default: the current language)."""
        return localize(self.message, lang)


class ValidationError(CivicVoucherError):
    code = "invalid_input"
    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        code: str | None = None,
        **details: object,
    ) -> None:
        super().__init__(message, code=code, **details)
        self.field = field
        self.row = row

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"column {self.field}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{self.code}: {prefix}{self.message}"

    def where(self, lang: str | None = None) -> str:
        """'row 3, column union' (第 3 行，union 列) when the error names a place, else ''."""
        return place(self.row, self.field, lang)


def place(row: int | None, field: str | None, lang: str | None = None) -> str:
    if row is not None and field:
        return localize(msg("row {row}, column {field}", row=row, field=field), lang)
    if row is not None:
        return localize(msg("row {row}", row=row), lang)
    if field:
        return localize(msg("column {field}", field=field), lang)
    return ""


@dataclass(frozen=True)
class RowError:
    """One bad cell of an import: 1-based row number as the user sees it in the file."""

    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.field}: {self.reason}"

    def localized_msg(self):
        return msg("row {row}, column {field}: {reason}", row=self.row, field=self.field,
                   reason=Text(self.reason))

    def localized(self, lang: str | None = None) -> str:
        return localize(self.localized_msg(), lang)


class ImportRejected(ValidationError):
    code = "import_rejected"

    def __init__(self, errors: list[RowError], *, total_rows: int) -> None:
        first = errors[0]
        rows = len({e.row for e in errors})
        if len(errors) > 1:
            text = nmsg("nothing imported: {first} (and {n} more error in {rows})",
                        "nothing imported: {first} (and {n} more errors in {rows})",
                        len(errors) - 1, first=first.localized_msg(),
                        rows=nmsg("{n} row", "{n} rows", rows))
        else:
            text = msg("nothing imported: {first}", first=first.localized_msg())
        super().__init__(text, field=first.field, row=first.row)
        self.errors = errors
        self.total_rows = total_rows


class NotFound(CivicVoucherError):
    code = "not_found"
    http_status = 404


class Conflict(CivicVoucherError):
    code = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


class InsufficientFunds(Conflict):
    code = "insufficient_funds"


class VoucherNotRedeemable(Conflict):
    code = "voucher_not_redeemable"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class RedemptionNotRefundable(Conflict):
    code = "redemption_not_refundable"


class Forbidden(CivicVoucherError):
    code = "forbidden"
    http_status = 403


class LedgerInvariantBroken(CivicVoucherError):
    code = "ledger_invariant_broken"
    http_status = 500


class DatabaseUnavailable(CivicVoucherError):
    """The configured database cannot be opened: no server answers, the database does not
    exist, the login is refused, SQLite cannot open the file. ``url`` has no password."""

    code = "database_unavailable"
    http_status = 503

    def __init__(self, message, *, url: str, code: str | None = None) -> None:
        super().__init__(message, code=code, url=url)
        self.url = url
