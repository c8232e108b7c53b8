"""The reports page: a program's policy report over the user's subtree, and its files.

``GET /reports`` shows the form (program, organisation inside the user's subtree, an optional
breakdown by level); with ``?program=`` it computes the report and shows its headline figures
and every table, in the page's language. ``GET /reports/download.xlsx`` and
``/reports/download.pdf`` take the same query and answer the workbook and the A4 PDF
(``analytics.downloads.report_file``: the same files as ``civicvoucher report`` writes and as
the API's ``program_report`` answers with ``format=``).

The report is ``analytics.compute_report`` (DuckDB over the transaction tables), which does
not check scope: the subtree is chosen here by ``auth.scope.scoped_root``, as the API's report
route chooses it, so an organisation outside the user's subtree is the same audited refusal
(``out_of_scope``) and an unknown one the same not-found.

It is computed on request: about a second on a county, a few seconds on a province. The
page says when it was computed and how long it took. Its download links carry a snapshot
token: for ``SNAPSHOT_SECONDS`` the files are made from the very report the page showed (kept
in this process, for this user and these choices only), so the figures in the files are the
figures on the page even if a redemption lands in between, and the report is not computed
twice. An unknown or expired token (another worker process, a restart, a link kept for
later) computes the report again; the file then states its own time. Nothing is cached across
requests by the data: a report depends on members, vouchers, redemptions and the ledger,
whose rows change in place (a voucher expires, a redemption is refunded), so no cheap key
tells that the data are unchanged, and a stale report shown as current is worse than a wait.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from civicvoucher import i18n
from civicvoucher.analytics import describe, fmt
from civicvoucher.analytics.tables import Report
from civicvoucher.auth import scope
from civicvoucher.console.nav import Link, register
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import ids
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Program

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
register(Link("console_reports", "/reports", N_("Reports")))

LEVELS = ("city", "county", "union")
_ORDER = ("province", "city", "county", "union")
SNAPSHOT_SECONDS = 600  # how long a page's download links give the page's own report
SNAPSHOT_MAX = 32  # reports kept at once (the oldest goes first)
MAX_ORG_CHOICES = 400  # organisations in the picker; any other in scope by ?org=<id>
# The figures shown as cards at the top (at full size), as on the offline page.
CARDS = ("issued_fen_total", "expected_fen_total", "shortfall_fen_total", "issue_rate_total",
         "digital_share", "leverage_digital", "redemption_rate_digital", "breakage_fen",
         "tourism_cards")


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass
class View:
    programs: list[Choice]
    orgs: list[Choice]
    levels: list[Choice]
    program: str  # the chosen key ("" before a choice)
    root: Org
    level: str
    report: Report | None = None
    seconds: float = 0.0
    snapshot: str = ""

    @property
    def choices(self) -> tuple[str, int, str]:
        return self.program, self.root.id, self.level

    def query(self, **over) -> str:
        q = {"program": self.program, "org": self.root.id, "level": self.level or None,
             "snapshot": self.snapshot or None} | over
        return urlencode({k: v for k, v in q.items() if v not in (None, "")})


def _org_param(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    oid = ids.as_id(raw.strip())
    if oid is None or oid > 2_147_483_647:
        raise NotFound(msg("organisation {id} does not exist", id=raw[:40]),
                       code="org_not_found")
    return oid


def _level_param(raw: str | None) -> str:
    level = (raw or "").strip()
    if level and level not in LEVELS:
        raise ValidationError(msg("level must be one of {levels}, got {level}",
                                  levels=list(LEVELS), level=level[:20]), field="level")
    return level


def _org_choices(s: Session, c: PageCtx, root: Org) -> list[Choice]:
    """The user's own organisation and the federations under it (and, below a county, its
    unions), in tree order; the one asked for is always among them."""
    own = s.get(Org, c.principal.org_id) if c.principal.org_id else root
    base = own or root
    q = select(Org).where(Org.path.startswith(base.path))
    if base.level not in ("county", "union"):
        q = q.where(Org.level != "union")
    rows = list(s.execute(q.order_by(Org.path).limit(MAX_ORG_CHOICES)).scalars())
    if all(o.id != root.id for o in rows):
        rows.append(root)
    depth = base.path.count("/")
    out = []
    for o in rows:
        indent = "\u00a0\u00a0" * max(o.path.count("/") - depth, 0)
        out.append(Choice(str(o.id), f"{indent}{o.name} · {i18n.localize(Term(o.level, 'org_level'))}"))
    return out


def _level_choices(root: Org) -> list[Choice]:
    below = _ORDER[_ORDER.index(root.level) + 1:] if root.level in _ORDER else ()
    return [Choice(lv, i18n.localize(Term(lv, "org_level"))) for lv in LEVELS if lv in below]


def load(c: PageCtx, program: str | None, org: str | None, level: str | None, *,
         compute: bool) -> View:
    oid = _org_param(org)
    lv = _level_param(level)
    choice = (program or "").strip()[:80]

    def run(s: Session):
        root = scope.scoped_root(s, c.principal, oid)  # refused (and audited) outside
        programs = [Choice(k, f"{n} ({k})") for k, n in s.execute(
            select(Program.key, Program.name).order_by(Program.id.desc()))]
        key = ""
        if choice:
            from civicvoucher.programs.service import get_program

            key = get_program(s, choice).key  # 404 before any work
        return root, programs, key, _org_choices(s, c, root)

    root, programs, key, orgs = c.db.run(run)
    if lv and lv not in [x.value for x in _level_choices(root)]:
        raise ValidationError(msg("level {level} is not below {name} ({root_level})",
                                  level=Term(lv, "org_level"), name=root.name,
                                  root_level=Term(root.level, "org_level")), field="level")
    v = View(programs, orgs, _level_choices(root), key, root, lv)
    if compute and key:
        from civicvoucher.analytics import compute_report

        started = time.perf_counter()
        v.report = compute_report(c.db.url, program_key=key, org=root.id, level=lv or None)
        v.seconds = time.perf_counter() - started
        v.snapshot = SNAPSHOTS.keep(c.principal.user_id, v.choices, v.report)
    return v


# --- the report a page showed, for its downloads --------------------------------------------

class Snapshots:
    """Reports shown on a page, kept briefly so its download links give the same figures.
    A snapshot is taken only by the user it was made for, with the same choices."""

    def __init__(self, seconds: float = SNAPSHOT_SECONDS, size: int = SNAPSHOT_MAX) -> None:
        self.seconds, self.size = seconds, size
        self._kept: OrderedDict[str, tuple[float, int, tuple, Report]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, user_id: int, choices: tuple, report: Report) -> str:
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._kept[token] = (time.monotonic() + self.seconds, user_id, choices, report)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return token

    def take(self, token: str | None, user_id: int, choices: tuple) -> Report | None:
        if not token:
            return None
        with self._lock:
            now = time.monotonic()
            for k in [k for k, v in self._kept.items() if v[0] < now]:
                del self._kept[k]
            found = self._kept.get(token[:64])
        if found is None or found[1] != user_id or found[2] != choices:
            return None
        return found[3]


SNAPSHOTS = Snapshots()


# --- what the template shows ----------------------------------------------------------------

def cards(report: Report, lang: str) -> list[dict]:
    return [dict(label=h.label_zh if lang == "zh" else h.label_en,
                 text=fmt.value(h.full, h.unit), key=h.key)
            for k in CARDS if (h := report.headline.get(k)) is not None]


def tables(report: Report, lang: str) -> list[dict]:
    """Every table of the report (``render.all_tables``) as ``analytics.view`` lays it out,
    with the words of ``lang``."""
    from civicvoucher.analytics.render import all_tables
    from civicvoucher.analytics.view import cell_text, head_label, table_view

    out = []
    for t in all_tables(report):
        v = table_view(t)
        heads = [dict(label=head_label(h, lang), num=h["num"]) for h in v["columns"]]
        rows = [dict(cells=[dict(text=cell_text(cell, h, lang), num=h["num"])
                            for cell, h in zip(r["cells"], v["columns"], strict=True)],
                     total=r["total"]) for r in v["rows"]]
        out.append(dict(name=t.name, title=v["title_zh"] if lang == "zh" else v["title_en"],
                        note=v["note_zh"] if lang == "zh" else v["note_en"], columns=heads,
                        rows=rows))
    return out


def _context(v: View, lang: str) -> dict:
    ctx: dict = dict(v=v, report=v.report)
    r = v.report
    if r is not None:
        from civicvoucher.analytics.pdf import title_of

        zh = lang == "zh"
        ctx.update(
            heading=title_of(r, lang), cards=cards(r, lang), tables=tables(r, lang),
            scope_text=describe.scope_zh(r) if zh else describe.scope_en(r),
            data_text=describe.data_zh(r) if zh else describe.data_en(r),
            warning=(describe.sample_warning_zh(r) if zh else describe.sample_warning_en(r)),
            notices=[n.zh if zh else n.en for n in r.notices],
            seconds=f"{v.seconds:.1f}", minutes=SNAPSHOT_SECONDS // 60, sample_mark_skip=("comparison", "inconsistencies",
                                                          "headline"))
    return ctx


@router.get("/reports", name="console_reports")
def reports_page(program: str | None = Query(None), org: str | None = Query(None),
                 level: str | None = Query(None),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    try:
        v = load(c, program, org, level, compute=True)
    except ValidationError as exc:  # a level the organisation has nothing below: on the page
        v = load(c, None, org, None, compute=False)
        return render(c.request, "reportspage/reports.html.j2", title=N_("Reports"),
                      status_code=422, error=exc.localized(c.lang), field=exc.field,
                      **_context(v, c.lang))
    return render(c.request, "reportspage/reports.html.j2", title=N_("Reports"), error=None,
                  field=None, **_context(v, c.lang))


def _download(c: PageCtx, kind: str, program: str | None, org: str | None,
              level: str | None, snapshot: str | None) -> Response:
    """The file of the report the page showed (its snapshot), else of a report computed now;
    the scope and the choices are checked again either way."""
    from civicvoucher.analytics.downloads import content_disposition, report_file

    if not (program or "").strip():
        raise ValidationError(N_("choose a program"), field="program")
    v = load(c, program, org, level, compute=False)
    report = SNAPSHOTS.take(snapshot, c.principal.user_id, v.choices)
    source = "snapshot"
    if report is None:
        report = load(c, program, org, level, compute=True).report
        source = "computed"
    assert report is not None
    body, media, name = report_file(report, kind, lang=c.lang)
    return Response(body, media_type=media, headers={
        "Content-Disposition": content_disposition(name), "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "X-Report-Source": source})


@router.get("/reports/download.xlsx", name="console_reports_xlsx")
def reports_xlsx(program: str | None = Query(None), org: str | None = Query(None),
                 level: str | None = Query(None), snapshot: str | None = Query(None),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    return _download(c, "xlsx", program, org, level, snapshot)


@router.get("/reports/download.pdf", name="console_reports_pdf")
def reports_pdf(program: str | None = Query(None), org: str | None = Query(None),
                level: str | None = Query(None), snapshot: str | None = Query(None),
                c: PageCtx = Depends(page_ctx)) -> Response:
    return _download(c, "pdf", program, org, level, snapshot)


__all__ = ["load", "router", "tables"]
