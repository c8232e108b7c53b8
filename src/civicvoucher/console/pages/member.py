"""The member's phone pages (``/m``): my vouchers, a voucher's rotating payment QR code,
merchants near me, my spending history. For the member role only.

Nothing here decides anything the API does not: the voucher list is the API's
``GET /me/vouchers`` (``api.routers.me.my_vouchers``, called with this page's context, so the
same query, paging and audit entry), and the QR image is the API's ``GET
/me/vouchers/{id}/qr`` (``my_voucher_qr``: the same ownership check, the same signed payload
from ``api.qr.make_payload``, the same image from ``api.qr.image``, never cached). What the
pages add are reads a member needs to see beside them: where a voucher may be spent (its
product's categories, channels and region, named in the reader's language), the active
merchants of a county, and the member's own redemptions with their refunds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import distinct, literal, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher.api.pagination import PageParams
from civicvoucher.api.routers import me
from civicvoucher.console import nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core.regions import region_prefix
from civicvoucher.i18n import N_
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.regions import current_county, region_of_code
from civicvoucher.merchants.rules import Category, Channel, MerchantStatus
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product, Program
from civicvoucher.vouchers.listing import region_name, validity_days
from civicvoucher.vouchers.models import Redemption, Refund, Voucher
from civicvoucher.vouchers.rules import VoucherStatus

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

nav.register(nav.Link("console_member_vouchers", "/m", N_("My vouchers"), phone=True))
nav.register(nav.Link("console_member_merchants", "/m/merchants", N_("Merchants near me"),
                      phone=True))
nav.register(nav.Link("console_member_history", "/m/history", N_("My spending"), phone=True))

VOUCHERS_PER_PAGE = 20
MERCHANTS_PER_PAGE = 20
HISTORY_LIMIT = 50
STATUSES = tuple(s.value for s in VoucherStatus)
REFUND_OUTCOME = {"restored": N_("returned to the voucher"),
                  "to_fund": N_("returned to the union's fund")}


def _cursor(text: str | None) -> str | None:
    """A cursor as the API's paging takes it (its own check refuses one it did not give)."""
    return text if text and len(text) <= 64 else None


# --- my vouchers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Where:
    product: str
    program: str
    categories: tuple[str, ...]
    channels: tuple[str, ...]
    region: str  # named: 山西省太原市小店区


def spend_places(session: Session, member_id: int, voucher_ids: list[int]) -> dict[int, Where]:
    """Where each of the member's vouchers may be spent: its product's rules."""
    if not voucher_ids:
        return {}
    rows = session.execute(
        select(Voucher.id, Voucher.region_code, Product.name, Program.name, Product.categories,
               Product.channels, Product.region_scope)
        .join(Product, Product.id == Voucher.product_id)
        .join(Program, Program.id == Voucher.program_id)
        .where(Voucher.id.in_(voucher_ids), Voucher.member_id == member_id))
    out = {}
    for vid, region_code, product, program, cats, chans, scope in rows:
        out[vid] = Where(product, program,
                         tuple(c.value for c in Category if c.value in set(cats)),
                         tuple(c.value for c in Channel if c.value in set(chans)),
                         region_name(region_prefix(region_code, scope)))
    return out


@router.get("/m", name="console_member_vouchers")
def my_vouchers(status: str | None = Query(None, max_length=20),
                cursor: str | None = Query(None, max_length=64),
                c: PageCtx = Depends(page_ctx)) -> Response:
    chosen = status if status in STATUSES else None
    page = me.my_vouchers(status=chosen, page=PageParams(limit=VOUCHERS_PER_PAGE,
                                                         cursor=_cursor(cursor)), c=c)
    ids = [v.id for v in page.items]
    places = c.db.run(lambda s: spend_places(s, c.principal.member_id, ids))
    items = []
    for v in page.items:
        first, last = validity_days(v.valid_from, v.expires_at)
        items.append({"v": v, "where": places.get(v.id), "first": first, "last": last,
                      "payable": v.status == VoucherStatus.ISSUED and v.form == "digital"})
    return render(c.request, "member/vouchers.html.j2", title=N_("My vouchers"),
                  items=items, next_cursor=page.next_cursor, shown_status=chosen or "",
                  statuses=STATUSES)


# --- one voucher and its QR ----------------------------------------------------------------

VoucherId = Path(ge=1, le=2**53)


@router.get("/m/vouchers/{voucher_id}", name="console_member_voucher")
def voucher_page(voucher_id: int = VoucherId, c: PageCtx = Depends(page_ctx)) -> Response:
    """The voucher with its payment QR. The image is fetched first (the API's route), so a
    voucher not the member's, or not payable, answers as the API does."""
    me.my_voucher_qr(voucher_id=voucher_id, format="json", response=Response(), c=c)

    def run(s: Session):
        v = s.get(Voucher, voucher_id)
        return v, spend_places(s, c.principal.member_id, [voucher_id]).get(voucher_id)

    v, where = c.db.run(run)
    first, last = validity_days(v.valid_from, v.expires_at)
    period = c.st.qr_period_s
    return render(c.request, "member/voucher.html.j2", title=N_("Pay with a voucher"),
                  v=v, where=where, first=first, last=last, period=period,
                  refresh_after=max(1, period - 5),
                  qr_src=f"/m/vouchers/{voucher_id}/qr")


@router.get("/m/vouchers/{voucher_id}/qr", name="console_member_voucher_qr")
def voucher_qr(voucher_id: int = VoucherId,
               format: str = Query("png", pattern="^(png|svg)$"),
               c: PageCtx = Depends(page_ctx)) -> Response:
    """The payment QR image for the signed-in member: the API's route, called as it is."""
    out = me.my_voucher_qr(voucher_id=voucher_id, format=format, response=Response(), c=c)
    out.headers["Cache-Control"] = "no-store"
    return out


# --- merchants near me ---------------------------------------------------------------------

def home_region(session: Session, member_id: int) -> str:
    """The member's union's county (its federation's region: '140105', or '1401' for a union
    under a city)."""
    code = session.execute(select(Org.region_code).join(Member, Member.union_id == Org.id)
                           .where(Member.id == member_id)).scalar()
    return region_of_code(code) if code else ""


def merchant_counties(session: Session) -> list[tuple[str, str]]:
    codes = session.execute(select(distinct(Merchant.county_code))
                            .where(Merchant.status == MerchantStatus.ACTIVE)
                            .order_by(Merchant.county_code)).scalars()
    return [(code, region_name(code) if current_county(code) else code) for code in codes]


def active_merchants(session: Session, *, county: str, category: str | None,
                     channel: str | None, after_id: int | None, limit: int) -> list[Merchant]:
    q = select(Merchant).where(Merchant.status == MerchantStatus.ACTIVE)
    if county:
        q = q.where(Merchant.county_code.startswith(county))
    if category:
        q = q.where(Merchant.category == category)
    if channel:  # channels are stored comma-separated: match a whole item
        q = q.where((literal(",") + Merchant.channels + literal(",")).contains(f",{channel},"))
    if after_id is not None:
        q = q.where(Merchant.id > after_id)
    return list(session.execute(q.order_by(Merchant.id).limit(limit)).scalars())


@router.get("/m/merchants", name="console_member_merchants")
def merchants(county: str | None = Query(None, max_length=6),
              category: str | None = Query(None, max_length=20),
              channel: str | None = Query(None, max_length=20),
              after: int | None = Query(None, ge=0, le=2**31 - 1),
              c: PageCtx = Depends(page_ctx)) -> Response:
    cat = category if category in {x.value for x in Category} else ""
    chan = channel if channel in {x.value for x in Channel} else ""

    def run(s: Session):
        counties = merchant_counties(s)
        home = home_region(s, c.principal.member_id)
        where = home if county is None else (
            county if county in {code for code, _ in counties} or county == "" else home)
        rows = active_merchants(s, county=where, category=cat or None, channel=chan or None,
                                after_id=after, limit=MERCHANTS_PER_PAGE + 1)
        return counties, home, where, rows

    counties, home, where, rows = c.db.run(run)
    more = len(rows) > MERCHANTS_PER_PAGE
    rows = rows[:MERCHANTS_PER_PAGE]
    if home and home not in {code for code, _ in counties}:
        counties = [(home, region_name(home)), *counties]
    items = [{"name": m.name, "category": m.category, "county": region_name(m.county_code),
              "channels": [x.value for x in Channel if x.value in m.channel_set]}
             for m in rows]
    next_after = rows[-1].id if more and rows else None
    return render(c.request, "member/merchants.html.j2", title=N_("Merchants near me"),
                  items=items, counties=counties, county=where, home=home, category=cat,
                  channel=chan, categories=[x.value for x in Category],
                  channels=[x.value for x in Channel], next_after=next_after)


# --- my history ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Spent:
    id: int
    at: datetime
    merchant: str
    channel: str
    status: str
    order_fen: int
    voucher_fen: int
    voucher_id: int
    refund_fen: int | None
    refund_at: datetime | None
    refund_outcome: str | None


def my_redemptions(session: Session, member_id: int, *, limit: int) -> list[Spent]:
    """The member's redemptions, newest first, with their refunds."""
    rows = session.execute(
        select(Redemption, Merchant.name, Refund.amount_fen, Refund.created_at, Refund.outcome)
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .outerjoin(Refund, Refund.redemption_id == Redemption.id)
        .where(Voucher.member_id == member_id)
        .order_by(Redemption.created_at.desc(), Redemption.id.desc()).limit(limit))
    return [Spent(r.id, r.created_at, name, r.channel, r.status, r.order_amount_fen,
                  r.amount_fen, r.voucher_id, rf, rf_at, outcome)
            for r, name, rf, rf_at, outcome in rows]


@router.get("/m/history", name="console_member_history")
def history(c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session) -> list[Spent]:
        found = my_redemptions(s, c.principal.member_id, limit=HISTORY_LIMIT)
        c.audit(s, "redemption.list_own", target=f"member:{c.principal.member_id}",
                detail={"count": len(found)})
        return found

    items = c.db.run(run)
    return render(c.request, "member/history.html.j2", title=N_("My spending"), items=items,
                  limit=HISTORY_LIMIT, outcomes=REFUND_OUTCOME)
