"""What every request shares: the database, keys derived from the server secret, limits."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from civicvoucher.audit.service import chain_key
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.db import Database


@dataclass
class AppState:
    db: Database
    secret_key: bytes  # the ID-number hashing key (members import needs it)
    limits: Limits = field(default_factory=Limits)
    callback_window_s: int = 300
    qr_period_s: int = 30

    @property
    def audit_key(self) -> bytes:
        return chain_key(self.secret_key)

    @property
    def qr_key(self) -> bytes:
        return hmac.new(self.secret_key, b"civicvoucher qr payload v1", hashlib.sha256).digest()
