"""Organisation tree: province → city → county federations → grassroots unions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class Org(Base):
    __tablename__ = "org"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org.id"), index=True)
    level: Mapped[str] = mapped_column(String(20))  # OrgLevel
    name: Mapped[str] = mapped_column(String(200))
    division_code: Mapped[str | None] = mapped_column(String(6), unique=True)  # federations
    uscc: Mapped[str | None] = mapped_column(String(18), unique=True)  # unions
    unit_type: Mapped[str | None] = mapped_column(String(20))  # UnitType, unions only
    # Materialised path '/1/4/19/': a subtree is one indexed prefix query (ix_org_path).
    path: Mapped[str] = mapped_column(String(400))
    # The division code of the nearest federation: region rules and the shard key.
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        # path LIKE '/1/4/%': under a non-C collation PostgreSQL can serve a prefix LIKE only
        # from a pattern-ops btree (a plain one does equality and ORDER BY, not LIKE). SQLite
        # gets a plain index. See bench/bench_org_path.py for the plans.
        Index("ix_org_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),
    )
