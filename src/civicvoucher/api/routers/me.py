"""A member's own vouchers and the rotating QR code to pay with: an image for a browser or
a screen (PNG by default, SVG on request), or the payload as JSON for an app that draws it."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Path, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api import qr
from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.problems import PROBLEM_RESPONSES
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import MemberVoucherView, QrOut
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.rules import VoucherForm, VoucherStatus

router = make_router("/me", "member")


def voucher_view(v: Voucher) -> MemberVoucherView:
    return MemberVoucherView(
        id=v.id, code=v.code if v.form == VoucherForm.PAPER else None, program_id=v.program_id,
        amount_fen=v.amount_fen, threshold_fen=v.threshold_fen, form=v.form, status=v.status,
        valid_from=v.valid_from, expires_at=v.expires_at)


@router.get("/vouchers", response_model=Page[MemberVoucherView], name="my_vouchers")
def my_vouchers(status: Literal["issued", "held", "redeemed", "expired"] | None = None,
                page: PageParams = Depends(page_params),
                c: Ctx = Depends(ctx)) -> Page[MemberVoucherView]:
    def run(s: Session) -> Page[MemberVoucherView]:
        q = select(Voucher).where(Voucher.member_id == c.principal.member_id)
        if status:
            q = q.where(Voucher.status == status)
        result = paginate(s, q, Voucher.id, page, voucher_view)
        c.audit(s, "voucher.list_own", target=f"member:{c.principal.member_id}",
                detail={"count": len(result.items)})
        return result

    return c.db.run(run)


QR_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "json": "application/json"}


class NotAcceptable(ValidationError):
    """The caller's Accept header admits none of the QR route's content types."""

    code = "not_acceptable"
    http_status = 406


def negotiate(accept: str | None, offered: dict[str, str]) -> str | None:
    """The key of the ``offered`` media type the Accept header prefers (RFC 9110 12.5.1):
    each type takes the q of the most specific range that matches it (``image/png`` over
    ``image/*`` over ``*/*``); the highest q wins and a tie goes to the order offered (so a
    browser's ``image/svg+xml,image/*,*/*;q=0.8`` gets the PNG). No header: the first
    offered. None: nothing acceptable."""
    if not accept or not accept.strip():
        return next(iter(offered))
    ranges: list[tuple[str, str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        kind, _, sub = media.lower().partition("/")
        ranges.append((kind, sub, q))
    best, best_q = None, 0.0
    for key, media in offered.items():
        kind, _, sub = media.partition("/")
        matches = [(3 if (k, s) == (kind, sub) else 2 if (k == kind and s == "*") else 1, q)
                   for k, s, q in ranges
                   if (k, s) in ((kind, sub), (kind, "*"), ("*", "*"))]
        if matches:
            q = max(matches)[1]  # the most specific range decides
            if q > best_q:
                best, best_q = key, q
    return best


_QR_RESPONSES = {
    200: {
        "description": "The payment QR code: a PNG image by default, SVG with "
                       "``Accept: image/svg+xml`` or ``?format=svg``, and the payload as JSON "
                       "with ``Accept: application/json`` or ``?format=json`` (for an app that "
                       "draws the code itself). Images are never cached; their headers say "
                       "when the payload expires and when to fetch a new one.",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
        "headers": {
            "X-QR-Expires-At": {"description": "when the payload expires (ISO 8601, local "
                                               "offset)", "schema": {"type": "string"}},
            "X-QR-Refresh-After": {"description": "seconds after which to fetch a new code",
                                   "schema": {"type": "integer"}},
        },
    },
    406: {**PROBLEM_RESPONSES["422"], "description": "Accept admits neither PNG, SVG nor JSON"},
}


@router.get("/vouchers/{voucher_id}/qr", response_model=QrOut, name="my_voucher_qr",
            responses=_QR_RESPONSES)
def my_voucher_qr(*, voucher_id: int = Path(ge=1, le=2**53),
                  format: Literal["png", "svg", "json"] | None = Query(
                      None, description="overrides the Accept header: png, svg or json"),
                  response: Response,
                  c: Ctx = Depends(ctx)):
    """The voucher's payment QR code; it expires in about 30 seconds, fetch anew. Only an
    unspent voucher of the caller's own has one."""
    kind = format or negotiate(c.request.headers.get("accept"), QR_MEDIA_TYPES)
    if kind is None:
        raise NotAcceptable(N_("this route answers image/png, image/svg+xml or "
                               "application/json"), field="accept")

    def run(s: Session) -> QrOut:
        v = s.get(Voucher, voucher_id)
        if v is None or v.member_id != c.principal.member_id:
            raise NotFound(msg("no voucher {id} of yours", id=voucher_id), code="voucher_not_found")
        if v.status != VoucherStatus.ISSUED:
            raise ValidationError(msg("this voucher is {status}",
                                      status=Term(v.status, "voucher_status")), field="voucher_id",
                                  code="voucher_not_redeemable")
        payload, exp = qr.make_payload(c.st.qr_key, v, period_s=c.st.qr_period_s)
        return QrOut(payload=payload, expires_at=exp,
                     refresh_after_s=max(1, c.st.qr_period_s - 5))

    out = c.db.run(run)
    headers = {"Cache-Control": "no-store", "Vary": "Accept"}
    if kind == "json":
        response.headers.update(headers)
        return out
    from civicvoucher.core.clock import to_local

    return Response(qr.image(out.payload, kind), media_type=QR_MEDIA_TYPES[kind], headers={
        **headers, "X-QR-Expires-At": to_local(out.expires_at).isoformat(),
        "X-QR-Refresh-After": str(out.refresh_after_s)})
