"""Who holds which voucher, and what was spent where: the reads behind ``voucher list``,
``voucher export`` and ``redemption list`` (and, later, the web console's lists).

Every read is scoped by the organisation tree: an organisation's ``path`` selects its whole
subtree with one indexed prefix query, so a federation sees every union under it and a union
only itself (never a sibling). Rows carry what a person needs to read them: the member masked
(name as 张*三, the ID number only in the masked form the registry stores: no clear number is
stored anywhere), money in fen, instants in naive UTC (the doors show them local). Pure
reads: auditing one is the door's business, since only the door knows the actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.core.regions import region_prefix
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import Term, msg
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.regions import current_county, province_name
from civicvoucher.merchants.rules import CATEGORY_LABEL_ZH, CHANNEL_LABEL_ZH, Category, Channel
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product, Program
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.rules import (  # noqa: F401 (the label tables live in rules)
    REDEMPTION_STATUS_LABEL_ZH,
    VOUCHER_FORM_LABEL_ZH,
    VOUCHER_STATUS_LABEL_ZH,
    RedemptionStatus,
    VoucherForm,
    VoucherStatus,
)


def _words(labels: dict) -> dict[str, str]:
    return {**{zh: str(k) for k, zh in labels.items()}, **{str(k): str(k) for k in labels}}


_VOUCHER_STATUS_WORDS = _words(VOUCHER_STATUS_LABEL_ZH)
_REDEMPTION_STATUS_WORDS = _words(REDEMPTION_STATUS_LABEL_ZH)


def parse_voucher_status(text: str) -> str:
    """'未使用' / 'issued' → 'issued'; anything else is a ValidationError naming the choices."""
    found = _VOUCHER_STATUS_WORDS.get(text.strip().lower()) or _VOUCHER_STATUS_WORDS.get(text.strip())
    if found is None:
        raise ValidationError(msg("unknown voucher status {text}; use {choices}", text=repr(text),
                                  choices=[Term(s, "voucher_status") for s in VoucherStatus]),
                              field="status")
    return found


def parse_redemption_status(text: str) -> str:
    """'已核销' / 'posted' → 'posted'."""
    found = (_REDEMPTION_STATUS_WORDS.get(text.strip().lower())
             or _REDEMPTION_STATUS_WORDS.get(text.strip()))
    if found is None:
        raise ValidationError(
            msg("unknown redemption status {text}; use {choices}", text=repr(text),
                choices=[Term(s, "redemption_status") for s in RedemptionStatus]),
            field="status")
    return found


def mask_name(name: str) -> str:
    """'张三' → '张*', '张小三' → '张*三', '欧阳小锋' → '欧**锋': enough for a member to find
    their own line on a hand-out sheet, not enough to read a roster off it."""
    n = len(name)
    if n <= 1:
        return "*" * n
    if n == 2:
        return name[0] + "*"
    return name[0] + "*" * (n - 2) + name[-1]


@lru_cache(maxsize=4096)  # called per exported row; a program has a handful of regions
def region_name(prefix: str) -> str:
    """A division-code prefix as people name the area: '14' 山西省, '1401' 山西省太原市,
    '140105' 山西省太原市小店区 (GB/T 2260 names; the code itself if the table lacks it)."""
    province = province_name(prefix)
    if len(prefix) == 2:
        return province or prefix
    city = current_county(prefix[:4] + "00") or ""
    if len(prefix) == 4:
        return f"{province}{city}" or prefix
    county = current_county(prefix) or ""
    return f"{province}{city}{county}" if county else prefix


def spend_where(categories, channels, prefix: str) -> tuple[str, str, str]:
    """(categories, channels, region) in Chinese, in the order the registry declares them."""
    cats = "、".join(CATEGORY_LABEL_ZH[c] for c in Category if c in set(categories))
    chans = "、".join(CHANNEL_LABEL_ZH[c] for c in Channel if c in set(channels))
    return cats, chans, region_name(prefix)


def validity_days(valid_from: datetime, expires_at: datetime) -> tuple[date | datetime,
                                                                         date | datetime]:
    """A validity window as people read it, in the deployment's zone: the first and the last
    day (``expires_at`` is exclusive, so a deadline at local midnight is the day before). A
    bound that is not at local midnight is kept as its local wall time (naive) instead."""
    start = clock.to_local(valid_from)
    end = clock.to_local(expires_at)
    first = start.date() if start.time() == datetime.min.time() else start.replace(tzinfo=None)
    if end.time() == datetime.min.time():
        last: date | datetime = end.date() - timedelta(days=1)
    else:
        last = end.replace(tzinfo=None)
    return first, last


# --- vouchers --------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoucherQuery:
    """Which vouchers: a subtree (``org_path`` of a union or a federation), a program, a
    status, one member. None: no restriction."""

    org_path: str | None = None
    program_id: int | None = None
    status: str | None = None
    member_id: int | None = None
    form: str | None = None  # digital or paper


@dataclass(frozen=True)
class VoucherLine:
    id: int
    code: str
    form: str
    status: str
    amount_fen: int
    threshold_fen: int
    valid_from: datetime
    expires_at: datetime
    issued_at: datetime
    member_id: int
    member_name: str  # masked: 张*三
    member_id_masked: str  # as the registry stores it: 110***********1234
    union_id: int
    union_name: str
    union_uscc: str | None
    program_key: str
    product_name: str
    categories: tuple[str, ...]
    channels: tuple[str, ...]
    region_prefix: str  # where it may be spent: a division-code prefix

    @property
    def where(self) -> tuple[str, str, str]:
        return spend_where(self.categories, self.channels, self.region_prefix)


_VOUCHER_COLUMNS = (Voucher, Member.name, Member.id_masked, Org.name, Org.uscc,
                    Org.region_code, Program.key, Product.name, Product.categories,
                    Product.channels, Product.region_scope)


def _voucher_select(q: VoucherQuery, *columns) -> Select:
    stmt = (select(*columns).select_from(Voucher)
            .join(Org, Org.id == Voucher.union_id))
    if q.org_path:
        stmt = stmt.where(Org.path.startswith(q.org_path))
    if q.program_id is not None:
        stmt = stmt.where(Voucher.program_id == q.program_id)
    if q.status:
        stmt = stmt.where(Voucher.status == VoucherStatus(q.status))
    if q.member_id is not None:
        stmt = stmt.where(Voucher.member_id == q.member_id)
    if q.form is not None:
        stmt = stmt.where(Voucher.form == q.form)
    return stmt


def _full(q: VoucherQuery) -> Select:
    return (_voucher_select(q, *_VOUCHER_COLUMNS)
            .join(Member, Member.id == Voucher.member_id)
            .join(Program, Program.id == Voucher.program_id)
            .join(Product, Product.id == Voucher.product_id))


def _line(row) -> VoucherLine:
    (v, name, id_masked, union_name, uscc, region_code, program_key, product_name, cats,
     chans, scope) = row
    return VoucherLine(
        id=v.id, code=v.code, form=v.form, status=v.status, amount_fen=v.amount_fen,
        threshold_fen=v.threshold_fen, valid_from=v.valid_from, expires_at=v.expires_at,
        issued_at=v.issued_at, member_id=v.member_id, member_name=mask_name(name),
        member_id_masked=id_masked, union_id=v.union_id, union_name=union_name,
        union_uscc=uscc, program_key=program_key, product_name=product_name,
        categories=tuple(cats), channels=tuple(chans),
        region_prefix=region_prefix(region_code, scope))


def list_vouchers(session: Session, q: VoucherQuery, *, after_id: int | None = None,
                  limit: int = 50) -> list[VoucherLine]:
    """One page of vouchers in id order, after ``after_id`` (keyset: stable while issuing)."""
    stmt = _full(q)
    if after_id is not None:
        stmt = stmt.where(Voucher.id > after_id)
    return [_line(r) for r in session.execute(stmt.order_by(Voucher.id).limit(limit))]


def count_vouchers(session: Session, q: VoucherQuery) -> int:
    return session.execute(_voucher_select(q, func.count(Voucher.id))).scalar_one()


@dataclass(frozen=True)
class UnionTotal:
    union: Org
    vouchers: int
    amount_fen: int


def union_totals(session: Session, q: VoucherQuery) -> list[UnionTotal]:
    """The unions in scope that hold matching vouchers, in tree order, with their totals."""
    stmt = (_voucher_select(q, Org, func.count(Voucher.id), func.sum(Voucher.amount_fen))
            .group_by(Org.id).order_by(Org.path))
    return [UnionTotal(o, n, int(total or 0)) for o, n, total in session.execute(stmt)]


def union_vouchers(session: Session, q: VoucherQuery, union_id: int, *,
                   batch: int = 2000) -> Iterator[VoucherLine]:
    """Every matching voucher of one union, member by member (a member's vouchers together),
    streamed: a union's sheet is read in batches, never held whole."""
    stmt = (_full(q).where(Voucher.union_id == union_id)
            .order_by(Voucher.member_id, Voucher.id).execution_options(yield_per=batch))
    for row in session.execute(stmt):
        yield _line(row)


# --- redemptions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RedemptionQuery:
    """Which redemptions: the issuing unions' subtree, a program, a merchant, a status, and a
    window of creation instants [since, until) in naive UTC."""

    org_path: str | None = None
    program_id: int | None = None
    merchant_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class RedemptionLine:
    id: int
    created_at: datetime
    posted_at: datetime | None
    status: str
    channel: str
    order_amount_fen: int
    amount_fen: int
    voucher_id: int
    merchant_id: int
    merchant_name: str
    merchant_uscc: str
    union_id: int
    union_name: str
    program_key: str
    settlement_batch_id: int | None


def _redemption_select(q: RedemptionQuery, *columns) -> Select:
    stmt = select(*columns).select_from(Redemption).join(Org, Org.id == Redemption.union_id)
    if q.org_path:
        stmt = stmt.where(Org.path.startswith(q.org_path))
    if q.program_id is not None:
        stmt = stmt.where(Redemption.program_id == q.program_id)
    if q.merchant_id is not None:
        stmt = stmt.where(Redemption.merchant_id == q.merchant_id)
    if q.status:
        stmt = stmt.where(Redemption.status == RedemptionStatus(q.status))
    if q.since is not None:
        stmt = stmt.where(Redemption.created_at >= q.since)
    if q.until is not None:
        stmt = stmt.where(Redemption.created_at < q.until)
    return stmt


def list_redemptions(session: Session, q: RedemptionQuery, *, after_id: int | None = None,
                     limit: int = 50) -> list[RedemptionLine]:
    """One page of redemptions in id order, with the merchant's and the union's names."""
    stmt = (_redemption_select(q, Redemption, Merchant.name, Merchant.uscc, Org.name,
                               Program.key)
            .join(Merchant, Merchant.id == Redemption.merchant_id)
            .join(Program, Program.id == Redemption.program_id))
    if after_id is not None:
        stmt = stmt.where(Redemption.id > after_id)
    out = []
    for r, m_name, m_uscc, union_name, program_key in session.execute(
            stmt.order_by(Redemption.id).limit(limit)):
        out.append(RedemptionLine(
            id=r.id, created_at=r.created_at, posted_at=r.posted_at, status=r.status,
            channel=r.channel, order_amount_fen=r.order_amount_fen, amount_fen=r.amount_fen,
            voucher_id=r.voucher_id, merchant_id=r.merchant_id, merchant_name=m_name,
            merchant_uscc=m_uscc, union_id=r.union_id, union_name=union_name,
            program_key=program_key, settlement_batch_id=r.settlement_batch_id))
    return out


def count_redemptions(session: Session, q: RedemptionQuery) -> int:
    return session.execute(_redemption_select(q, func.count(Redemption.id))).scalar_one()
