"""A program of ~100k vouchers, built through the real services, for the report's speed test.

One province, one city, ``counties`` counties; ``unions`` grassroots unions spread over the
three levels, each with ``members_per_union`` members who each get ``denominations`` (six 50-yuan
vouchers by default), alternately digital and paper; the first ``redemptions`` vouchers are
spent through ``redeem`` at a handful of merchants.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from stdnum.cn import ric

from civicvoucher.db import Database
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
from civicvoucher.merchants.service import add_merchants
from civicvoucher.orgs.service import create_org
from civicvoucher.programs.service import create_program
from civicvoucher.programs.spec import parse_program_spec
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.redemption import redeem
from tests.analytics.world import voucher_codes
from tests.world import SECRET, T0, fund, make_uscc, program_spec

MCCS = ("5411", "5812", "5912", "5311", "5541")


def person_id(n: int) -> str:
    """A valid, unique 18-digit resident ID for person ``n`` (n < 36.5 million)."""
    born = date(1960, 1, 1) + timedelta(days=n // 1000)
    body = f"140105{born:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body)


def build_big_world(db: Database, *, unions: int, members_per_union: int, redemptions: int,
                    denominations: tuple[int, ...] = (50,) * 6, counties: int = 4) -> None:
    from tests.world import World

    with db.session() as s:
        prov = create_org(s, level="province", name="山西省总工会", division_code="140000").id
        city = create_org(s, level="city", name="太原市总工会", division_code="140100",
                          parent_id=prov).id
        parents = [prov, city] + [
            create_org(s, level="county", name=f"县{i}", division_code=f"1401{i + 5:02d}",
                       parent_id=city).id
            for i in range(counties)
        ]
        union_ids = []
        for u in range(unions):
            org = create_org(s, level="union", name=f"union {u}", uscc=make_uscc(1000 + u),
                             unit_type="enterprise", parent_id=parents[u % len(parents)])
            union_ids.append(org.id)
        rows = [
            (n + 1, MemberRow(name=f"成员{n}", id_number=person_id(n), phone=None,
                              union=make_uscc(1000 + n // members_per_union),
                              status=MemberStatus.ACTIVE))
            for n in range(unions * members_per_union)
        ]
        add_members(s, rows, key=SECRET)
        add_merchants(s, [
            (i + 1, MerchantRow(uscc=make_uscc(5000 + i), name=f"商户{i}", mcc=mcc,
                                category=category_for_mcc(mcc), county_code="140105",
                                channels=(Channel.OFFLINE,), status=MerchantStatus.ACTIVE))
            for i, mcc in enumerate(MCCS)
        ])
        merchants = list(s.execute(select(Merchant.id).order_by(Merchant.id)).scalars())
        spec = parse_program_spec(program_spec(denominations=denominations))
        create_program(s, spec=spec)
    w = World(db)
    for u in union_ids:
        fund(w, u, sum(denominations) * members_per_union, key=f"fund-{u}")
        with db.session() as s:
            issue(s, union_id=u, program=spec.key, idem_key=f"i{u}",
                  form="digital" if u % 2 == 0 else "paper", now=T0)
    done = 0
    for u in union_ids:
        for code in voucher_codes(db, u):
            if done >= redemptions:
                return
            db.run(redeem, code=code, merchant_id=merchants[done % len(merchants)],
                   order_amount_fen=5000 + (done % 7) * 1000, idem_key=f"r{done}",
                   now=T0 + timedelta(days=done % 60, hours=done % 9))
            done += 1
