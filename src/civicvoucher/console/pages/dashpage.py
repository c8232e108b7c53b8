"""The dashboard: an organisation's subtree at a glance, and a drill-down to its children.

``GET /dashboard`` is the page (the user's own subtree, or ``?org=<id>`` inside it, for
``?program=<key>``); ``GET /dashboard/figures`` is the fragment the page polls every 10 s
(the figure cards, the shortfall by level, the charts' data, and the children's tables as
out-of-band swaps). The figures are read from the rollup for the unions that did not change
since its last refresh (``analytics/rollup.py``), so a poll costs about the same at province
scale as in a county. Both read
``analytics.dashboard.dashboard``, which does not check scope: the subtree is chosen here by
``auth.scope.scoped_root``, as the API's report routes choose theirs, so an organisation
outside the user's subtree is the same refusal (``out_of_scope``) and an unknown one the same
not-found (``org_not_found``).

The program: the latest one (the highest id) unless ``?program=`` names one, or ``all`` for
every program summed (the data layer then assumes every member is entitled to each program's
vouchers when it counts the plan).

Charts (Apache ECharts, ``web/static/console/dashpage.js``) read their data from a
``<script type="application/json">`` block in the fragment: the CSP runs no inline script,
and a JSON block is not run. Each chart's figures are also in a table on the page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher import i18n
from civicvoucher.analytics.dashboard import Dashboard, ProgramRef, dashboard
from civicvoucher.auth import scope
from civicvoucher.console.nav import Link, register
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import ids
from civicvoucher.core.money import format_cn, format_yuan
from civicvoucher.errors import NotFound
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Program

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
register(Link("console_dashboard", "/dashboard", N_("Dashboard")))

ALL = "all"
POLL_ENV = "CIVICVOUCHER_DASHBOARD_POLL_SECONDS"
TOP_CHILDREN = 15  # bars in the children's chart; the rest are one bar "others"
UNIONS_OPEN = 30  # directly attached unions beyond this are folded away (<details>)


def poll_seconds() -> int:
    raw = os.environ.get(POLL_ENV, "").strip()
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 3600 else 10


@dataclass(frozen=True)
class View:
    d: Dashboard
    root: Org
    crumbs: list[tuple[int, str]]  # (org id, name) from the user's own org down to root
    programs: list[ProgramRef]  # every program in the database, latest first
    program: str  # the choice: a key, or ALL

    def query(self, **over) -> str:
        q = {"org": self.root.id, "program": self.program} | over
        return urlencode({k: v for k, v in q.items() if v is not None})


def _org_param(raw: str | None) -> int | None:
    """``?org=``: an organisation id; anything else is a not-found, never a fault."""
    if raw is None or raw.strip() == "":
        return None
    oid = ids.as_id(raw.strip())
    if oid is None or oid > 2_147_483_647:
        raise NotFound(msg("organisation {id} does not exist", id=raw[:40]),
                       code="org_not_found")
    return oid


def _programs(s: Session) -> list[ProgramRef]:
    return [ProgramRef(*r) for r in s.execute(
        select(Program.id, Program.key, Program.name).order_by(Program.id.desc()))]


def load(c: PageCtx, org: str | None, program: str | None) -> View:
    oid = _org_param(org)  # (no Query limits: a FastAPI validation error is a fault here)

    def run(s: Session) -> View:
        root = scope.scoped_root(s, c.principal, oid)
        programs = _programs(s)
        choice = (program or "").strip()[:80]
        if not choice:
            choice = programs[0].key if programs else ALL
        d = dashboard(s, org_path=root.path, program=None if choice == ALL else choice)
        if choice != ALL and d.programs:
            choice = d.programs[0].key  # an id given: the key from now on
        own = c.principal.org_path or root.path
        chain = [int(x) for x in root.path.strip("/").split("/") if x]
        start = len([x for x in own.strip("/").split("/") if x]) - 1
        wanted = chain[max(start, 0):]
        names = dict(s.execute(select(Org.id, Org.name).where(Org.id.in_(wanted))).all())
        crumbs = [(i, names.get(i, str(i))) for i in wanted]
        return View(d, root, crumbs, programs, choice)

    return c.db.run(run)


# --- what the templates show ---------------------------------------------------------------

def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def times(x: float | None) -> str:
    if x is None:
        return "—"
    return i18n.localize(msg("{ratio}×", ratio=f"{x:.2f}"))


def count(n: int) -> str:
    return f"{n:,}"


def level_name(level: str) -> str:
    return i18n.localize(Term(level, "org_level"))


def _fill_days(rows) -> list:
    """Every day from the first to the last with activity (the data layer lists only days
    with activity)."""
    if not rows:
        return []
    by = {r.day: r for r in rows}
    first, last = date.fromisoformat(rows[0].day), date.fromisoformat(rows[-1].day)
    out, day = [], first
    while day <= last and len(out) < 3660:
        key = day.isoformat()
        r = by.get(key)
        out.append([key, r.issued_fen if r else 0, r.redeemed_fen if r else 0,
                    r.redemptions if r else 0])
        day += timedelta(days=1)
    return out


def chart_data(v: View) -> dict:
    """The charts' data and their words, in the page's language (dashpage.js draws them)."""
    _ = i18n.gettext
    d = v.d
    kids = sorted(d.children, key=lambda r: (-r.figures.issued_fen, r.org.name))
    top, rest = kids[:TOP_CHILDREN], kids[TOP_CHILDREN:]
    children = [[r.org.name, r.figures.planned_fen, r.figures.issued_fen,
                 r.figures.redeemed_fen] for r in top]
    if rest:
        children.append([i18n.localize(msg("{n} others", n=len(rest))),
                         sum(r.figures.planned_fen for r in rest),
                         sum(r.figures.issued_fen for r in rest),
                         sum(r.figures.redeemed_fen for r in rest)])
    return {
        "lang": i18n.current(),
        "empty": _("Nothing yet"),
        "series": {"planned": _("Planned"), "issued": _("Issued"), "redeemed": _("Redeemed"),
                   "redemptions": _("Redemptions")},
        "level": [[level_name(r.level), r.figures.planned_fen, r.figures.issued_fen,
                   r.figures.redeemed_fen] for r in d.by_level],
        "children": children,
        "category": [[i18n.localize(Term(r.key, "category")), r.redeemed_fen]
                     for r in d.by_category],
        "channel": [[i18n.localize(Term(r.key, "channel")), r.redeemed_fen]
                    for r in d.by_channel],
        "day": _fill_days(d.by_day),
    }


def _context(v: View) -> dict:
    return dict(v=v, d=v.d, f=v.d.figures, pct=pct, times=times, count=count,
                level_name=level_name, charts=chart_data(v), poll=poll_seconds(),
                money=money)


def money(fen: int) -> dict:
    return {"cn": format_cn(fen), "exact": format_yuan(fen), "fen": fen}


def unions_and_federations(d: Dashboard):
    feds = [r for r in d.children if r.org.level != "union"]
    unions = [r for r in d.children if r.org.level == "union"]
    return feds, unions


@router.get("/dashboard", name="console_dashboard")
def dashboard_page(org: str | None = Query(None),
                   program: str | None = Query(None),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    v = load(c, org, program)
    feds, unions = unions_and_federations(v.d)
    return render(c.request, "dashpage/dashboard.html.j2", title=N_("Dashboard"),
                  feds=feds, unions=unions, unions_open=len(unions) <= UNIONS_OPEN,
                  **_context(v))


@router.get("/dashboard/figures", name="console_dashboard_figures")
def dashboard_figures(org: str | None = Query(None),
                      program: str | None = Query(None),
                      c: PageCtx = Depends(page_ctx)) -> Response:
    """The figures alone (what the page polls): cards, shortfall by level, charts' data, and
    the children's tables as out-of-band swaps (they change with the rest)."""
    v = load(c, org, program)
    return render(c.request, "dashpage/_figures.html.j2",
                  oob_children=unions_and_federations(v.d), **_context(v))


__all__ = ["chart_data", "load", "router"]
