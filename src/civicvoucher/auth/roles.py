"""Roles and what each is bound to. Pure: no database."""

from __future__ import annotations

from enum import StrEnum

from civicvoucher.i18n import Msg, Term, msg, terms
from civicvoucher.orgs import rules as _org_rules  # noqa: F401 (registers the org_level names)


class Role(StrEnum):
    PROVINCE_ADMIN = "province_admin"
    CITY_ADMIN = "city_admin"
    COUNTY_ADMIN = "county_admin"
    UNION_ADMIN = "union_admin"
    MERCHANT_ADMIN = "merchant_admin"
    CASHIER = "cashier"
    AUDITOR = "auditor"  # reads everything in its subtree, changes nothing; every read is logged
    ANALYST = "analyst"  # aggregates only, never a row about a person
    CHANNEL = "channel"  # a payment channel: signed callbacks only
    MEMBER = "member"  # a union member: their own vouchers

    @classmethod
    def parse(cls, text: str) -> Role:
        """'province-admin', 'Province_Admin' → Role.PROVINCE_ADMIN."""
        return cls(text.strip().lower().replace("-", "_"))


ROLE_LABEL_ZH: dict[Role, str] = {
    Role.PROVINCE_ADMIN: "省级总工会管理员",
    Role.CITY_ADMIN: "市级总工会管理员",
    Role.COUNTY_ADMIN: "县级总工会管理员",
    Role.UNION_ADMIN: "基层工会管理员",
    Role.MERCHANT_ADMIN: "商户管理员",
    Role.CASHIER: "收银员",
    Role.AUDITOR: "审计员",
    Role.ANALYST: "数据分析员",
    Role.CHANNEL: "支付渠道",
    Role.MEMBER: "会员",
}
terms.register("role", ROLE_LABEL_ZH)  # Term(role, "role") in a message

ADMIN_LEVEL: dict[Role, str] = {
    Role.PROVINCE_ADMIN: "province",
    Role.CITY_ADMIN: "city",
    Role.COUNTY_ADMIN: "county",
    Role.UNION_ADMIN: "union",
}
ORG_ROLES = frozenset({*ADMIN_LEVEL, Role.AUDITOR, Role.ANALYST})
MERCHANT_ROLES = frozenset({Role.MERCHANT_ADMIN, Role.CASHIER})
ALL_ROLES = frozenset(Role)


def binding_problem(role: Role, *, org_level: str | None, merchant_id: int | None,
                    member_id: int | None) -> Msg | None:
    """Why a user of ``role`` cannot be bound this way, or None: each role needs its anchor."""
    if role in ADMIN_LEVEL and org_level != ADMIN_LEVEL[role]:
        return msg("a {role} is bound to a {level} organisation", role=Term(role, "role"),
                   level=Term(ADMIN_LEVEL[role], "org_level"))
    if role in (Role.AUDITOR, Role.ANALYST) and org_level is None:
        return msg("a {role} is bound to an organisation (its subtree is what it sees)",
                   role=Term(role, "role"))
    if role in MERCHANT_ROLES and merchant_id is None:
        return msg("a {role} is bound to a merchant", role=Term(role, "role"))
    if role is Role.MEMBER and member_id is None:
        return msg("a member user is bound to a member")
    return None


def binding_field(role: Role) -> str | None:
    """The one field that binds a user of ``role`` to what it acts for (None: a channel)."""
    if role in ORG_ROLES:
        return "org_id"
    if role in MERCHANT_ROLES:
        return "merchant_id"
    if role is Role.MEMBER:
        return "member_id"
    return None


def stray_binding(role: Role, **given: object) -> str | None:
    """The first field in ``given`` (org_id, merchant_id, member_id, channels) that is set but
    does not belong to ``role``: a cashier carries no org_id, only a channel has channels."""
    own = {binding_field(role)} | ({"channels"} if role is Role.CHANNEL else set())
    for name, value in given.items():
        if value is not None and name not in own:
            return name
    return None
