"""Merchant registry.

A merchant's bank details (where its settlement payouts go): the payee's account name, the
bank (开户行) and the account number. The number is never at rest in clear: it is sealed
(``core.sealed``, AES-256-GCM under the database's sealing keyring, bound to the merchant's
USCC so a value copied to another row does not open) for the bank export, which opens it as
an audited action; ``account_masked`` (``6222****1234``) is what pages and lists show.
``registered_by`` is who registered it (``user:<id>``; None for files and the command line):
the approval queue lets a second person activate it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class Merchant(Base):
    __tablename__ = "merchant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    mcc: Mapped[str] = mapped_column(String(4))
    category: Mapped[str] = mapped_column(String(20), index=True)  # Category
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    channels: Mapped[str] = mapped_column(String(60))  # comma-separated Channel values
    status: Mapped[str] = mapped_column(String(20))  # MerchantStatus
    created_at: Mapped[datetime] = mapped_column(DateTime)
    payee_name: Mapped[str | None] = mapped_column(String(200))  # 收款户名
    bank_name: Mapped[str | None] = mapped_column(String(200))  # 开户行
    account_sealed: Mapped[str | None] = mapped_column(String(300))  # cv1:<key id>:<data>
    account_masked: Mapped[str | None] = mapped_column(String(40))
    registered_by: Mapped[str | None] = mapped_column(String(120))

    @staticmethod
    def account_context(uscc: str) -> str:
        """What a sealed account number is bound to (the USCC never changes)."""
        return f"merchant.account:{uscc}"

    def open_account(self, keyring) -> str | None:
        """The account number in clear (the bank export only: audit the opening)."""
        if self.account_sealed is None:
            return None
        return keyring.open(self.account_sealed, context=self.account_context(self.uscc))

    @property
    def has_bank(self) -> bool:
        return self.account_sealed is not None

    @property
    def channel_set(self) -> frozenset[str]:
        return frozenset(c for c in self.channels.split(",") if c)
