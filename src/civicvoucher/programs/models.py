"""Programs and their products (consumption vouchers, tourism cards)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base
from civicvoucher.i18n import terms


class ProductKind(StrEnum):
    CONSUMPTION = "consumption"
    TOURISM_CARD = "tourism_card"


PRODUCT_KIND_LABEL_ZH: dict[ProductKind, str] = {
    ProductKind.CONSUMPTION: "消费券",
    ProductKind.TOURISM_CARD: "旅游年卡",
}
terms.register("product_kind", PRODUCT_KIND_LABEL_ZH)


class Program(Base):
    __tablename__ = "program"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    documents: Mapped[list] = mapped_column(JSON, default=list)
    per_member_fen: Mapped[int] = mapped_column(BigInteger)  # sum of all products' face values
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("program.id"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))  # ProductKind
    name: Mapped[str] = mapped_column(String(200))
    denominations: Mapped[list] = mapped_column(JSON)  # fen per voucher, e.g. [5000]*6
    face_value_fen: Mapped[int] = mapped_column(BigInteger)
    threshold_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # 满减: spend at least this
    categories: Mapped[list] = mapped_column(JSON)
    channels: Mapped[list] = mapped_column(JSON)
    region_scope: Mapped[str] = mapped_column(String(20))  # RegionScope
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)  # exclusive
    optional: Mapped[bool] = mapped_column(Boolean, default=False)  # opt-in, like the tourism card

    __table_args__ = (UniqueConstraint("program_id", "key"),)
