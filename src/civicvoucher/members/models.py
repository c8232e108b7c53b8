"""Member registry. ID numbers are stored only as a keyed hash and a masked form."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class Member(Base):
    __tablename__ = "member"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    union_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    name: Mapped[str] = mapped_column(String(50))
    id_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of the ID number
    id_masked: Mapped[str] = mapped_column(String(18))  # 110***********1234
    phone_masked: Mapped[str | None] = mapped_column(String(11))  # 138****5678
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # MemberStatus
    region_code: Mapped[str] = mapped_column(String(6))  # shard key
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # the last status change: when, why (离会原因 etc.), and for a transfer (调出) the
    # member row in the union the person moved to. The full history is in the audit log.
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    transferred_to_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))

    __table_args__ = (
        UniqueConstraint("union_id", "id_hash"),
        Index("ix_member_id_hash", "id_hash"),
        Index("ix_member_union_status", "union_id", "status"),
    )
