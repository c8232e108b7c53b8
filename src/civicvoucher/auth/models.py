"""API users, their tokens, payment-channel secrets, rate-limit buckets, idempotency keys.

No secret is stored in clear: passwords as argon2id hashes, tokens as SHA-256 hashes, channel
secrets sealed (AES-GCM, ``core.sealed``) under a key kept outside the database, stored
answers with their shown-once secrets withheld (docs/secrets.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from civicvoucher.core.sealed import Keyring, SealedSecretError
from civicvoucher.db import Base, keyring_of
from civicvoucher.i18n import msg


class ApiUser(Base):
    """A person or integration. ``org_id`` / ``merchant_id`` / ``member_id`` bind the scope."""

    __tablename__ = "api_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id; None: tokens only
    role: Mapped[str] = mapped_column(String(30))  # Role
    org_id: Mapped[int | None] = mapped_column(ForeignKey("org.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchant.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # credentials (issue 9, auth/credentials.py): who set the password (admin | self |
    # invited), and a member's one-time activation code, only as its HMAC
    credential_origin: Mapped[str] = mapped_column(String(10), default="admin",
                                                   server_default="admin")
    activation_hash: Mapped[str | None] = mapped_column(String(64))
    activation_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    activation_used_at: Mapped[datetime | None] = mapped_column(DateTime)


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 (tokens are 256 random bits, so a fast hash
    is enough). ``access`` tokens live minutes; ``api`` tokens live until revoked."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # access | api
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings, never enough to use
    name: Mapped[str | None] = mapped_column(String(200))  # as long as ApiTokenIn allows
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class PaymentChannel(Base):
    """A payment channel's HMAC secret for signed callbacks (one per channel user), and the
    redemption channel kinds (``online``, ``offline`` ...) its callbacks may report.

    The secret is sealed (``secret_sealed``, bound to the channel's user id); the callback
    check opens it per request. ``unsealed_secret`` holds a secret from before migration 0009
    only until the first process with the key starts (``keys.bind_key`` seals it and clears
    the column); nothing else reads it."""

    __tablename__ = "payment_channel"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_user.id"), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_sealed: Mapped[str | None] = mapped_column(String(200))  # cv1:<key id>:<data>
    unsealed_secret: Mapped[str | None] = mapped_column(String(128))  # pre-0009, until sealed
    channels: Mapped[str] = mapped_column(String(60), default="online",
                                          server_default="online")  # comma-separated
    created_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def channel_set(self) -> frozenset[str]:
        return frozenset(c for c in self.channels.split(",") if c)

    @staticmethod
    def context(user_id: int) -> str:
        """What a sealed secret is bound to: a copy pasted into another row does not open."""
        return f"payment_channel.secret:{user_id}"

    @classmethod
    def seal(cls, session: Session, user_id: int, secret: str) -> str:
        """``secret`` sealed under the session's database's current key, for ``user_id``."""
        return keyring_of(session).seal(secret, context=cls.context(user_id))

    def open_secret(self, keyring: Keyring) -> str:
        if self.secret_sealed is None:  # only before the first keyed start after 0009
            raise SealedSecretError(msg("channel {name}: its secret is not sealed yet; start any"
                                        " civicvoucher command with the key once (keys.bind_key"
                                        " seals it)", name=self.name),
                                    code="sealed_secret_unreadable")
        return keyring.open(self.secret_sealed, context=self.context(self.user_id))


class RateBucket(Base):
    """A fixed-window counter and a failure counter with lockout, for one key (user, IP …)."""

    __tablename__ = "rate_bucket"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class IdempotencyRecord(Base):
    """One Idempotency-Key of one user: claimed first (in_progress), then the stored response."""

    __tablename__ = "idempotency_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)  # 0 for anonymous callers
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))  # in_progress | done
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    location: Mapped[str | None] = mapped_column(Text)
    # shown-once fields nulled in ``body`` (comma-separated JSON paths), said in the replay
    withheld: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    locked_at: Mapped[datetime] = mapped_column(DateTime)  # refreshed while the owner runs
    claim_token: Mapped[str | None] = mapped_column(String(64))  # the owner's fencing token
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_key_expires_at", "expires_at"),
    )
