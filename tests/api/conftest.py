"""An API world: the integration world (tests/world.py) plus a second province that nobody in
the first may see, a user of every role, and vouchers issued on both sides.

    山西 140000 ── 太原 140100 ── 小店 140105 ── union A (members 1-3), union B
                               └─ 迎泽 140106 ── union C
    内蒙古 150000 ── union X (member 8)          merchant M4 in 150102 (outside everyone)
    users: province_admin@140000, city_admin@140100, county_admin@140105, union_admin@A,
           merchant_admin@超市, cashier@超市, auditor@140100, analyst@140105, channel, member 1
"""

from __future__ import annotations

import copy
import shutil
import uuid
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from civicvoucher.api.app import create_app
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.auth.tokens import issue_token
from civicvoucher.core import clock
from civicvoucher.funds.service import deposit
from civicvoucher.members.models import Member
from civicvoucher.members.rules import MemberRow, MemberStatus
from civicvoucher.members.service import add_members
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
from civicvoucher.merchants.service import add_merchants
from civicvoucher.orgs.service import create_org
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.conftest import settle_sqlite
from tests.world import SECRET, T0, World, build_world, make_id, make_uscc, program_spec


@pytest.fixture(autouse=True)
def frozen_clock():
    """The world's program runs in 2020: the API's clock (tokens, keys, QR) stands at T0."""
    clock.set_clock(lambda: T0)
    yield
    clock.set_clock(None)


@dataclass
class ApiWorld:
    w: World
    client: TestClient
    tokens: dict[Role, str] = field(default_factory=dict)
    province2: int = 0
    union_x: int = 0
    member_in: int = 0  # member 1, of union A; the member user
    member_out: int = 0  # of union X
    merchant_in: int = 0  # 超市 in 140105
    merchant_out: int = 0  # M4 in 150102
    codes_in: list[str] = field(default_factory=list)  # union A's vouchers, spendable at 超市
    codes_out: list[str] = field(default_factory=list)  # union X's vouchers, spendable at M4
    voucher_ids_in: list[int] = field(default_factory=list)
    voucher_ids_out: list[int] = field(default_factory=list)
    channel_secret: str = ""

    @property
    def db(self):
        return self.w.db

    def call(self, method: str, path: str, role: Role | None = None, *, key: str | None = "new",
             token: str | None = None, lang: str = "en", **kw):
        headers = dict(kw.pop("headers", {}) or {})
        tok = token or (self.tokens[role] if role is not None else None)
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        if key == "new":
            key = str(uuid.uuid4())
        if key and method.upper() != "GET":
            headers["Idempotency-Key"] = key
        headers.setdefault("Accept-Language", lang)
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kw)


BINDINGS = {
    Role.PROVINCE_ADMIN: ("org", "province"), Role.CITY_ADMIN: ("org", "city"),
    Role.COUNTY_ADMIN: ("org", "county_a"), Role.UNION_ADMIN: ("org", "union_a"),
    Role.AUDITOR: ("org", "city"), Role.ANALYST: ("org", "county_a"),
    Role.MERCHANT_ADMIN: ("merchant", "超市"), Role.CASHIER: ("merchant", "超市"),
    Role.CHANNEL: (None, None), Role.MEMBER: ("member", None),
}


def build_api_world(db, *, limits: Limits | None = None) -> ApiWorld:
    from civicvoucher.keys import bind_sealing

    bind_sealing(db, SECRET)  # channel users made below are sealed under the app's key
    w = build_world(db, program=program_spec(channels=("offline", "online")))
    aw = ApiWorld(w, client=None)  # type: ignore[arg-type]
    with db.session() as s:
        p2 = create_org(s, level="province", name="内蒙古总工会", division_code="150000")
        ux = create_org(s, level="union", name="union X", uscc=make_uscc(50),
                        unit_type="enterprise", parent_id=p2.id)
        aw.province2, aw.union_x = p2.id, ux.id
        add_members(s, [(1, MemberRow(name="外省", id_number=make_id(900, "150102"), phone=None,
                                      union=make_uscc(50), status=MemberStatus.ACTIVE))],
                    key=SECRET)
        add_merchants(s, [(1, MerchantRow(
            uscc=make_uscc(104), name="外省超市", mcc="5411", category=category_for_mcc("5411"),
            county_code="150102", channels=(Channel.OFFLINE, Channel.ONLINE),
            status=MerchantStatus.ACTIVE))])
        aw.merchant_in = w.merchants["超市"]
        aw.merchant_out = s.execute(select(Merchant.id).where(Merchant.name == "外省超市")).scalar()
        aw.member_in = s.execute(select(Member.id).where(Member.union_id == w.union_a)
                                 .order_by(Member.id)).scalars().first()
        aw.member_out = s.execute(select(Member.id).where(Member.union_id == ux.id)).scalar()
        for org in (w.union_a, ux.id):
            deposit(s, org_id=org, amount_fen=1_000_000, source="dues", idem_key=f"seed-{org}")
            issue(s, union_id=org, program=w.program, idem_key=f"seed-issue-{org}", now=T0)
        anchors = {"province": w.province, "city": w.city, "county_a": w.county_a,
                   "union_a": w.union_a}
        for role, (kind, ref) in BINDINGS.items():
            kw = {}
            if kind == "org":
                kw["org_id"] = anchors[ref]
            elif kind == "merchant":
                kw["merchant_id"] = w.merchants[ref]
            elif kind == "member":
                kw["member_id"] = aw.member_in
            if role is Role.MEMBER:  # token-only, standing for a member who activated
                kw["origin"] = "self"
            new = create_user(s, username=f"u-{role}", role=role, password=None,
                              **kw)
            if role is Role.CHANNEL:
                aw.channel_secret = new.channel_secret or ""
            aw.tokens[role], _ = issue_token(s, user_id=new.user.id, kind="api", ttl=None)
        for union, codes, vids in ((w.union_a, aw.codes_in, aw.voucher_ids_in),
                                   (ux.id, aw.codes_out, aw.voucher_ids_out)):
            for v in s.execute(select(Voucher).where(Voucher.union_id == union)
                               .order_by(Voucher.id)).scalars():
                codes.append(v.code)
                vids.append(v.id)
    app = create_app(db, secret_key=SECRET, limits=limits)
    aw.client = TestClient(app, raise_server_exceptions=False)
    return aw


@pytest.fixture(scope="session")
def _sqlite_api_world(tmp_path_factory, _sqlite_template):
    """The API world built once per worker on SQLite: its file and what the builder learnt
    (ids, tokens, codes), for ``api`` to copy. Built at T0, as ``frozen_clock`` has it."""
    from civicvoucher.db import Database

    path = tmp_path_factory.mktemp("api-world") / "api.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    before = clock._now  # the test that asked first may have its own clock: given back
    clock.set_clock(lambda: T0)
    try:
        aw = build_api_world(db)
    finally:
        clock.set_clock(before)
    aw.client.close()
    db.dispose()
    settle_sqlite(path)
    aw.client, aw.w.db = None, None  # type: ignore[assignment]
    return path, aw


@pytest.fixture
def api(db, request):
    """A fresh API world on each database. On SQLite, a copy of the one the worker built
    (building it takes a second; the copy holds the same rows, so the same ids, tokens and
    codes), with its own Database, keyring and app; on PostgreSQL, built anew."""
    if db.dialect == "sqlite":
        path, template = request.getfixturevalue("_sqlite_api_world")
        db.dispose()
        shutil.copyfile(path, db.engine.url.database)
        aw = copy.deepcopy(template)
        aw.w.db = db
        from civicvoucher.keys import bind_sealing

        bind_sealing(db, SECRET)
        aw.client = TestClient(create_app(db, secret_key=SECRET), raise_server_exceptions=False)
    else:
        aw = build_api_world(db)
    yield aw
    aw.client.close()


def books_ok(db) -> None:
    from civicvoucher.reconcile import verify

    with db.session() as s:
        assert verify(s) == []
