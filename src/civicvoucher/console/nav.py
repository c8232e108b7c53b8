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


# In the order shown. A page is added here when it exists.
LINKS: list[Link] = [
    Link("console_home", "/", N_("Home")),
]


def register(link: Link) -> None:
    if all(x.route != link.route for x in LINKS):
        LINKS.append(link)


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
