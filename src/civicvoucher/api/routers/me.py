"""A member's own vouchers and the rotating QR payload to pay with."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api import qr
from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import MemberVoucherView, QrOut
from civicvoucher.errors import NotFound, ValidationError
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


@router.get("/vouchers/{voucher_id}/qr", response_model=QrOut, name="my_voucher_qr")
def my_voucher_qr(voucher_id: int = Path(ge=1, le=2**53), c: Ctx = Depends(ctx)) -> QrOut:
    """A signed payload to show as a QR code; it expires in about 30 seconds, fetch anew."""

    def run(s: Session) -> QrOut:
        v = s.get(Voucher, voucher_id)
        if v is None or v.member_id != c.principal.member_id:
            raise NotFound(f"no voucher {voucher_id} of yours", code="voucher_not_found")
        if v.status != VoucherStatus.ISSUED:
            raise ValidationError(f"this voucher is {v.status}", field="voucher_id",
                                  code="voucher_not_redeemable")
        payload, exp = qr.make_payload(c.st.qr_key, v, period_s=c.st.qr_period_s)
        return QrOut(payload=payload, expires_at=exp,
                     refresh_after_s=max(1, c.st.qr_period_s - 5))

    return c.db.run(run)
