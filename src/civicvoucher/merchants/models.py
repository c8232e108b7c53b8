"""Merchant registry."""

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

    @property
    def channel_set(self) -> frozenset[str]:
        return frozenset(c for c in self.channels.split(",") if c)
