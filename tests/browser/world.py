"""The browser tests' world: tests/world.py's organisations, members and merchants, a program
that is running *now* (the live server keeps the real clock: a frozen one would be
process-wide and other tests in the same worker reset it), funds and vouchers for union A,
and one login of every person-facing role with a known password.

    山西 140000 ── 太原 140100 ── 小店 140105 ── union A (members 1-3, vouchers), union B
                               └─ 迎泽 140106 ── union C
    merchants: 超市 (140105, offline+online), 饭店 (140106), 药店 (140105, suspended)

The member's login is made as the real one is: the user is created without a password
(``invited``), an activation code is drawn (``credentials.invite``), and the member sets the
password through ``POST /api/v1/auth/activate`` on the running server (``activate_member``,
called by the live-server fixture once the server answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from civicvoucher.auth import credentials
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.funds.service import deposit
from civicvoucher.members.models import Member
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Voucher
from tests.world import SECRET, World, build_world, program_spec

# Who can log in, and to what each is bound (an anchor of World, or the member/merchant).
ROLES: dict[Role, tuple[str, str | None]] = {
    Role.PROVINCE_ADMIN: ("org", "province"),
    Role.CITY_ADMIN: ("org", "city"),
    Role.COUNTY_ADMIN: ("org", "county_a"),
    Role.UNION_ADMIN: ("org", "union_a"),
    Role.MERCHANT_ADMIN: ("merchant", "超市"),
    Role.CASHIER: ("merchant", "超市"),
    Role.AUDITOR: ("org", "city"),
    Role.ANALYST: ("org", "county_a"),
    Role.MEMBER: ("member", None),
}


def password_for(role: Role) -> str:
    """Known, distinct, long enough (10+ characters)."""
    return f"browser-{role.value.replace('_', '-')}-pw"


@dataclass(frozen=True)
class Account:
    role: Role
    username: str
    password: str
    user_id: int
    org_id: int | None = None
    merchant_id: int | None = None
    member_id: int | None = None


@dataclass
class BrowserWorld:
    w: World
    accounts: dict[Role, Account] = field(default_factory=dict)
    voucher_codes: list[str] = field(default_factory=list)  # union A's, spendable at 超市
    member_activation_code: str = ""  # used once by activate_member; kept for a re-run's test

    def __getitem__(self, role: Role | str) -> Account:
        return self.accounts[Role.parse(role) if isinstance(role, str) else role]


def build_browser_world(db: Database) -> BrowserWorld:
    from civicvoucher.keys import bind_sealing

    bind_sealing(db, SECRET)
    today = clock.to_local(clock.now()).date()
    start, end = today - timedelta(days=7), today + timedelta(days=90)
    w = build_world(db, program=program_spec(
        channels=("offline", "online"), valid_from=f"{start.isoformat()}T00:00:00",
        expires_at=f"{end.isoformat()}T00:00:00"))
    bw = BrowserWorld(w)
    with db.session() as s:
        deposit(s, org_id=w.union_a, amount_fen=1_000_000, source="dues", idem_key="browser-seed")
        issue(s, union_id=w.union_a, program=w.program, idem_key="browser-seed-issue")
        member_id = s.execute(select(Member.id).where(Member.union_id == w.union_a)
                              .order_by(Member.id)).scalars().first()
        anchors = {"province": w.province, "city": w.city, "county_a": w.county_a,
                   "union_a": w.union_a}
        for role, (kind, ref) in ROLES.items():
            kw: dict[str, int] = {}
            if kind == "org":
                kw["org_id"] = anchors[ref]
            elif kind == "merchant":
                kw["merchant_id"] = w.merchants[ref]
            else:
                kw["member_id"] = member_id
            username = role.value.replace("_", "-")
            if role is Role.MEMBER:  # invited: the member sets the password (activate_member)
                new = create_user(s, username=username, role=role, **kw)
                inv = credentials.invite(s, user_id=new.user.id,
                                         key=credentials.activation_key(SECRET))
                bw.member_activation_code = credentials.format_code(inv.code)
            else:
                new = create_user(s, username=username, role=role, password=password_for(role),
                                  **kw)
            bw.accounts[role] = Account(role, username, password_for(role), new.user.id, **kw)
        bw.voucher_codes = list(s.execute(select(Voucher.code).where(
            Voucher.union_id == w.union_a).order_by(Voucher.id)).scalars())
    return bw


def activate_member(base_url: str, bw: BrowserWorld) -> None:
    """The member sets their own password with the code, over HTTP, as they would."""
    import httpx

    acct = bw.accounts[Role.MEMBER]
    r = httpx.post(f"{base_url}/api/v1/auth/activate", headers={"Accept-Language": "en"},
                   json={"username": acct.username, "code": bw.member_activation_code,
                         "password": acct.password}, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"member activation failed: {r.status_code} {r.text}")
