"""The navigation a user sees: every console page their role may open, nothing else (the
same rule table that refuses the page decides whether its link is shown)."""

from __future__ import annotations

from dataclasses import dataclass

from civicvoucher.auth.policy import Rule, rule_for
from civicvoucher.i18n import N_, gettext


@dataclass(frozen=True)
class Link:
    route: str  # the console route's name (its rule)
    href: str
    label: str  # English msgid
    phone: bool = False  # a member's or cashier's page, laid out for a phone


# Every page module registers its link when it is imported; they are shown in this order (an
# official's day: the figures, the tree, money in, programs and issuance, merchants and their
# pay, then reading back), whatever order the modules happen to be imported in. A link not
# named here comes after these, in the order registered.
ORDER = (
    "console_home", "console_dashboard", "console_orgs", "console_import_members",
    "console_funds", "console_programs", "console_issue", "console_merchants",
    "console_merchant_queue", "console_settlement", "console_reports", "console_trace",
    "console_audit",
    "console_member_vouchers", "console_member_merchants", "console_member_history",
    "console_cashier", "console_cashier_settlement",
)
LINKS: list[Link] = [
    Link("console_home", "/", N_("Home")),
]


def _place(link: Link) -> int:
    return ORDER.index(link.route) if link.route in ORDER else len(ORDER)


def register(link: Link) -> None:
    if all(x.route != link.route for x in LINKS):
        LINKS.append(link)
        LINKS.sort(key=_place)  # stable: unnamed links keep their registration order


def navigation(principal, request) -> list[dict]:
    if principal is None:
        return []
    out = []
    for link in LINKS:
        rule = rule_for(link.route)
        if isinstance(rule, Rule) and principal.role in rule.roles:
            out.append({"href": link.href, "label": gettext(link.label),
                        "current": request.url.path == link.href})
    return out
