"""A small, real world for integration tests: one province, two counties, a few unions.

    山西省总工会 (140000)
    └── 太原市总工会 (140100)
        ├── 小店区总工会 (140105) ── union A (administrative), union B (enterprise)
        └── 迎泽区总工会 (140106) ── union C (enterprise)
    merchants: M1 supermarket in 140105 (offline, online), M2 restaurant in 140106 (offline),
               M3 pharmacy in 140105, suspended
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from stdnum.cn import uscc

from civicvoucher.db import Database
from civicvoucher.funds.service import deposit
from civicvoucher.members.rules import MemberRow, MemberStatus, with_ric_check
from civicvoucher.members.service import add_members
from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
from civicvoucher.merchants.service import add_merchants
from civicvoucher.orgs.service import create_org
from civicvoucher.programs.service import create_program
from civicvoucher.programs.spec import parse_program_spec

SECRET = b"test-secret-key"
T0 = datetime(2020, 5, 1, 10, 0)


def make_uscc(n: int) -> str:
    body = f"91140100{n:09d}"[:17]
    return body + uscc.calc_check_digit(body)


def make_id(n: int, area: str = "140105") -> str:
    body = f"{area}1998{(n % 12) + 1:02d}{(n % 28) + 1:02d}{n % 1000:03d}"
    return with_ric_check(body)


def program_spec(key: str = "p2020", *, denominations=(300,), threshold=0, channels=("offline",),
                 scope="province", valid_from="2020-04-26T00:00:00",
                 expires_at="2020-07-11T00:00:00", tourism=False) -> dict:
    cats = ["daily_goods", "grain_produce", "supermarket_fuel", "hotel_dining", "other"]
    products = [dict(key="voucher", kind="consumption", name="消费券",
                     denominations_yuan=list(denominations), threshold_yuan=threshold,
                     categories=cats, channels=list(channels), region_scope=scope,
                     valid_from=datetime.fromisoformat(valid_from),
                     expires_at=datetime.fromisoformat(expires_at))]
    if tourism:
        products.append(dict(key="tourism", kind="tourism_card", name="旅游年卡",
                             denominations_yuan=[200], categories=["hotel_dining"],
                             channels=["offline", "online"], optional=True,
                             valid_from=datetime.fromisoformat(valid_from),
                             expires_at=datetime(2021, 4, 26)))
    return dict(key=key, name=f"program {key}", documents=["通知"], products=products)


@dataclass
class World:
    db: Database
    province: int = 0
    city: int = 0
    county_a: int = 0
    county_b: int = 0
    union_a: int = 0
    union_b: int = 0
    union_c: int = 0
    union_uscc: dict[str, str] = field(default_factory=dict)
    merchants: dict[str, int] = field(default_factory=dict)
    program: str = "p2020"


def build_world(db: Database, *, members=(3, 2, 2), program: dict | None = None) -> World:
    w = World(db)
    with db.session() as s:
        w.province = create_org(s, level="province", name="山西省总工会", division_code="140000").id
        w.city = create_org(s, level="city", name="太原市总工会", division_code="140100",
                            parent_id=w.province).id
        w.county_a = create_org(s, level="county", name="小店区总工会", division_code="140105",
                                parent_id=w.city).id
        w.county_b = create_org(s, level="county", name="迎泽区总工会", division_code="140106",
                                parent_id=w.city).id
        for i, (name, parent, unit) in enumerate(
            [("A", w.county_a, "administrative"), ("B", w.county_a, "enterprise"),
             ("C", w.county_b, "enterprise")], start=1,
        ):
            code = make_uscc(i)
            org = create_org(s, level="union", name=f"union {name}", uscc=code,
                             unit_type=unit, parent_id=parent)
            setattr(w, f"union_{name.lower()}", org.id)
            w.union_uscc[name] = code
        rows, n = [], 0
        for name, count in zip("ABC", members, strict=True):
            for _ in range(count):
                n += 1
                rows.append((n, MemberRow(name=f"成员{n}", id_number=make_id(n), phone=None,
                                          union=w.union_uscc[name], status=MemberStatus.ACTIVE)))
        add_members(s, rows, key=SECRET)
        mrows = [
            (1, MerchantRow(uscc=make_uscc(101), name="超市", mcc="5411",
                            category=category_for_mcc("5411"), county_code="140105",
                            channels=(Channel.OFFLINE, Channel.ONLINE), status=MerchantStatus.ACTIVE)),
            (2, MerchantRow(uscc=make_uscc(102), name="饭店", mcc="5812",
                            category=category_for_mcc("5812"), county_code="140106",
                            channels=(Channel.OFFLINE,), status=MerchantStatus.ACTIVE)),
            (3, MerchantRow(uscc=make_uscc(103), name="药店", mcc="5912",
                            category=category_for_mcc("5912"), county_code="140105",
                            channels=(Channel.OFFLINE,), status=MerchantStatus.SUSPENDED)),
        ]
        add_merchants(s, mrows)
        from sqlalchemy import select

        from civicvoucher.merchants.models import Merchant

        for m in s.execute(select(Merchant)).scalars():
            w.merchants[m.name] = m.id
        spec = parse_program_spec(program or program_spec())
        w.program = spec.key
        create_program(s, spec=spec)
    return w


def fund(w: World, org_id: int, yuan: int, key: str | None = None) -> None:
    with w.db.session() as s:
        deposit(s, org_id=org_id, amount_fen=yuan * 100, source="dues",
                idem_key=key or f"fund-{org_id}-{random.random()}")


def run_cli(db: Database, monkeypatch, *args: object):
    """Run the ``civicvoucher`` command in-process against ``db``, as a user would type it
    (its cached settings and database are cleared before and after)."""
    from typer.testing import CliRunner

    from civicvoucher.cli import common
    from civicvoucher.cli.main import app

    monkeypatch.setenv("CIVICVOUCHER_DATABASE_URL", db.url)
    monkeypatch.setenv("CIVICVOUCHER_SECRET_KEY", SECRET.decode())
    monkeypatch.setenv("COLUMNS", "200")
    common.settings.cache_clear()
    common.database.cache_clear()
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        common.database().dispose()
        common.settings.cache_clear()
        common.database.cache_clear()
