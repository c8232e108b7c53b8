"""Maker-checker for deposits: big deposits, and all fiscal or transferred money, need a second
person of the level above before any money moves (docs/deposits.md says it for people).

Why: a union admin could deposit up to 10^13 fen of "fiscal" money into its own union per
call, and nobody else had to agree.

* **What needs a checker** (:func:`approval_reason`): every ``fiscal`` deposit (财政拨款: public
  money, which never comes from a union's own say-so), every ``transfer`` from a federation's
  fund, and dues above ``CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE`` yuan (default 100,000 yuan;
  ``0`` makes every deposit need one). Smaller dues are deposited at once, as before.
* **Request** (:func:`request_deposit`): checked like a deposit, then a ``pending``
  ``deposit_request`` row; no money moves. Idempotent on the maker's key.
* **Who checks** (:func:`may_check`): never the maker (the identities differ: ``user:<id>`` for
  API users, ``cli:<os user>`` at the command line). An API checker is an admin whose
  organisation lies strictly above the receiving one (a county admin for its unions, a city
  admin for its counties, the province for its cities), and whose subtree also holds the
  paying federation of a transfer and the maker's own organisation, so a checker is never
  below the maker. The province's own fund has nobody above it: a second admin of that
  province checks. A CLI operator holds the database and its key, so sits above every
  organisation: any operator but the maker may check from the command line.
* **Approve** (:func:`approve`): the checker's conditional UPDATE ``pending → approved`` wins
  once; only the winner posts the deposit, as transfer ``deposit:approval:<id>``, so the money
  moves once whoever approves, however often, with whatever key (a second approval answers the
  first, ``replayed``). A transfer the payer cannot cover fails the whole approval (409
  ``insufficient_funds``); the request stays pending. **Reject** (:func:`reject`): the same
  checkers; ``pending → rejected``, nothing moves.

``funds.service.deposit_many`` (the demo's bulk funding) is the system acting, not a door, and
asks nobody.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock, testpoints
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.db import once
from civicvoucher.errors import (
    Forbidden,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from civicvoucher.funds.models import DepositRequest
from civicvoucher.funds.service import Deposit, check_deposit, deposit, fund_balance
from civicvoucher.i18n import N_, Term, Text, Yuan, localize, msg, terms
from civicvoucher.ledger.models import Transfer
from civicvoucher.ledger.rules import DepositSource
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.service import get_org

THRESHOLD_ENV = "CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE"
DEFAULT_THRESHOLD_YUAN = "100000"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
APPROVAL_KEY = "approval:"  # the approved deposit's key: deposit:approval:<request id>
REASON_ZH = {"fiscal": "财政拨款", "transfer": "上级划拨", "over_threshold": "超过复核限额"}
REQUEST_STATUS_LABEL_ZH = {PENDING: "待批准", APPROVED: "已批准", REJECTED: "已驳回"}
terms.register("deposit_reason", REASON_ZH)
terms.register("deposit_request_status", REQUEST_STATUS_LABEL_ZH)


class SelfApproval(Forbidden):
    code = "self_approval_refused"


class ApprovalNotAllowed(Forbidden):
    code = "approval_not_allowed"


def approval_threshold_fen() -> int:
    """Dues above this many fen need a checker: ``CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE`` in
    yuan (``100000``, ``1,000,000.50``), default 100,000 yuan."""
    text = os.environ.get(THRESHOLD_ENV, "").strip() or DEFAULT_THRESHOLD_YUAN
    try:
        return yuan_to_fen(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(msg("{var}={text}: {problem} (yuan, e.g. 100000)", var=THRESHOLD_ENV,
                                  text=repr(text), problem=Text(exc.args[0] if exc.args else exc)),
                              field=THRESHOLD_ENV) from None


def approval_reason(amount_fen: int, source: str) -> str | None:
    """Why this deposit needs a second person (``fiscal``, ``transfer``, ``over_threshold``),
    or None: it is deposited at once."""
    src = DepositSource(source)
    if src is DepositSource.FISCAL:
        return "fiscal"
    if src is DepositSource.TRANSFER:
        return "transfer"
    if amount_fen > approval_threshold_fen():
        return "over_threshold"
    return None


@dataclass(frozen=True)
class Person:
    """Who makes or checks a request. ``org_id`` None: an operator at the command line."""

    identity: str  # user:17 | cli:alice: what the two-person rule compares
    name: str  # what people read
    org_id: int | None = None

    @classmethod
    def api_user(cls, user_id: int, username: str, org_id: int | None) -> Person:
        return cls(f"user:{user_id}", username[:100], org_id)

    @classmethod
    def operator(cls, name: str) -> Person:
        return cls(name if name.startswith("cli:") else f"cli:{name}", name[:100], None)


@dataclass(frozen=True)
class Requested:
    request: DepositRequest
    replayed: bool


@dataclass(frozen=True)
class Decision:
    request: DepositRequest
    balance_fen: int  # the receiving fund after the decision
    replayed: bool  # it had been decided so already: nothing new


def _by_key(session: Session, key: str) -> DepositRequest | None:
    return session.execute(select(DepositRequest).where(DepositRequest.key == key)).scalar()


def _same(r: DepositRequest, *, org_id: int, amount_fen: int, source: str,
          from_org_id: int | None) -> DepositRequest:
    if (r.org_id, r.amount_fen, r.source, r.from_org_id) != (org_id, amount_fen, source,
                                                               from_org_id):
        raise IdempotencyConflict(N_("this key was used for another deposit request"))
    return r


def request_deposit(session: Session, *, org_id: int, amount_fen: int, source: str,
                    idem_key: str, maker: Person, from_org_id: int | None = None,
                    memo: str | None = None) -> Deposit | Requested:
    """A deposit through a door: posted at once (``Deposit``) when nobody else must agree,
    else a pending request (``Requested``) that moves nothing until :func:`approve`.
    Idempotent on ``idem_key`` either way."""
    key = f"request:{idem_key}"
    if len(key) > 200:
        raise ValidationError(N_("idempotency key too long (at most 190 characters)"),
                              field="key")
    if idem_key.startswith(APPROVAL_KEY):  # reserved: an approved request's own transfer
        raise ValidationError(msg("an idempotency key may not start with {prefix}",
                                  prefix=APPROVAL_KEY),
                              field="key")
    same = {"org_id": org_id, "amount_fen": amount_fen, "source": source,
            "from_org_id": from_org_id}
    if (found := _by_key(session, key)) is not None:
        return Requested(_same(found, **same), True)
    check_deposit(session, org_id=org_id, amount_fen=amount_fen, source=source,
                  from_org_id=from_org_id)
    reason = approval_reason(amount_fen, source)
    if reason is None or session.get(Transfer, f"deposit:{idem_key}") is not None:
        return deposit(session, org_id=org_id, amount_fen=amount_fen, source=source,
                       idem_key=idem_key, from_org_id=from_org_id, memo=memo)

    def find() -> Requested | None:
        r = _by_key(session, key)
        return Requested(_same(r, **same), True) if r is not None else None

    def work() -> Requested:
        row = DepositRequest(key=key, org_id=org_id, from_org_id=from_org_id,
                             amount_fen=amount_fen, source=str(DepositSource(source)),
                             memo=memo, reason=reason, status=PENDING, maker=maker.identity,
                             maker_name=maker.name, maker_org_id=maker.org_id,
                             created_at=clock.now())
        session.add(row)
        session.flush()
        return Requested(row, False)

    result, _ = once(session, "deposit_request", find, work)
    return result


def get_request(session: Session, request_id: int) -> DepositRequest:
    r = session.get(DepositRequest, request_id)
    if r is None:
        raise NotFound(msg("no deposit request {id}", id=request_id),
                       code="deposit_request_not_found")
    return r


def may_check(session: Session, r: DepositRequest, checker: Person) -> None:
    """Refuse (403) anyone who may not approve or reject ``r``: the maker, or an API user not
    above the receiving organisation, the payer and the maker (see the module docstring)."""
    if checker.identity == r.maker:
        raise SelfApproval(msg("deposit request {id} was made by you: a second person approves it",
                               id=r.id), target=f"deposit_request:{r.id}")
    if checker.org_id is None:
        return
    mine, target = get_org(session, checker.org_id), get_org(session, r.org_id)
    above = target.path.startswith(mine.path) and target.id != mine.id
    if not above and not (target.parent_id is None and target.id == mine.id):
        text = (msg("a deposit into {org} is approved by an admin of a federation above it "
                    "(for a province's own fund: another admin of the province)", org=target.name)
                if target.parent_id is None else
                msg("a deposit into {org} is approved by an admin of a federation above it",
                    org=target.name))
        raise ApprovalNotAllowed(text, target=f"deposit_request:{r.id}")
    for other in (r.from_org_id, r.maker_org_id):
        if other is not None and not get_org(session, other).path.startswith(mine.path):
            raise ApprovalNotAllowed(
                N_("the checker's organisation must hold the paying federation and the "
                   "maker's own organisation: a checker is never below the maker"),
                target=f"deposit_request:{r.id}")


def approve(session: Session, *, request_id: int, checker: Person,
            now: datetime | None = None) -> Decision:
    """Approve a pending request and post its deposit, once (module docstring)."""
    now = now or clock.now()
    r = get_request(session, request_id)
    may_check(session, r, checker)
    if r.status != PENDING:
        return _decided(session, r, APPROVED, request_id)
    testpoints.reached("deposit_approve.after_lookup")
    won = session.execute(update(DepositRequest).where(
        DepositRequest.id == r.id, DepositRequest.status == PENDING,
    ).values(status=APPROVED, checker=checker.identity, checker_name=checker.name,
             decided_at=now)).rowcount
    if won != 1:
        session.refresh(r)
        return _decided(session, r, APPROVED, request_id)
    d = deposit(session, org_id=r.org_id, amount_fen=r.amount_fen, source=r.source,
                from_org_id=r.from_org_id, idem_key=f"{APPROVAL_KEY}{r.id}",
                memo=(r.memo or f"{r.source}, request {r.id}")[:200])
    session.execute(update(DepositRequest).where(DepositRequest.id == r.id)
                    .values(transfer_id=d.transfer_id))
    session.refresh(r)
    return Decision(r, d.balance_fen, replayed=False)


def reject(session: Session, *, request_id: int, checker: Person, note: str | None = None,
           now: datetime | None = None) -> Decision:
    """Reject a pending request: nothing moves. Rejecting it again answers the first."""
    now = now or clock.now()
    r = get_request(session, request_id)
    may_check(session, r, checker)
    if r.status == PENDING:
        won = session.execute(update(DepositRequest).where(
            DepositRequest.id == r.id, DepositRequest.status == PENDING,
        ).values(status=REJECTED, checker=checker.identity, checker_name=checker.name,
                 decided_at=now, note=(note or None) and note[:200])).rowcount
        session.refresh(r)
        if won == 1:
            return Decision(r, fund_balance(session, r.org_id), replayed=False)
    return _decided(session, r, REJECTED, request_id)


def _decided(session: Session, r: DepositRequest, wanted: str, request_id: int) -> Decision:
    """A request already decided: the same decision again is a replay, the other a 409."""
    if r.status == wanted:
        return Decision(r, fund_balance(session, r.org_id), replayed=True)
    raise InvalidTransition(msg("deposit request {id} was {status} already (by {checker})",
                                id=request_id, status=Term(r.status, "deposit_request_status"),
                                checker=r.checker_name))


def requests_query(*, status: str | None = None, within_path: str | None = None) -> Select:
    """Requests (of a status), of organisations under ``within_path`` (None: all), by id."""
    q = select(DepositRequest).join(Org, Org.id == DepositRequest.org_id)
    if within_path is not None:
        q = q.where(Org.path.startswith(within_path))
    if status is not None:
        q = q.where(DepositRequest.status == status)
    return q


def describe(r: DepositRequest, org_name: str) -> str:
    """One line for people (CLI): 申请 #3 小店区总工会 ¥2,000.00 财政拨款 …"""
    return localize(msg("#{id} {org} {amount} {reason} ({source}) requested by {maker} {at} "
                        "{status}", id=r.id, org=org_name, amount=Yuan(r.amount_fen),
                        reason=Term(r.reason, "deposit_reason"),
                        source=Term(r.source, "deposit_source"), maker=r.maker_name,
                        at=clock.format_local(r.created_at),
                        status=Term(r.status, "deposit_request_status")))
