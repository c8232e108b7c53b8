"""A small program with known figures, built through the real services, for report tests.

    山西省总工会 (140000) ── union P (2 members, digital, funded 600 → 2 x 300 issued)
    └── 太原市总工会 (140100) ── union Y (2 members, paper, funded 300, partial → 1 issued)
        ├── 小店区总工会 (140105) ── union A (3 members, digital, 900 → 3 issued; + 3 tourism cards)
        │                        └── union B (2 members, no funds → refused, nothing issued)
        └── 迎泽区总工会 (140106) ── union C (2 members, paper, 600 → 2 issued)

    expected  province 600   city 600   county 2,100   total 3,300 yuan
    issued    province 600 D city 300 P county 900 D + 600 P   total 2,400 (digital 1,500)

    redemptions (posted):        voucher  order
      P#1 digital  超市 day 1      300     400
      A#1 digital  饭店 day 1      300     500
      A#2 digital  超市 day 2      300     300
      C#1 paper    超市 day 2      300     360
    then expiry at 2020-07-11: P#2, A#3 (digital), Y#1, C#2 (paper) → 4 x 300 breakage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from civicvoucher.db import Database
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.orgs.service import create_org
from civicvoucher.programs.models import Product
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.lifecycle import expire
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import redeem
from tests.world import SECRET, T0, World, build_world, fund, make_id, make_uscc, program_spec

DAY2 = T0 + timedelta(days=1)
EXPIRY = datetime(2020, 7, 11)
# Counties of the world by guarantee group; two listed counties have no unions in it.
GUARANTEE = {"140105": 1.0, "140106": 0.3, "140107": 0.0, "140108": 0.7}


@dataclass
class ReportWorld:
    world: World
    union_p: int = 0
    union_y: int = 0
    redemptions: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.world.db.url


def voucher_codes(db: Database, union_id: int, product_key: str = "voucher") -> list[str]:
    """Codes of a union's vouchers of one product, in issue order."""
    with db.session() as s:
        q = (select(Voucher.code).join(Product, Product.id == Voucher.product_id)
             .where(Voucher.union_id == union_id, Product.key == product_key)
             .order_by(Voucher.id))
        return list(s.execute(q).scalars())


def build_report_world(db: Database, *, expire_rest: bool = True) -> ReportWorld:
    w = build_world(db, program=program_spec(tourism=True))
    rw = ReportWorld(w)
    with db.session() as s:
        rw.union_p = create_org(s, level="union", name="union P", uscc=make_uscc(11),
                                unit_type="administrative", parent_id=w.province).id
        rw.union_y = create_org(s, level="union", name="union Y", uscc=make_uscc(12),
                                unit_type="enterprise", parent_id=w.city).id
        rows = [
            (i, MemberRow(name=f"成员{n}", id_number=make_id(n, "140100"), phone=None,
                          union=make_uscc(u), status=MemberStatus.ACTIVE))
            for i, (n, u) in enumerate([(201, 11), (202, 11), (203, 12), (204, 12)], start=1)
        ]
        add_members(s, rows, key=SECRET)
    fund(w, rw.union_p, 600)
    fund(w, rw.union_y, 300)
    fund(w, w.union_a, 900 + 600)
    fund(w, w.union_c, 600)
    with db.session() as s:
        issue(s, union_id=rw.union_p, program=w.program, idem_key="ip", now=T0)
        issue(s, union_id=rw.union_y, program=w.program, idem_key="iy", form="paper",
              mode="partial", now=T0)
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia", now=T0)
        issue(s, union_id=w.union_a, program=w.program, idem_key="ia-t", products=["tourism"],
              now=T0)
        issue(s, union_id=w.union_b, program=w.program, idem_key="ib", now=T0)
        issue(s, union_id=w.union_c, program=w.program, idem_key="ic", form="paper", now=T0)
    shop, diner = w.merchants["超市"], w.merchants["饭店"]
    p, a, c = (voucher_codes(db, u) for u in (rw.union_p, w.union_a, w.union_c))
    for key, code, merchant, order, now in (
        ("p1", p[0], shop, 40000, T0),
        ("a1", a[0], diner, 50000, T0),
        ("a2", a[1], shop, 30000, DAY2),
        ("c1", c[0], shop, 36000, DAY2),
    ):
        r = db.run(redeem, code=code, merchant_id=merchant, order_amount_fen=order,
                   idem_key=key, now=now)
        rw.redemptions[key] = r.redemption.id
    if expire_rest:
        db.run(expire, as_of=EXPIRY, idem_key="x1", now=EXPIRY)
    return rw
