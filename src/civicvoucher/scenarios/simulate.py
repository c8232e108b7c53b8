"""The simulator: a scenario run through the real services, as a province would run it.

Orgs, members and merchants go in through the registries; deposits through the fund service;
issuance through ``issue`` (whose fund check decides who gets what); spending through the
batch redemption path (same rules as a cashier's); settlement every week; the deadline
extension and the expiry runs on their dates. Seeded: the same seed gives the same data
(voucher codes excepted: they come from the system's random source, by design).

Days are calendar days in the scenario's zone (``[scenario] timezone``, Beijing time for
Shanxi; the deployment's zone if the file names none): spending at local noon, settlement and
expiry at local midnight. What the services get is naive UTC, as everywhere.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.funds.service import deposit_many
from civicvoucher.members.models import Member
from civicvoucher.members.service import add_members
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.service import add_merchants
from civicvoucher.orgs.service import add_unions, create_org
from civicvoucher.programs.models import Product
from civicvoucher.programs.service import create_program, products_of
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.scenarios.funding import plan_funding
from civicvoucher.scenarios.population import People, plan_merchants, plan_unions
from civicvoucher.scenarios.spending import MerchantInfo, SpendingModel
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.batch import SpendRequest, redeem_batch
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire, extend
from civicvoucher.vouchers.models import Voucher

Progress = Callable[[str, int], Callable[[int], None]]
BATCH = 2000


def _quiet(_stage: str, _total: int) -> Callable[[int], None]:
    return lambda _n=1: None


@dataclass
class SimulationSummary:
    seed: int
    scale: float
    unions: int = 0
    members: int = 0
    merchants: int = 0
    issuances: dict[str, int] = field(default_factory=dict)
    vouchers: int = 0
    tourism_cards: int = 0
    spends_planned: int = 0
    redeemed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    settlement_runs: int = 0
    expired: int = 0
    extended: int = 0


def simulate(db: Database, scn: dict, *, scale: float, seed: int, key: bytes,
             progress: Progress = _quiet) -> SimulationSummary:
    """Run the whole program on an empty database; returns what happened, in counts."""
    if not 0.0005 <= scale <= 1.0:
        raise ValueError("scale must be between 0.0005 and 1.0")
    rng = random.Random(seed)
    out = SimulationSummary(seed=seed, scale=scale)
    spec = parse_program_spec(scn["program"])
    voucher_p = next(p for p in spec.products if p.kind == "consumption")
    card_p = next((p for p in spec.products if p.kind == "tourism_card"), None)
    tz = scenario_zone(scn)
    start = _wall(clock.local_date(voucher_p.valid_from, tz), time(9), tz)

    with db.session() as s:
        create_program(s, spec=spec)
        fed = _federations(s, scn)
    plans = plan_unions(scn, scale=scale, rng=rng)
    out.unions = len(plans)
    with db.session() as s:
        ids = add_unions(s, [(fed[u.parent_code], u.name, u.uscc, u.unit_type) for u in plans])
    union_id = {u.index: ids[u.uscc] for u in plans}

    people = People(rng, scn["scenario"]["province_code"])
    tick = progress("members", sum(u.size for u in plans))
    chunk: list = []
    for u in plans:
        chunk += [(0, m) for m in people.members(u)]
        if len(chunk) >= 50_000 or u is plans[-1]:
            with db.session() as s:
                out.members += add_members(s, chunk, key=key)[0]
            tick(len(chunk))
            chunk = []
    del people
    db.analyze("member")

    with db.session() as s:
        out.merchants = add_merchants(s, list(enumerate(plan_merchants(scn, scale=scale, rng=rng), 1)))

    funding = plan_funding(scn, plans, rng=rng)
    _deposit(db, scn, plans, funding, union_id, voucher_p, card_p, seed, progress,
             when=clock.local_date(start, tz) - timedelta(days=6))
    _issue(db, plans, funding, union_id, spec.key, seed, start, out, progress)
    db.analyze("voucher", "entitlement", "transfer", "account")
    _spend(db, scn, spec.key, seed, out, progress,
           home_of={union_id[u.index]: u.home_county for u in plans})
    return out


def scenario_zone(scn: dict):
    """The zone the scenario's dates and times are in."""
    return clock.zone(scn.get("scenario", {}).get("timezone"))


def _wall(day: date, at: time, tz) -> datetime:
    """Local wall time ``at`` on ``day`` in ``tz``, as naive UTC."""
    return clock.to_utc(datetime.combine(day, at), tz=tz)


def _federations(s, scn: dict) -> dict[str, int]:
    info = scn["scenario"]
    prov = create_org(s, level="province", name=info["federation_name"],
                      division_code=info["province_code"])
    fed = {info["province_code"]: prov.id}
    for c in scn["cities"]:
        fed[c["code"]] = create_org(s, level="city", name=c["federation_name"],
                                    division_code=c["code"], parent_id=prov.id).id
    for c in scn["counties"]:
        fed[c["code"]] = create_org(s, level="county", name=f"{c['name']}总工会",
                                    division_code=c["code"], parent_id=fed[c["city"]]).id
    return fed


def _deposit(db, scn, plans, funding, union_id, voucher_p, card_p, seed, progress, when) -> None:
    """Each union's fund before the program: dues and fiscal money, as the model says."""
    voucher_fen = sum(voucher_p.denominations_fen)
    card_fen = sum(card_p.denominations_fen) if card_p else 0
    sources = scn["funding"]["sources"]
    tick = progress("deposits", len(plans))
    for i in range(0, len(plans), 2000):
        items = []
        for u in plans[i : i + 2000]:
            f = funding[u.index]
            need = u.size * voucher_fen + f.tourism_cards * card_fen
            total = math.ceil(need * f.fund_ratio)
            dues = total * round(sources["dues"] * 100) // 100
            items += [(union_id[u.index], amount, source,
                       f"sim:{seed}:deposit:{u.index}:{source}")
                      for source, amount in (("dues", dues), ("fiscal", total - dues)) if amount]
        db.run(deposit_many, items=items, memo=f"{when:%Y-%m-%d}")
        tick(len(plans[i : i + 2000]))


def _issue(db, plans, funding, union_id, program, seed, start, out, progress) -> None:
    tick = progress("issuance", len(plans))
    for u in plans:
        f = funding[u.index]
        uid = union_id[u.index]
        r = db.run(issue, union_id=uid, program=program, form=f.form,
                   mode="partial" if f.partial_mode else "all_or_nothing",
                   idem_key=f"sim:{seed}:issue:{u.index}", actor="simulator", now=start)
        out.issuances[r.issuance.status] = out.issuances.get(r.issuance.status, 0) + 1
        out.vouchers += r.issuance.vouchers_issued
        if f.tourism_cards and r.issuance.status == "completed":
            with db.session() as s:
                members = s.execute(  # all active members got a voucher: the issue completed
                    select(Member.id).where(Member.union_id == uid, Member.status == "active")
                    .order_by(Member.id)
                ).scalars().all()
            chosen = sorted(random.Random(seed * 1_000_003 + u.index).sample(
                members, f.tourism_cards))
            card = db.run(issue, union_id=uid, program=program, products=["tourism-card"],
                          member_ids=chosen, form="digital",
                          idem_key=f"sim:{seed}:cards:{u.index}", actor="simulator", now=start)
            out.tourism_cards += card.issuance.vouchers_issued
        tick(1)


def _spend(db, scn, program, seed, out, progress, *, home_of: dict[int, str]) -> None:
    ext = scn["extension"]
    tz = scenario_zone(scn)
    ext_at = clock.to_utc(ext["decided_at"], field="extension.decided_at", tz=tz)
    new_expires_at = clock.to_utc(ext["new_expires_at"], field="extension.new_expires_at", tz=tz)
    with db.session() as s:
        prog_products = {p.kind: p for p in products_of(s, _program_id(s, program))}
        voucher_p: Product = prog_products["consumption"]
        merchants = [MerchantInfo(m.id, m.county_code, m.category)
                     for m in s.execute(select(Merchant).order_by(Merchant.id)).scalars()]
        vouchers = s.execute(
            select(Voucher.code, Voucher.amount_fen, Voucher.form, Voucher.union_id)
            .where(Voucher.product_id == voucher_p.id).order_by(Voucher.id)
        ).all()
    first_day = clock.local_date(voucher_p.valid_from, tz)
    expiry_day = clock.local_date(voucher_p.expires_at, tz)
    deadline = expiry_day - timedelta(days=1)  # last day to spend
    new_deadline = clock.local_date(new_expires_at, tz) - timedelta(days=1)
    model = SpendingModel(scn, merchants, random.Random(seed + 1), (first_day, deadline),
                          (deadline + timedelta(days=1), new_deadline))
    by_day: dict[date, list] = {}
    for code, amount, form, uid in vouchers:
        sp = model.spend(code=code, amount_fen=amount, form=form, home=home_of[uid],
                         extended=form == ext["form"])
        if sp is not None:
            by_day.setdefault(sp.day, []).append(sp)
    out.spends_planned = sum(len(v) for v in by_day.values())
    del vouchers
    # Millions of long-lived plan objects: keep the cyclic GC from re-walking them after
    # every few batches (at full scale that cost more than the redemptions themselves).
    gc.freeze()
    try:
        tick = progress("spending", out.spends_planned)
        day = first_day
        while day <= new_deadline + timedelta(days=1):
            midnight = clock.start_of_day(day, tz)
            if day.weekday() == scn["settlement"]["weekday"] and day > first_day:
                db.run(settle, cutoff=midnight, idem_key=f"sim:{seed}:settle:{day}", now=midnight)
                out.settlement_runs += 1
            if day == expiry_day:
                out.expired += db.run(expire, as_of=midnight, idem_key=f"sim:{seed}:expire:{day}",
                                      now=midnight).run.vouchers_expired
            if clock.local_date(ext_at, tz) == day:
                out.extended = db.run(
                    extend, program=program, new_expires_at=new_expires_at,
                    form=ext["form"], actor=ext["actor"], reason=ext["reason"],
                    document=ext["reason"], idem_key=f"sim:{seed}:extend", now=ext_at,
                ).extension.vouchers_extended
            todays = by_day.get(day, [])
            for i in range(0, len(todays), BATCH):
                part = todays[i : i + BATCH]
                when = _wall(day, time(12), tz)
                r = db.run(redeem_batch, requests=[
                    SpendRequest(code=sp.voucher_code, merchant_id=sp.merchant_id,
                                 order_amount_fen=sp.order_amount_fen,
                                 idem_key=f"sim:{seed}:spend:{sp.voucher_code}")
                    for sp in part], batch_key=f"sim:{seed}:{day}:{i}", now=when)
                out.redeemed += r.redeemed
                for _, code in r.refused:
                    out.refused[code] = out.refused.get(code, 0) + 1
                tick(len(part))
            day += timedelta(days=1)
        end = new_expires_at
        out.expired += db.run(expire, as_of=end, idem_key=f"sim:{seed}:expire:final", now=end
                              ).run.vouchers_expired
        db.run(settle, cutoff=end, idem_key=f"sim:{seed}:settle:final", now=end)
        out.settlement_runs += 1
    finally:
        gc.unfreeze()


def _program_id(s, key: str) -> int:
    from civicvoucher.programs.models import Program

    return s.execute(select(Program.id).where(Program.key == key)).scalar_one()
