"""Organisations, members and imports in the console: the organisation tree of the user's
subtree, a union's members (masked) with their status changes, a masked XLSX export, and
roster imports that show every row error before anything is written.

Every page calls the services the API's routers call, the same way (``api/routers/orgs.py``,
``api/routers/members.py``): the same scope checks (``auth.scope``), the same audit actions
(``member.list``, ``member.update`` through ``change_member``, ``member.import``). A mutation
is idempotent on the page's ``idempotency_key`` through the API's own key table
(``api.idempotency``: claim, then the stored answer for a replay), under a console prefix.

Imports preview first: the upload is checked with the members service's ``dry_run`` and kept,
until it is confirmed, in a private folder (``Stash``) under a random token bound to the user
and the session, for ``STASH_TTL`` at most. The confirm names the token, never the file: the
browser cannot send the same file twice, and a file sent again could differ from the one
previewed. One bad row and nothing is imported (no reject file here).

ID numbers cannot be revealed: they are stored only as a keyed hash and a masked form (README
"The ID-hash key"); the members page says so, and a full ID number typed in its search finds
the person through the hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from civicvoucher.api.routing import _audit_refusal
from civicvoucher.api.uploads import read_upload, saved_upload, upload_limit
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.auth.policy import Rule, rule_for
from civicvoucher.console import attempts, nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core.tabular import write_table
from civicvoucher.errors import ImportRejected, NotFound, RowError, ValidationError
from civicvoucher.funds.service import fund_balance
from civicvoucher.i18n import N_, Term, _, localize, msg, nmsg
from civicvoucher.members.models import Member
from civicvoucher.members.rules import (
    MEMBER_ALIASES,
    MemberStatus,
    hash_id_number,
    mask_cell,
    normalise_id_number,
    validate_member_rows,
)
from civicvoucher.members.service import CURRENT, REASON_MAX, change_member, import_members
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel, normalise_code
from civicvoucher.orgs.service import get_org
from civicvoucher.vouchers.listing import mask_name

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_orgs", "/orgs", N_("Organisations")))
nav.register(nav.Link("console_import_members", "/imports/members", N_("Import members")))

PAGE_SIZE = 50
SEARCH_LIMIT = 50
PREVIEW_ROWS = 10
ERRORS_SHOWN = 5000  # every error of any real roster; past this the page says how many more
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
STATUSES = [str(s) for s in MemberStatus]


# --- scope: another subtree's thing is "not found", as if it were not there ------------------


class Hidden(NotFound):
    """Outside the user's subtree, told as not found (as if it were not there); ``_run``
    audits the refusal after the page's transaction, as the API audits out-of-scope."""

    def __init__(self, text, refusal: OutOfScope, **kw) -> None:
        super().__init__(text, **kw)
        self.refusal = refusal


def _run(c: PageCtx, fn):
    try:
        return c.db.run(fn)
    except Hidden as exc:
        _audit_refusal(c.st, c.request, exc.refusal)
        raise


def _org_in_scope(s: Session, c: PageCtx, org_id: int) -> Org:
    """The organisation, if the user may see it; otherwise the same not-found as a missing
    one."""
    try:
        return scope.require_org(c.principal, get_org(s, org_id))
    except OutOfScope as exc:
        raise Hidden(msg("organisation {id} does not exist", id=org_id), exc,
                     code="org_not_found") from None


def _union_in_scope(s: Session, c: PageCtx, org_id: int) -> Org:
    org = _org_in_scope(s, c, org_id)
    if org.level != OrgLevel.UNION:
        raise NotFound(msg("organisation {id} is not a grassroots union", id=org_id),
                       code="org_not_found")
    return org


# --- the organisation tree ---------------------------------------------------------------


@dataclass
class Node:
    id: int
    name: str
    level: str
    code: str
    members: int
    balance_fen: int
    has_children: bool


def _nodes(s: Session, orgs: list[Org]) -> list[Node]:
    """Members (active and suspended: the union's members now) and fund balance of each
    organisation; a federation counts its whole subtree."""
    if not orgs:
        return []
    current = [str(x) for x in CURRENT]
    unions = [o.id for o in orgs if o.level == OrgLevel.UNION]
    by_union = dict(s.execute(
        select(Member.union_id, func.count()).where(Member.union_id.in_(unions),
                                                    Member.status.in_(current))
        .group_by(Member.union_id)).all()) if unions else {}
    parents = set(s.execute(select(Org.parent_id).where(
        Org.parent_id.in_([o.id for o in orgs])).distinct()).scalars())
    out = []
    for o in orgs:
        if o.level == OrgLevel.UNION:
            members = by_union.get(o.id, 0)
        else:
            members = s.execute(
                select(func.count()).select_from(Member).join(Org, Org.id == Member.union_id)
                .where(Org.path.startswith(o.path), Member.status.in_(current))).scalar_one()
        out.append(Node(o.id, o.name, o.level, o.division_code or o.uscc or "", members,
                        fund_balance(s, o.id), o.id in parents))
    return out


def _children(s: Session, org: Org) -> list[Org]:
    level_order = {OrgLevel.CITY: 0, OrgLevel.COUNTY: 1, OrgLevel.UNION: 2}
    kids = s.execute(select(Org).where(Org.parent_id == org.id)).scalars().all()
    return sorted(kids, key=lambda o: (level_order.get(o.level, 3),
                                       o.division_code or o.uscc or "", o.id))


@router.get("/orgs", name="console_orgs")
def orgs_page(root: int | None = Query(None, ge=1, le=2_147_483_647),
              q: str = Query("", max_length=100), c: PageCtx = Depends(page_ctx)) -> Response:
    q = q.strip()

    def run(s: Session):
        top = _org_in_scope(s, c, root) if root is not None else \
            scope.require_org(c.principal, get_org(s, c.principal.org_id))
        found = None
        if q:
            code = normalise_code(q)
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = s.execute(
                select(Org).where(Org.path.startswith(top.path), or_(
                    Org.name.like(like, escape="\\"), Org.division_code.startswith(code),
                    Org.uscc.startswith(code)))
                .order_by(Org.path).limit(SEARCH_LIMIT + 1)).scalars().all()
            found = _nodes(s, list(rows[:SEARCH_LIMIT]))
            more = len(rows) > SEARCH_LIMIT
        else:
            more = False
        return (_nodes(s, [top])[0], _nodes(s, _children(s, top)), found, more,
                _trail(s, c, top))

    top, children, found, more, trail = _run(c, run)
    return render(c.request, "imports/orgs.html.j2", title=N_("Organisations"), top=top,
                  children=children, found=found, more=more, q=q, trail=trail)


def _trail(s: Session, c: PageCtx, org: Org) -> list[tuple[int, str]]:
    """The way down from the user's own organisation to ``org`` (for the breadcrumb)."""
    ids = [int(x) for x in org.path.strip("/").split("/") if x]
    mine = c.principal.org_path or "/"
    names = dict(s.execute(select(Org.id, Org.name).where(Org.id.in_(ids))).all())
    own = [int(x) for x in mine.strip("/").split("/") if x]
    return [(i, names[i]) for i in ids[len(own) - 1:]] if own else []


@router.get("/orgs/{org_id}/children", name="console_org_children")
def org_children(org_id: int, c: PageCtx = Depends(page_ctx)) -> Response:
    """The children of one organisation: the fragment a <details> loads when opened."""
    if not 1 <= org_id <= 2_147_483_647:
        raise NotFound(msg("organisation {id} does not exist", id=org_id), code="org_not_found")

    def run(s: Session):
        org = _org_in_scope(s, c, org_id)
        return _nodes(s, _children(s, org))

    return render(c.request, "imports/_children.html.j2", children=_run(c, run))


# --- a union's members --------------------------------------------------------------------


@dataclass
class MemberLine:
    id: int
    name: str  # masked
    id_masked: str
    phone_masked: str
    status: str
    reason: str


def _member_query(union: Org, q: str, status: str | None, key: bytes):
    stmt = select(Member).where(Member.union_id == union.id)
    if status:
        stmt = stmt.where(Member.status == status)
    if q:
        number = normalise_id_number(q)
        if re.fullmatch(r"\d{17}[\dX]", number):  # a whole ID number: matched by its hash
            stmt = stmt.where(Member.id_hash == hash_id_number(number, key=key))
        else:
            like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(Member.name.like(like, escape="\\"))
    return stmt


def _line(m: Member) -> MemberLine:
    return MemberLine(m.id, mask_name(m.name), m.id_masked, m.phone_masked or "", m.status,
                      m.status_reason or "")


@router.get("/orgs/{org_id}/members", name="console_members")
def members_page(org_id: int, q: str = Query("", max_length=50),
                 status: str = Query("", max_length=20), page: int = Query(1, ge=1, le=100_000),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    """Members of one union, masked; search by name (its beginning) or by a whole ID
    number. Every listing is audited, as the API's."""
    q = q.strip()
    status = status if status in STATUSES else ""

    def run(s: Session):
        union = _union_in_scope(s, c, org_id)
        base = _member_query(union, q, status or None, c.st.secret_key)
        total = s.execute(select(func.count()).select_from(base.subquery())).scalar_one()
        rows = s.execute(base.order_by(Member.id).limit(PAGE_SIZE)
                         .offset((page - 1) * PAGE_SIZE)).scalars().all()
        lines = [_line(m) for m in rows]
        c.audit(s, "member.list", target=f"org:{union.id}",
                detail={"count": len(lines), "member_ids": [m.id for m in lines],
                        "search": bool(q), "page": page})
        return union.id, union.name, union.uscc, total, lines

    uid, name, uscc, total, lines = _run(c, run)
    pages = max(1, -(-total // PAGE_SIZE))
    rule = rule_for("console_member_status")
    may_change = isinstance(rule, Rule) and c.principal.role in rule.roles
    return render(c.request, "imports/members.html.j2", title=N_("Members"), union_id=uid,
                  union_name=name, uscc=uscc, total=total, lines=lines, q=q, status_filter=status,
                  page=page, pages=pages, statuses=STATUSES, may_change=may_change,
                  reason_max=REASON_MAX)


@router.post("/orgs/{org_id}/members/{member_id}/status", name="console_member_status")
def member_status(org_id: int, member_id: int, status: str = Form(..., max_length=20),
                  reason: str = Form("", max_length=REASON_MAX + 50),
                  idempotency_key: str = Form("", max_length=200),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    """A member's status (在职/停用/离会/调出), with a reason: ``change_member`` as the API's
    route calls it (audited there, nothing written when it already was so)."""
    body = json.dumps([org_id, member_id, status, reason]).encode()
    claim = attempts.claim(c, "member-status", idempotency_key, body)
    if claim.replay is not None:
        answer, replayed = json.loads(claim.replay.body), True
    else:
        answer = None
        try:
            def run(s: Session) -> dict:
                union = _union_in_scope(s, c, org_id)
                m = s.get(Member, member_id)
                if m is None or m.union_id != union.id:
                    raise NotFound(msg("no member {id}", id=member_id), code="member_not_found")
                old = m.status
                m, change = change_member(s, member_id, key=c.st.secret_key,
                                          audit=lambda s2, a, t, d: c.audit(s2, a, t, d),
                                          status=status, reason=reason)
                return {"member_id": m.id, "name": mask_name(m.name), "old": old,
                        "new": m.status, "changed": change is not None}

            answer = _run(c, run)
        finally:
            attempts.finish(c, claim, answer)
        replayed = False
    return render(c.request, "imports/status_done.html.j2", title=N_("Member status"),
                  union_id=org_id, a=answer, replayed=replayed)


@router.get("/orgs/{org_id}/members.xlsx", name="console_members_export")
def members_export(org_id: int, c: PageCtx = Depends(page_ctx)) -> Response:
    """The union's members as XLSX, masked as on the page (name, ID number, phone); audited
    with the number of rows (the file leaves the system)."""
    folder = tempfile.mkdtemp(prefix="cv-export-")
    path = Path(folder) / "members.xlsx"

    def run(s: Session):
        union = _union_in_scope(s, c, org_id)
        rows = s.execute(select(Member).where(Member.union_id == union.id)
                         .order_by(Member.id)).scalars()
        lines = [[mask_name(m.name), m.id_masked, m.phone_masked or "",
                  localize(Term(m.status, "member_status")), m.status_reason or ""]
                 for m in rows]
        header = [_("Name"), _("ID number"), _("Mobile"), _("Status"), _("Reason")]
        write_table(path, header, lines)
        c.audit(s, "member.export", target=f"org:{union.id}", detail={"count": len(lines)})
        return union.uscc or str(union.id)

    try:
        code = _run(c, run)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, filename=f"members-{code}.xlsx",
                        media_type="application/vnd.openxmlformats-officedocument."
                                   "spreadsheetml.sheet",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options":
                                 "nosniff"},
                        background=BackgroundTask(shutil.rmtree, folder, True))


# --- imports: preview (nothing written), then confirm -------------------------------------


STASH_TTL = 30 * 60  # seconds a previewed upload waits for its confirm
STASH_PER_USER = 2  # previews a user may have waiting; an older one is dropped


class Stash:
    """Uploads waiting for their confirm: a private folder (0700, ours, not a link) in the
    system's temp directory; each file named by the SHA-256 of its random token, beside a
    small JSON naming the user, the session, the time and the file. Nothing else can name
    a file: the token is the only way in, and it works only for its user and session."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base or Path(tempfile.gettempdir()) / f"civicvoucher-console-{os.getuid()}"

    def folder(self) -> Path:
        with contextlib.suppress(FileExistsError):
            self.base.mkdir(mode=0o700)
        st = os.lstat(self.base)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RuntimeError(f"{self.base} is not a private folder of this user")
        return self.base

    @staticmethod
    def _name(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def sweep(self, *, user_id: int | None = None, keep: int = STASH_PER_USER) -> None:
        """Drop expired uploads, and a user's oldest beyond ``keep - 1`` (a new one comes)."""
        now = time.time()
        mine = []
        for meta in self.folder().glob("*.json"):
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                info = {"at": 0}
            if now - info.get("at", 0) > STASH_TTL:
                self._drop(meta)
            elif user_id is not None and info.get("user_id") == user_id:
                mine.append((info["at"], meta))
        for _at, meta in sorted(mine)[:max(0, len(mine) - keep + 1)]:
            self._drop(meta)

    def _drop(self, meta: Path) -> None:
        for p in meta.parent.glob(meta.stem + ".*"):
            p.unlink(missing_ok=True)

    def put(self, src: Path, *, user_id: int, token_id: int | None, kind: str,
            filename: str) -> str:
        self.sweep(user_id=user_id)
        token = secrets.token_urlsafe(32)
        name = self._name(token)
        folder = self.folder()
        dest = folder / f"{name}{src.suffix.lower()}"
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o600)
        info = {"user_id": user_id, "token_id": token_id, "kind": kind, "at": time.time(),
                "filename": filename[:200], "suffix": src.suffix.lower(),
                "sha256": hashlib.sha256(dest.read_bytes()).hexdigest()}
        meta = folder / f"{name}.json"
        fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        return token

    def get(self, token: str, *, user_id: int, token_id: int | None, kind: str
            ) -> tuple[Path, dict] | None:
        if not TOKEN_RE.fullmatch(token or ""):
            return None
        meta = self.folder() / f"{self._name(token)}.json"
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if (info.get("user_id") != user_id or info.get("token_id") != token_id
                or info.get("kind") != kind or time.time() - info.get("at", 0) > STASH_TTL):
            return None
        path = meta.with_suffix(info.get("suffix", ".csv"))
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != info["sha256"]:
            return None
        return path, info

    def drop(self, token: str) -> None:
        if TOKEN_RE.fullmatch(token or ""):
            self._drop(self.folder() / f"{self._name(token)}.json")


STASH = Stash()


@dataclass
class ShownError:
    row: int
    column: str
    reason: str


def _scope_errors(s: Session, c: PageCtx, good) -> list[RowError]:
    """Rows naming a union that exists but lies outside the user's subtree (the API's
    check, told per row)."""
    usccs = {r.union for _, r in good}
    unions = {o.uscc: o for o in s.execute(
        select(Org).where(Org.uscc.in_(usccs), Org.level == OrgLevel.UNION)).scalars()}
    return [RowError(n, "union", N_("this union is outside your scope"))
            for n, r in good if normalise_code(r.union) in unions
            and not scope.org_in_scope(c.principal, unions[normalise_code(r.union)])]


def _check_roster(s: Session, c: PageCtx, path: Path):
    """Every row error of a roster and the members service's dry run: (table, errors,
    result or None). Writes nothing."""
    table = read_upload(path, MEMBER_ALIASES)
    good, errors = validate_member_rows(table)
    errors = list(errors) + _scope_errors(s, c, good)
    result = None
    try:
        result = import_members(s, path=path, key=c.st.secret_key, dry_run=True)
    except ImportRejected as exc:
        seen = {(e.row, e.field, str(e.reason)) for e in errors}
        errors += [e for e in exc.errors if (e.row, e.field, str(e.reason)) not in seen]
    return table, sorted(errors, key=lambda e: (e.row, e.field)), result


def _preview_rows(table) -> tuple[list[str], list[list[str]]]:
    header = [table.label(h) for h in table.header]
    rows = []
    for _row, cells in list(_first(table.rows, PREVIEW_ROWS)):
        line = []
        for h in table.header:
            v = cells.get(h, "")
            if v and h in ("id_number", "phone"):
                v = mask_cell(v)
            elif v and h == "name":
                v = mask_name(v.strip())
            line.append(v)
        rows.append(line)
    return header, rows


def _first(rows, n: int):
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row


@router.get("/imports/members", name="console_import_members")
def import_members_page(c: PageCtx = Depends(page_ctx)) -> Response:
    return render(c.request, "imports/import.html.j2", title=N_("Import members"),
                  limit_mb=upload_limit() // (1024 * 1024), preview=None)


@router.post("/imports/members/preview", name="console_import_members_preview")
def import_members_preview(file: UploadFile = File(...), c: PageCtx = Depends(page_ctx)
                           ) -> Response:
    """The roster as read, every row error, what would be imported: nothing written. With no
    error the file waits (``Stash``) for the confirm."""
    filename = (file.filename or "")[:200]
    with saved_upload(file, "roster") as path:
        table, errors, result = _run(c, lambda s: _check_roster(s, c, path))
        header, rows = _preview_rows(table)
        token = None
        if not errors and result is not None:
            token = STASH.put(path, user_id=c.principal.user_id,
                              token_id=c.principal.token_id, kind="members",
                              filename=filename)
    shown = [ShownError(e.row, table.label(e.field), localize(e.reason))
             for e in errors[:ERRORS_SHOWN]]
    return render(c.request, "imports/import.html.j2", title=N_("Import members"),
                  limit_mb=upload_limit() // (1024 * 1024), preview={
                      "filename": filename, "rows": len(table.rows), "header": header,
                      "lines": rows, "errors": shown, "more": max(0, len(errors) - ERRORS_SHOWN),
                      "error_rows": len({e.row for e in errors}),
                      "imported": result.imported if result else 0,
                      "unchanged": result.unchanged if result else 0, "token": token})


@router.post("/imports/members/confirm", name="console_import_members_confirm")
def import_members_confirm(token: str = Form(..., max_length=100),
                           idempotency_key: str = Form("", max_length=200),
                           c: PageCtx = Depends(page_ctx)) -> Response:
    """Import the previewed roster, all or nothing, audited as the API's import; the same
    key again answers the first result and imports nothing more."""
    claim = attempts.claim(c, "member-import", idempotency_key, token.encode())
    if claim.replay is not None:
        return _import_done(c, json.loads(claim.replay.body), replayed=True)
    answer = None
    try:
        got = STASH.get(token, user_id=c.principal.user_id, token_id=c.principal.token_id,
                        kind="members")
        if got is None:
            raise ValidationError(N_("this preview has expired or belongs to another "
                                     "session: upload the file again"), field="file",
                                  code="preview_expired")
        path, info = got

        def run(s: Session) -> dict:
            table = read_upload(path, MEMBER_ALIASES)
            good, errors = validate_member_rows(table)
            if errors:
                raise ImportRejected(errors, total_rows=len(table.rows))
            bad = _scope_errors(s, c, good)
            if bad:
                raise OutOfScope(nmsg("{n} row names a union outside your scope (row {row})",
                                      "{n} rows name unions outside your scope (first: row "
                                      "{row})", len(bad), row=bad[0].row))
            res = import_members(s, path=path, key=c.st.secret_key, update=False,
                                 audit=lambda s2, a, t, d: c.audit(s2, a, t, d))
            c.audit(s, "member.import", target=f"file:{info['filename']}"[:200],
                    detail={"rows": res.rows, "imported": res.imported,
                            "unchanged": res.unchanged, "updated": res.updated})
            return {"filename": info["filename"], "rows": res.rows, "imported": res.imported,
                    "unchanged": res.unchanged, "duplicates": len(res.duplicates)}

        answer = _run(c, run)
        STASH.drop(token)
    finally:
        attempts.finish(c, claim, answer)
    return _import_done(c, answer, replayed=False)


def _import_done(c: PageCtx, answer: dict, *, replayed: bool) -> Response:
    return render(c.request, "imports/import_done.html.j2", title=N_("Import members"),
                  a=answer, replayed=replayed)
