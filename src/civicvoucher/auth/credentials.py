"""A member's credential is the member's alone: an admin invites, the member sets the password.

Why: an outside attack had a union admin create a member login with a password of its
choosing, log in as the member, fetch a QR payload and have a cashier redeem it. So:

* **Nobody but the member sets a member's password.** Creating a member user (API or CLI)
  takes no password (a password is a 400 naming the field) and makes a one-time activation
  code instead. The member sends it with a password of their own to ``POST /auth/activate``.
* **Every other member credential is refused.** ``ApiUser.credential_origin`` says who set
  the credential: ``self`` (the member, by activating), ``invited`` (nothing usable yet: a
  code is out), ``admin`` (an admin or operator; every user created before migration 0008 is
  marked so). :func:`usable` is the one test: a member is usable only when ``self``. Token
  authentication (``tokens.authenticate``), token issue (``tokens.issue_token``, so login too)
  and the login's password check ask it.
* **The code.** 10 characters of Crockford's base32 (no I, L, O, U; typed O/I/L are read as
  0/1/1), shown as ``ABCDE-FGHJK``: 50 bits. Activation is limited per IP (20 a minute,
  10 wrong codes lock that IP for 15 minutes) and per member (10 tries a minute, never a lock,
  so nobody can lock a member out of activating): an online guesser gets at most about
  100,000 tries in the code's 7 days, a chance below 1 in 10^10. It is stored only as an
  HMAC-SHA256 (key derived from the deployment secret, bound to the user id), valid 7 days,
  used once; a new invitation voids the old code, clears the password and revokes every token
  of the user (audited as ``user.invite``). Activation revokes any older tokens too, so a
  token minted under an admin-set credential never comes back to life.
* **How the code reaches the member.** Either the API answer shows it once to the inviting
  admin, who prints it on a sealed slip (``activation_code`` is marked secret in the schema, so
  the idempotency store keeps a redacted answer), or it is sent to the member's phone: the
  admin names the number, which must be the one on file (compared by its keyed hash, since the
  registry keeps no phone in clear), and the code goes to the :class:`Notifier`, never into
  the answer. **There is no SMS gateway in this project.** The default notifier refuses
  (``sms_gateway_unavailable``); ``CIVICVOUCHER_NOTIFIER=log`` selects a development outbox
  that writes the message, code included, to the log (never use it in production); an
  integrator plugs a real gateway in with :func:`set_notifier`. The message is sent before
  the transaction commits: if the commit then fails, the member holds a code that never
  existed, and the admin invites again.

What this cannot stop: an admin who reads the slip before sealing it, or who first changes the
member's phone on file to their own, can still activate the account. Both leave audit entries
(``user.invite`` with the admin, ``member.change`` of the phone, ``auth.activate`` with the IP);
closing that needs a channel the admin does not control (a carrier-verified number, activation
in person). The SMS path is the stronger one: the admin never sees the code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.auth import ratelimit
from civicvoucher.auth.errors import Unauthenticated
from civicvoucher.auth.models import ApiToken, ApiUser
from civicvoucher.auth.passwords import hash_password, verify_password
from civicvoucher.core import clock
from civicvoucher.db import Database
from civicvoucher.errors import Conflict, NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.members.models import Member
from civicvoucher.members.rules import _MOBILE, hash_id_number, mask_phone, normalise_phone

log = logging.getLogger("civicvoucher.outbox")

ADMIN, SELF, INVITED = "admin", "self", "invited"  # ApiUser.credential_origin
MEMBER_ROLE = "member"
MIN_PASSWORD, MAX_PASSWORD = 10, 200

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_LENGTH = 10  # 50 bits
ACTIVATION_TTL = timedelta(days=7)
_TYPED_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

# activation limits (see the module docstring for why no per-member lock)
WINDOW = timedelta(minutes=1)
PER_IP = 20
PER_MEMBER = 10
IP_FAILURES_TO_LOCK = 10
LOCK_FOR = timedelta(minutes=15)


class MemberPasswordRefused(ValidationError):
    """An admin (API or CLI) tried to set a member's password."""

    code = "member_password_not_allowed"
    http_status = 400


class ActivationFailed(Unauthenticated):
    """Wrong, used or expired code, or no such member: one answer for all of them."""

    code = "activation_failed"


class SmsUnavailable(Conflict):
    code = "sms_gateway_unavailable"


def usable(user: ApiUser) -> bool:
    """May this user's password or tokens be used at all? Members only with a credential they
    set themselves (``self``); other roles whenever active."""
    if not user.active:
        return False
    return user.role != MEMBER_ROLE or user.credential_origin == SELF


def check_password(password: str, *, field: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(msg("password must be {least}-{most} characters",
                                  least=MIN_PASSWORD, most=MAX_PASSWORD), field=field)


# --- the code ------------------------------------------------------------------------------

def activation_key(secret_key: bytes) -> bytes:
    """The codes' HMAC key, derived from the deployment secret (never the ID-hash key itself)."""
    return hmac.new(secret_key, b"civicvoucher activation code v1", hashlib.sha256).digest()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``ABCDEFGHJK`` → ``ABCDE-FGHJK``, for the slip."""
    return f"{code[:5]}-{code[5:]}"


def normalise_code(text: str) -> str | None:
    """As typed (any case, spaces or dashes, O for 0, I or L for 1) → the code, or None."""
    code = "".join(text.split()).replace("-", "").upper().translate(_TYPED_AS)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_hash(key: bytes, user_id: int, code: str) -> str:
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


# --- inviting -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Invitation:
    user: ApiUser
    code: str  # in clear only here, in memory: shown once or sent, never stored
    expires_at: datetime
    voided_previous: bool  # an unused code was out and no longer works
    cleared_password: bool  # the user had a password (an admin-set one, or the member's own)


def invite(session: Session, *, user_id: int, key: bytes,
           now: datetime | None = None) -> Invitation:
    """Give a member user a fresh activation code: the old code (if any) stops working, the
    password is cleared and every token revoked, so nothing set before is usable until the
    member activates. ``key``: :func:`activation_key` of the deployment secret."""
    now = now or clock.now()
    user = session.get(ApiUser, user_id)
    if user is None:
        raise NotFound(msg("no user {ref}", ref=user_id), code="user_not_found")
    if user.role != MEMBER_ROLE:
        raise ValidationError(msg("user {user} is a {role}: only member users are invited with"
                                  " an activation code", user=user.username,
                                  role=Term(user.role, "role")), field="user_id")
    voided = (user.activation_hash is not None and user.activation_used_at is None
              and user.activation_expires_at is not None and user.activation_expires_at > now)
    had_password = user.password_hash is not None
    code = new_code()
    session.execute(update(ApiUser).where(ApiUser.id == user.id).values(
        activation_hash=code_hash(key, user.id, code), activation_expires_at=now + ACTIVATION_TTL,
        activation_used_at=None, password_hash=None, credential_origin=INVITED))
    revoke_all_tokens(session, user.id, now)
    session.refresh(user)
    return Invitation(user, code, now + ACTIVATION_TTL, voided, had_password)


def revoke_all_tokens(session: Session, user_id: int, now: datetime) -> int:
    return session.execute(update(ApiToken).where(ApiToken.user_id == user_id,
                                                  ApiToken.revoked_at.is_(None))
                           .values(revoked_at=now)).rowcount


class Notifier(Protocol):
    """Where an activation code goes when it is not printed: a member's phone."""

    def send(self, *, phone: str, text: str) -> None: ...


class NoGateway:
    """The default: this project has no SMS gateway, so sending is refused, plainly."""

    def send(self, *, phone: str, text: str) -> None:
        raise SmsUnavailable(N_("no SMS gateway is configured: leave send_code_to_phone out and"
                                " print the code on a sealed slip (CIVICVOUCHER_NOTIFIER=log is"
                                " a development outbox only)"))


class LogOutbox:
    """Development only: writes the message, code included, to the ``civicvoucher.outbox``
    log. A real deployment plugs its gateway in with :func:`set_notifier`."""

    def send(self, *, phone: str, text: str) -> None:
        log.warning("DEV OUTBOX (no SMS gateway; this line holds a secret): to %s: %s",
                    mask_phone(phone), text)


class MemoryOutbox:
    """Keeps what was sent, in memory: for tests and for an integrator's own tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, *, phone: str, text: str) -> None:
        self.sent.append((phone, text))


NOTIFIER_ENV = "CIVICVOUCHER_NOTIFIER"
_notifier: Notifier | None = None


def set_notifier(n: Notifier | None) -> None:
    """Plug a gateway in (None: back to what ``CIVICVOUCHER_NOTIFIER`` says)."""
    global _notifier
    _notifier = n


def notifier() -> Notifier:
    if _notifier is not None:
        return _notifier
    return LogOutbox() if os.environ.get(NOTIFIER_ENV, "").strip() == "log" else NoGateway()


def message(inv: Invitation) -> str:
    until = clock.format_local(inv.expires_at)
    return (f"【消费券】您的账户 {inv.user.username} 的激活码：{format_code(inv.code)}，"
            f"{until} 前有效，仅可使用一次。请在激活页面设置您自己的密码。工会工作人员不会向您"
            "索要此码。")


def deliver(session: Session, inv: Invitation, *, phone: str | None, id_key: bytes) -> str | None:
    """Send the code to ``phone`` if one is given, which must be the member's phone on file
    (the registry keeps only its keyed hash: ``id_key`` is the ID-hash key); returns the masked
    number. None: no phone, the caller shows the code once for a sealed slip."""
    if phone is None:
        return None
    number = normalise_phone(phone)
    member = session.get(Member, inv.user.member_id) if inv.user.member_id else None
    if not _MOBILE.fullmatch(number):
        raise ValidationError(N_("not a mainland mobile number (11 digits, 1…)"),
                              field="send_code_to_phone")
    if member is None or member.phone_hash is None or not hmac.compare_digest(
            member.phone_hash, hash_id_number(number, key=id_key)):
        raise ValidationError(N_("the code goes only to the member's phone on file, and this is"
                                 " not it"), field="send_code_to_phone", code="phone_not_on_file")
    notifier().send(phone=number, text=message(inv))
    return mask_phone(number)


# --- activating ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Activated:
    user_id: int
    username: str
    member_id: int | None
    replayed: bool  # the same code and password again, after it went through


@dataclass(frozen=True)
class _Candidate:
    id: int
    username: str
    member_id: int | None
    activation_hash: str | None
    activation_expires_at: datetime | None
    activation_used_at: datetime | None
    password_hash: str | None
    credential_origin: str


def _candidates(session: Session, username: str | None, member_id: int | None) -> list[_Candidate]:
    q = select(ApiUser).where(ApiUser.role == MEMBER_ROLE)
    q = q.where(ApiUser.username == username) if username is not None else q.where(
        ApiUser.member_id == member_id)
    return [_Candidate(u.id, u.username, u.member_id, u.activation_hash,
                       u.activation_expires_at, u.activation_used_at, u.password_hash,
                       u.credential_origin)
            for u in session.execute(q.order_by(ApiUser.id).limit(20)).scalars()]


def activate(db: Database, *, code: str, password: str, ip: str, key: bytes,
             username: str | None = None, member_id: int | None = None,
             audit: Callable[[Session, Activated], None] | None = None,
             now: datetime | None = None) -> Activated:
    """Set a member's own password with their activation code (by username or member id).

    Limited first (per IP; per member once the member is known; an unknown name touches no
    member's bucket), then the code: wrong, used, expired or unknown all answer 401
    ``activation_failed``. The same code with the same password again after success answers
    the same (a retry whose answer was lost), without a second audit entry. ``audit`` runs in
    the transaction that sets the password."""
    if (username is None) == (member_id is None):
        raise ValidationError(N_("give the member's username or member id, not both"),
                              field="username")
    by_ip = f"activate:ip:{ip[:64]}"
    ratelimit.hit(db, by_ip, limit=PER_IP, window=WINDOW)
    check_password(password)
    found = db.run(_candidates, username, member_id)
    if found:
        ratelimit.hit(db, f"activate:member:{found[0].member_id}", limit=PER_MEMBER,
                      window=WINDOW)
    now = now or clock.now()
    typed = normalise_code(code)
    match = next((c for c in found if typed and c.activation_hash and hmac.compare_digest(
        c.activation_hash, code_hash(key, c.id, typed))), None)

    def refuse() -> ActivationFailed:
        locked = ratelimit.fail(db, by_ip, threshold=IP_FAILURES_TO_LOCK, lock_for=LOCK_FOR,
                                window=WINDOW)
        return ActivationFailed(N_("wrong, used or expired activation code: ask your union for"
                                   " a new one if it does not work"), locked=locked,
                                known=bool(found))

    if match is None:
        raise refuse()
    if match.activation_used_at is not None:
        if _same_activation(match, password):
            return Activated(match.id, match.username, match.member_id, replayed=True)
        raise refuse()
    if match.activation_expires_at is None or match.activation_expires_at <= now:
        raise refuse()
    new_hash = hash_password(password)

    def run(s: Session) -> Activated | None:
        n = s.execute(update(ApiUser).where(
            ApiUser.id == match.id, ApiUser.activation_hash == match.activation_hash,
            ApiUser.activation_used_at.is_(None), ApiUser.activation_expires_at > now,
        ).values(password_hash=new_hash, credential_origin=SELF, activation_used_at=now)).rowcount
        if n != 1:
            return None  # used (or re-invited) meanwhile
        revoke_all_tokens(s, match.id, now)
        done = Activated(match.id, match.username, match.member_id, replayed=False)
        if audit is not None:
            audit(s, done)
        return done

    done = db.run(run)
    if done is not None:
        return done
    again = next((c for c in db.run(_candidates, username, member_id) if c.id == match.id), None)
    if again is not None and again.activation_hash == match.activation_hash and \
            again.activation_used_at is not None and _same_activation(again, password):
        return Activated(match.id, match.username, match.member_id, replayed=True)
    raise refuse()


def _same_activation(c: _Candidate, password: str) -> bool:
    return c.credential_origin == SELF and verify_password(c.password_hash, password)
