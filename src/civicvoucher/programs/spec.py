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
from civicvoucher.i18n import EN, N_, Msg, Term, Text, current, gettext, msg
from civicvoucher.merchants.rules import (
    CATEGORY_LABEL_ZH,
    CHANNEL_LABEL_ZH,
    Category,
    Channel,
    parse_category,
    parse_channels,
)
from civicvoucher.programs.models import PRODUCT_KIND_LABEL_ZH, ProductKind

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

    @field_validator("categories", mode="before")
    @classmethod
    def _category_names(cls, v: object) -> object:
        """A category by its code or its Chinese name: "daily_goods" or "日用百货"."""
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [(parse_category(c) or c) if isinstance(c, str) else c for c in v]
        return v

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_names(cls, v: object) -> object:
        """A channel by its code or its Chinese name: "offline" or "线下"; one string may
        list several ("线下、外卖")."""
        if isinstance(v, str):
            found, unknown = parse_channels(v)
            return [*found, *unknown]
        if isinstance(v, list):
            out: list[object] = []
            for c in v:
                if isinstance(c, str):
                    found, unknown = parse_channels(c)
                    out += [*found, *unknown] if (found or unknown) else [c]
                else:
                    out.append(c)
            return out
        return v

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
            raise ValueError(msg("expires_at must be after valid_from"))
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
            raise ValueError(msg("product keys must be unique"))
        return v


def load_program_spec(path: Path | str) -> ProgramSpec:
    """Read and validate a program file; errors name the file and the key."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(msg("{file}: not valid TOML: {problem}", file=str(path),
                                  problem=str(exc)), field="file") from None
    return parse_program_spec(data, source=str(path))


# pydantic's error types as people read them (the rest: pydantic's English, or 取值无效 in zh)
_PROBLEMS: dict[str, str] = {
    "missing": N_("is required"),
    "extra_forbidden": N_("is not a key of a program file"),
    "int_type": N_("should be a whole number"),
    "int_parsing": N_("should be a whole number"),
    "int_from_float": N_("should be a whole number"),
    "string_type": N_("should be text in quotes"),
    "bool_type": N_("should be true or false"),
    "bool_parsing": N_("should be true or false"),
    "list_type": N_("should be a list in brackets: [...]"),
    "model_type": N_("should be a table of keys"),
    "model_attributes_type": N_("should be a table of keys"),
    "datetime_type": N_("should be a date or a time, e.g. 2020-04-26 or 2020-04-26T00:00:00"),
    "datetime_parsing": N_("should be a date or a time, e.g. 2020-04-26 or 2020-04-26T00:00:00"),
    "datetime_from_date_parsing": N_("should be a date or a time, e.g. 2020-04-26 or "
                                     "2020-04-26T00:00:00"),
    "string_pattern_mismatch": N_("may use only lower-case letters, digits, - and _ (starting "
                                  "with a letter or a digit)"),
}
_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", N_("must be greater than {limit}")),
    "greater_than_equal": ("ge", N_("must be at least {limit}")),
    "less_than": ("lt", N_("must be less than {limit}")),
    "less_than_equal": ("le", N_("must be at most {limit}")),
    "too_short": ("min_length", N_("needs at least {limit} entries")),
    "too_long": ("max_length", N_("takes at most {limit} entries")),
    "string_too_short": ("min_length", N_("needs at least {limit} characters")),
    "string_too_long": ("max_length", N_("takes at most {limit} characters")),
}
_REGION_SCOPE_ZH = {RegionScope.COUNTY: "本县", RegionScope.CITY: "本市",
                    RegionScope.PROVINCE: "本省"}
# key → (its codes with Chinese names, whether the Chinese name is accepted as input)
_CHOICES: dict[str, tuple[dict, bool]] = {
    "categories": (CATEGORY_LABEL_ZH, True), "channels": (CHANNEL_LABEL_ZH, True),
    "kind": (PRODUCT_KIND_LABEL_ZH, False), "region_scope": (_REGION_SCOPE_ZH, False),
}


class _Choice(Term):
    """One accepted value in a refusal: the code in English; in Chinese its name when the
    name is accepted too (日用百货), else the code with its name (consumption（消费券）)."""

    __slots__ = ("accepted", "zh")

    def __init__(self, code: str, zh: str, accepted: bool) -> None:
        super().__init__(code, "")
        self.zh, self.accepted = zh, accepted

    def localized(self, lang: str | None = None) -> str:
        if (lang or current()) == EN:
            return self.code
        return self.zh if self.accepted else f"{self.code}（{self.zh}）"

    def __str__(self) -> str:
        return self.code


def problem(err: dict) -> Msg:
    """One pydantic error as a message for a person (without the key)."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "value_error" and isinstance(ctx.get("error"), Exception):
        e = ctx["error"]
        text = e.args[0] if e.args else str(e)
        return text if isinstance(text, Msg) else Msg("{problem}", {"problem": Text(text)})
    if kind in _PROBLEMS:
        return msg(_PROBLEMS[kind])
    if kind in _BOUNDS:
        name, template = _BOUNDS[kind]
        return Msg(template, {"limit": ctx.get(name, "")})
    if kind == "enum":
        names = [str(p) for p in err.get("loc", ()) if isinstance(p, str)]
        table, accepted = next((_CHOICES[n] for n in reversed(names) if n in _CHOICES),
                               (None, False))
        if table is not None:
            choices = [_Choice(str(c), zh, accepted) for c, zh in table.items()]
            return msg("should be one of {choices}", choices=choices)
    return Msg("{problem}", {"problem": _Unknown(err.get("msg", ""))})


class _Unknown(Text):
    """pydantic's own English for an error we have no sentence for; 取值无效 in Chinese."""

    def localized(self, lang: str | None = None) -> str:
        if (lang or current()) == EN:
            return str(self.text)
        return gettext(N_("invalid value"), lang)


def parse_program_spec(data: dict, *, source: str | None = None) -> ProgramSpec:
    """Validate a program definition; the first error names the key (and ``source``, the
    file, when given), in the reader's language."""
    from pydantic import ValidationError as PydanticError

    try:
        return ProgramSpec.model_validate(data)
    except PydanticError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        what = problem(err)
        if not loc:
            text = msg("{file}: {problem}", file=source, problem=what) if source else what
        elif source:
            text = msg("in {file}, {key}: {problem}", file=source, key=loc, problem=what)
        else:
            text = msg("{key}: {problem}", key=loc, problem=what)
        raise ValidationError(text, field=loc or None) from None
