"""Expiry (breakage back to the issuing union's fund) and deadline extensions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.db import once
from civicvoucher.errors import IdempotencyConflict, ValidationError
from civicvoucher.funds.service import fund_account
from civicvoucher.i18n import N_, msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import TransferCode
from civicvoucher.programs.service import get_program, lock_program, products_of
from civicvoucher.vouchers.issuance import deadline_of, outstanding_account
from civicvoucher.vouchers.models import ExpiryRun, Extension, Voucher
from civicvoucher.vouchers.redemption import void_expired_holds
from civicvoucher.vouchers.rules import VoucherForm, VoucherStatus, request_hash, transition

V = Voucher.__table__


@dataclass(frozen=True)
class ExpiryResult:
    run: ExpiryRun
    replayed: bool


def expire(session: Session, *, as_of: datetime | None, idem_key: str,
           now: datetime | None = None) -> ExpiryResult:
    """Expire every issued voucher whose deadline is at or before ``as_of`` and return its
    value to the issuing union's fund: one transfer per union and program. Stale holds are
    voided first. Running again finds nothing left to expire.

    ``as_of=None`` means now, decided by the first request with this key: a retry without
    ``as_of`` returns the first run, whenever it comes."""
    now = now or clock.now()

    def find() -> ExpiryRun | None:
        found = session.execute(select(ExpiryRun).where(ExpiryRun.idem_key == idem_key)).scalar()
        if found is not None and as_of is not None and found.as_of != as_of:
            raise IdempotencyConflict(msg("key {key} was used for another expiry run", key=idem_key))
        return found

    run, replayed = once(session, "expire", find,
                         lambda: _expire(session, as_of=now if as_of is None else as_of,
                                         idem_key=idem_key, now=now))
    return ExpiryResult(run, replayed)


def _expire(session: Session, *, as_of: datetime, idem_key: str, now: datetime) -> ExpiryRun:
    if as_of > now:
        raise ValidationError(N_("cannot expire vouchers in the future"), field="as_of")
    holds = void_expired_holds(session, now=now)
    run = ExpiryRun(idem_key=idem_key, as_of=as_of, vouchers_expired=0, amount_fen=0,
                    holds_voided=holds, created_at=now)
    session.add(run)
    session.flush()
    frm, to = transition(VoucherStatus.ISSUED, "expire")
    rows = session.execute(
        update(V).where(V.c.status == frm, V.c.expires_at <= as_of).values(status=to)
        .returning(V.c.union_id, V.c.program_id, V.c.amount_fen)
    ).all()
    sums: dict[tuple[int, int], int] = defaultdict(int)
    for union_id, program_id, amount in rows:
        sums[(union_id, program_id)] += amount
    for (union_id, program_id), amount in sorted(sums.items()):
        ledger.post_transfer(
            session, id=f"expire:{run.id}:{union_id}:{program_id}",
            debit_account_id=outstanding_account(session, union_id, program_id),
            credit_account_id=fund_account(session, union_id), amount=amount,
            code=TransferCode.EXPIRE, now=now,
        )
    run.vouchers_expired = len(rows)
    run.amount_fen = sum(sums.values())
    session.flush()
    return run


@dataclass(frozen=True)
class ExtensionResult:
    extension: Extension
    replayed: bool


def extend(
    session: Session,
    *,
    program: str | int,
    new_expires_at: datetime,
    actor: str,
    reason: str,
    idem_key: str,
    product: str | None = None,
    union_ids: list[int] | None = None,
    region_prefix: str | None = None,
    form: str | None = None,
    document: str | None = None,
    now: datetime | None = None,
) -> ExtensionResult:
    """Move the deadline of a program's unspent vouchers (all, or those matching the filters),
    recording who and why. Deadlines only move later; expired vouchers stay expired, and so
    does a voucher whose deadline has passed before the expiry run marked it. A voucher
    spent now and refunded later gets the extension then (``redemption.current_deadline``)."""
    now = now or clock.now()
    if not actor.strip() or not reason.strip():
        raise ValidationError(N_("an extension records who and why"), field="reason")
    prog = get_program(session, program)
    scope = dict(product=product, union_ids=sorted(union_ids) if union_ids else None,
                 region_prefix=region_prefix, form=form)
    rh = request_hash(program=prog.key, new_expires_at=new_expires_at, **scope)

    def find() -> Extension | None:
        found = session.execute(select(Extension).where(Extension.idem_key == idem_key)).scalar()
        if found is not None and request_hash(program=prog.key, new_expires_at=found.new_expires_at,
                                              **found.scope) != rh:
            raise IdempotencyConflict(msg("key {key} was used for another extension",
                                          key=idem_key))
        return found

    def work() -> Extension:
        if new_expires_at <= now:
            raise ValidationError(N_("the new deadline must be in the future"),
                                  field="new_expires_at")
        return _extend(session, prog=prog, new_expires_at=new_expires_at, actor=actor,
                       reason=reason, idem_key=idem_key, product=product, scope=scope,
                       document=document, now=now)

    ext, replayed = once(session, "extend", find, work)
    return ExtensionResult(ext, replayed)


def _extend(session: Session, *, prog, new_expires_at: datetime, actor: str, reason: str,
            idem_key: str, product: str | None, scope: dict, document: str | None,
            now: datetime) -> Extension:
    union_ids, region_prefix, form = scope["union_ids"], scope["region_prefix"], scope["form"]
    lock_program(session, prog.id, exclusive=True)
    product_id = None
    products = products_of(session, prog.id)
    if product is not None:
        by_key = {p.key: p.id for p in products}
        if product not in by_key:
            raise ValidationError(msg("no product {products} in {program}", products=product,
                                      program=prog.key), field="product")
        product_id = by_key[product]
    # Deadlines only move later: a date not after any targeted product's current deadline
    # would extend nothing (a product whose deadline is later already is simply left alone).
    current = min(deadline_of(session, p) for p in products
                  if product_id is None or p.id == product_id)
    if new_expires_at <= current:
        raise ValidationError(
            msg("the new deadline must be later than the current one, {current}: deadlines "
                "only move later", current=clock.format_local(current)),
            field="new_expires_at", code="extension_not_later")
    # Only vouchers still running: one whose deadline has passed is expired, whether or not
    # the expiry run has marked it yet (so the outcome never depends on when that ran).
    cond = [V.c.program_id == prog.id,
            V.c.status.in_([VoucherStatus.ISSUED, VoucherStatus.HELD]),
            V.c.expires_at > now, V.c.expires_at < new_expires_at]
    if product_id is not None:
        cond.append(V.c.product_id == product_id)
    if union_ids:
        cond.append(V.c.union_id.in_(union_ids))
    if region_prefix:
        cond.append(V.c.region_code.startswith(region_prefix))
    if form:
        cond.append(V.c.form == VoucherForm(form))
    count = session.execute(update(V).where(*cond).values(expires_at=new_expires_at)).rowcount
    ext = Extension(
        idem_key=idem_key, program_id=prog.id, product_id=product_id,
        new_expires_at=new_expires_at,
        program_wide=not (union_ids or region_prefix or form), scope=scope,
        vouchers_extended=count, actor=actor, reason=reason, document=document, created_at=now,
    )
    session.add(ext)
    session.flush()
    return ext
