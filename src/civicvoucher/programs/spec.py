"""The program definition file (TOML), validated at the edge with pydantic.

    key = "shanxi-2020"
    name = "山西省职工一次性特别消费券"
    documents = ["关于动员引导全省广大职工积极消费促进经济发展的通知"]

    [[products]]
    key = "voucher"
    kind = "consumption"            # consumption | tourism_card
    name = "一次性特别消费券"
    denominations_yuan = [300]      # or [50, 50, 50, 50, 50, 50]
    threshold_yuan = 0              # 满减: spend at least this to use one voucher
    categories = ["daily_goods", "grain_produce", "supermarket_fuel", "hotel_dining", "other"]
    channels = ["offline"]          # offline | online | takeaway | groupbuy
    region_scope = "province"       # county | city | province (relative to the issuing union)
    valid_from = 2020-04-26T00:00:00
    expires_at = 2020-07-11T00:00:00   # exclusive: "by 2020-07-10 24:00"
    optional = false                # true: only members who opt in (the tourism card)

Times are local wall time in the deployment's zone (``CIVICVOUCHER_TIMEZONE``, default
Asia/Shanghai, i.e. Beijing time) unless written with an offset: ``2020-07-11T00:00:00`` is
Beijing midnight = 2020-07-10T16:00Z; ``2020-07-11T00:00:00+08:00`` says the same anywhere.
A bare date names a whole local day that is inside the window:

    valid_from = 2020-04-26        # from the start of that day: 2020-04-26T00:00 local
    expires_at = 2020-07-10        # through the end of that day: 2020-07-11T00:00 local

so ``expires_at = 2020-07-10`` and ``expires_at = 2020-07-11T00:00:00`` are the same deadline
(``expires_at`` is exclusive). A local time that a daylight-saving change skips or repeats in
the zone is refused (give an offset). Stored as naive UTC.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from civicvoucher.core import clock
from civicvoucher.core.money import FEN_PER_YUAN
from civicvoucher.core.regions import RegionScope
from civicvoucher.errors import ValidationError
from civicvoucher.merchants.rules import Category, Channel
from civicvoucher.programs.models import ProductKind

Yuan = Annotated[StrictInt, Field(gt=0, le=100_000)]


class ProductSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    kind: ProductKind = ProductKind.CONSUMPTION
    name: str = Field(min_length=1, max_length=200)
    denominations_yuan: list[Yuan] = Field(min_length=1, max_length=100)
    threshold_yuan: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    categories: list[Category] = Field(min_length=1)
    channels: list[Channel] = Field(min_length=1)
    region_scope: RegionScope = RegionScope.PROVINCE
    valid_from: datetime = Field(description="local time (CIVICVOUCHER_TIMEZONE, default "
                                 "Asia/Shanghai) unless an offset is given; a bare date is "
                                 "the start of that local day")
    expires_at: datetime = Field(description="exclusive; local time unless an offset is given; "
                                 "a bare date means through the end of that local day")
    optional: bool = False

    @field_validator("valid_from", "expires_at", mode="before")
    @classmethod
    def _whole_days(cls, v: object, info) -> object:
        """A bare date: valid_from starts at that local day's start, expires_at ends at that
        day's end (returned as aware UTC, so the local-time reading below leaves it alone)."""
        if (day := clock.bare_date(v)) is not None:
            edge = clock.start_of_day if info.field_name == "valid_from" else clock.end_of_day
            return edge(day).replace(tzinfo=UTC)
        return v

    @field_validator("valid_from", "expires_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return clock.to_utc(v)  # naive: local wall time; refuses a DST-ambiguous one

    @model_validator(mode="after")
    def _window(self) -> ProductSpec:
        if self.expires_at <= self.valid_from:
            raise ValueError("expires_at must be after valid_from")
        return self

    @property
    def denominations_fen(self) -> list[int]:
        return [d * FEN_PER_YUAN for d in self.denominations_yuan]

    @property
    def threshold_fen(self) -> int:
        return self.threshold_yuan * FEN_PER_YUAN


class ProgramSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    name: str = Field(min_length=1, max_length=200)
    documents: list[str] = []
    products: list[ProductSpec] = Field(min_length=1)

    @field_validator("products")
    @classmethod
    def _unique_keys(cls, v: list[ProductSpec]) -> list[ProductSpec]:
        keys = [p.key for p in v]
        if len(keys) != len(set(keys)):
            raise ValueError("product keys must be unique")
        return v


def load_program_spec(path: Path | str) -> ProgramSpec:
    """Read and validate a program file; errors name the field path."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}", field="file") from None
    return parse_program_spec(data)


def parse_program_spec(data: dict) -> ProgramSpec:
    from pydantic import ValidationError as PydanticError

    try:
        return ProgramSpec.model_validate(data)
    except PydanticError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ValidationError(f"{loc}: {err['msg']}", field=loc) from None
