"""The one place that decides scope: which organisations, merchants, members and vouchers a
principal may see or act on. Routes ask here; nothing else compares paths or ids.

An organisation role (admins, auditor, analyst) sees its organisation's subtree: the
materialised path '/1/4/19/' makes that one prefix test. Merchants are placed in the tree by
their county code: a federation sees merchants whose county lies in its region. Merchant
roles see their own merchant; a member sees their own vouchers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from civicvoucher.auth.errors import OutOfScope
from civicvoucher.auth.roles import ADMIN_LEVEL, MERCHANT_ROLES, ORG_ROLES, Role
from civicvoucher.core.regions import region_prefix
from civicvoucher.i18n import msg
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved once per request from the bearer token."""

    user_id: int
    username: str
    role: Role
    org_id: int | None = None
    org_path: str | None = None  # '/1/4/' for org roles
    org_level: str | None = None
    region: str | None = None  # division-code prefix of the org's region: '14', '1401'
    merchant_id: int | None = None
    member_id: int | None = None
    token_id: int | None = None

    @property
    def scope_label(self) -> str:
        if self.org_path is not None:
            return f"org:{self.org_path}"
        if self.merchant_id is not None:
            return f"merchant:{self.merchant_id}"
        if self.member_id is not None:
            return f"member:{self.member_id}"
        return "none"


def region_of(org: Org) -> str:
    """Division-code prefix of the org's region ('140105' county, '1401' city, '14' province)."""
    return region_prefix(org.region_code, "county")


# --- organisations -------------------------------------------------------------------------

def org_in_scope(p: Principal, org: Org) -> bool:
    return p.role in ORG_ROLES and p.org_path is not None and org.path.startswith(p.org_path)


def require_org(p: Principal, org: Org) -> Org:
    if not org_in_scope(p, org):
        raise OutOfScope(msg("organisation {id} is outside your scope", id=org.id),
                         target=f"org:{org.id}")
    return org


def org_path_condition(p: Principal, path_col) -> ColumnElement[bool]:
    """SQL condition: ``path_col`` (an Org.path) is inside the principal's subtree."""
    if p.role in ORG_ROLES and p.org_path:
        return path_col.startswith(p.org_path)
    return false()


def scoped_root(session: Session, p: Principal, org_id: int | None) -> Org:
    """The subtree a list is asked for: the given org (which must be in scope) or the
    principal's own organisation."""
    from civicvoucher.orgs.service import get_org

    org = get_org(session, org_id if org_id is not None else p.org_id)  # type: ignore[arg-type]
    return require_org(p, org)


# --- merchants -----------------------------------------------------------------------------

def merchant_in_scope(p: Principal, merchant: Merchant) -> bool:
    if p.role in MERCHANT_ROLES:
        return p.merchant_id == merchant.id
    if p.role in ORG_ROLES and p.region is not None and p.role is not Role.UNION_ADMIN:
        return merchant.county_code.startswith(p.region)
    return False


def require_merchant(p: Principal, merchant: Merchant) -> Merchant:
    if not merchant_in_scope(p, merchant):
        raise OutOfScope(msg("merchant {id} is outside your scope", id=merchant.id),
                         target=f"merchant:{merchant.id}")
    return merchant


def county_in_scope(p: Principal, county_code: str) -> bool:
    """May this principal register a merchant in ``county_code``?"""
    return (p.role in ADMIN_LEVEL and p.role is not Role.UNION_ADMIN and p.region is not None
            and county_code.startswith(p.region))


def merchant_condition(p: Principal, merchant_col, county_col) -> ColumnElement[bool]:
    if p.role in MERCHANT_ROLES:
        return merchant_col == p.merchant_id
    if p.role in ORG_ROLES and p.region and p.role is not Role.UNION_ADMIN:
        return county_col.startswith(p.region)
    return false()


# --- members, vouchers, redemptions --------------------------------------------------------

def require_member(session: Session, p: Principal, member: Member) -> Member:
    if p.role is Role.MEMBER and p.member_id == member.id:
        return member
    union = session.get(Org, member.union_id)
    if union is None or not org_in_scope(p, union):
        raise OutOfScope(msg("member {id} is outside your scope", id=member.id),
                         target=f"member:{member.id}")
    return member


def require_union_id(session: Session, p: Principal, union_id: int) -> Org:
    from civicvoucher.orgs.service import get_org

    return require_org(p, get_org(session, union_id))


def redemption_condition(p: Principal, union_path_col, merchant_col) -> ColumnElement[bool]:
    """Redemptions a principal sees: its merchant's (merchant roles) or those of vouchers
    issued by unions in its subtree (org roles)."""
    if p.role in MERCHANT_ROLES:
        return merchant_col == p.merchant_id
    if p.role in ORG_ROLES and p.org_path:
        return union_path_col.startswith(p.org_path)
    return false()


def require_redemption(session: Session, p: Principal, redemption, *,
                       moves_money: bool = False) -> None:
    """May ``p`` see (or, with ``moves_money``, act on) this redemption?

    Seeing follows the voucher: its issuing union must be in an org role's subtree. An action
    that moves a merchant's money (refund debits its payable; capture and void move a hold)
    must also be inside the merchant's scope: an org role's region must contain the merchant,
    and merchant roles act only for their own merchant.
    """
    if p.role in MERCHANT_ROLES:
        if redemption.merchant_id == p.merchant_id:
            return
    else:
        union = session.get(Org, redemption.union_id)
        if union is not None and org_in_scope(p, union):
            if not moves_money:
                return
            merchant = session.get(Merchant, redemption.merchant_id)
            if merchant is not None and merchant_in_scope(p, merchant):
                return
            raise OutOfScope(msg("merchant {merchant} of redemption {id} is outside your scope",
                                 merchant=redemption.merchant_id, id=redemption.id),
                             target=f"merchant:{redemption.merchant_id}")
    raise OutOfScope(msg("redemption {id} is outside your scope", id=redemption.id),
                     target=f"redemption:{redemption.id}")


def union_ids_in_scope(session: Session, p: Principal, ids: list[int]) -> bool:
    rows = session.execute(select(Org.path).where(Org.id.in_(ids))).scalars().all()
    return len(rows) == len(set(ids)) and all(
        p.org_path is not None and path.startswith(p.org_path) for path in rows
    )


# --- who may create whom --------------------------------------------------------------------

_CREATABLE: dict[Role, frozenset[Role]] = {
    Role.PROVINCE_ADMIN: frozenset(Role),
    Role.CITY_ADMIN: frozenset({Role.CITY_ADMIN, Role.COUNTY_ADMIN, Role.UNION_ADMIN,
                                Role.AUDITOR, Role.ANALYST, Role.MERCHANT_ADMIN, Role.CASHIER}),
    Role.COUNTY_ADMIN: frozenset({Role.COUNTY_ADMIN, Role.UNION_ADMIN, Role.MERCHANT_ADMIN,
                                  Role.CASHIER, Role.MEMBER}),
    Role.UNION_ADMIN: frozenset({Role.UNION_ADMIN, Role.MEMBER}),
    Role.MERCHANT_ADMIN: frozenset({Role.CASHIER}),
}


def may_create_role(p: Principal, role: Role) -> bool:
    return role in _CREATABLE.get(p.role, frozenset())


def everything() -> ColumnElement[bool]:
    return true()
