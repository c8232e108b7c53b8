"""Pydantic's validation errors in the person's language.

Pydantic writes its messages in English. For a person reading Chinese, each common error
``type`` has a sentence here (its parameters from the error's ``ctx``); any other type gets a
generic sentence naming the type. English keeps pydantic's own text. A validator that raises
``ValueError(msg(...))`` is shown as that message, in the language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from civicvoucher.i18n import N_, Msg, Text, msg

# error type → English sentence (parameters from the error's ctx); zh in i18n/zh_CN/api.po
_REASONS: dict[str, str] = {
    "missing": N_("this field is required"),
    "extra_forbidden": N_("this field is not accepted here"),
    "int_type": N_("must be a whole number"),
    "int_parsing": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "float_type": N_("must be a number"),
    "float_parsing": N_("must be a number"),
    "decimal_type": N_("must be a number"),
    "decimal_parsing": N_("must be a number"),
    "finite_number": N_("must be a finite number"),
    "bool_type": N_("must be true or false"),
    "bool_parsing": N_("must be true or false"),
    "string_type": N_("must be text"),
    "string_too_short": N_("must be at least {min_length} characters long"),
    "string_too_long": N_("must be at most {max_length} characters long"),
    "string_pattern_mismatch": N_("is not in the expected format"),
    "too_short": N_("must have at least {min_length} items"),
    "too_long": N_("must have at most {max_length} items"),
    "list_type": N_("must be a list"),
    "set_type": N_("must be a list"),
    "tuple_type": N_("must be a list"),
    "dict_type": N_("must be an object"),
    "model_type": N_("must be an object"),
    "model_attributes_type": N_("must be an object"),
    "literal_error": N_("must be one of: {expected}"),
    "enum": N_("must be one of: {expected}"),
    "greater_than": N_("must be greater than {gt}"),
    "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"),
    "less_than_equal": N_("must be at most {le}"),
    "multiple_of": N_("must be a multiple of {multiple_of}"),
    "date_type": N_("must be a date (YYYY-MM-DD)"),
    "date_parsing": N_("must be a date (YYYY-MM-DD)"),
    "date_from_datetime_parsing": N_("must be a date (YYYY-MM-DD)"),
    "date_from_datetime_inexact": N_("must be a date (YYYY-MM-DD)"),
    "datetime_type": N_("must be a date and time (ISO 8601)"),
    "datetime_parsing": N_("must be a date and time (ISO 8601)"),
    "datetime_from_date_parsing": N_("must be a date and time (ISO 8601)"),
    "timezone_aware": N_("must be a date and time with its UTC offset"),
    "json_invalid": N_("is not valid JSON"),
    "json_type": N_("is not valid JSON"),
    "uuid_type": N_("must be a UUID"),
    "uuid_parsing": N_("must be a UUID"),
    "url_parsing": N_("must be a URL"),
    "url_type": N_("must be a URL"),
    "value_error": N_("invalid value"),
    "assertion_error": N_("invalid value"),
}
GENERIC = N_("invalid value ({type})")
_QUOTED = re.compile(r"'([^']*)'")


class Reason(Msg):
    """A pydantic error's reason: pydantic's own English, a catalogue sentence otherwise."""

    __slots__ = ()

    def __new__(cls, english: str, template: str, params: Mapping[str, Any]) -> Reason:
        self = str.__new__(cls, english)
        self.template, self.params, self.plural, self.n = template, dict(params), None, None
        return self

    def __reduce__(self):
        return (Reason, (str.__str__(self), self.template, self.params))


def _expected(text: Any) -> Any:
    """"'a', 'b' or 'c'" → ['a', 'b', 'c'] (joined with 、 in Chinese)."""
    found = _QUOTED.findall(str(text))
    return found or str(text)


def reason(error: Mapping[str, Any]) -> Msg:
    """The reason of one pydantic error (an item of ``exc.errors()``)."""
    english = str(error.get("msg") or "invalid")
    kind = str(error.get("type") or "")
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        inner = ctx.get("error")
        text = inner.args[0] if isinstance(inner, Exception) and inner.args else None
        if isinstance(text, Msg):  # a validator's own message: already in the catalogue
            return text
    template = _REASONS.get(kind)
    if template is None:
        return Reason(english, GENERIC, {"type": kind or "?"})
    params = {}
    for key in ("min_length", "max_length", "gt", "ge", "lt", "le", "multiple_of"):
        if key in ctx:
            params[key] = ctx[key]
    if "expected" in ctx:
        params["expected"] = _expected(ctx["expected"])
    return Reason(english, template, params)


def field_of(error: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()))


def detail(error: Mapping[str, Any]) -> Msg:
    """'{field}: {reason}' for one error (the reason alone when it names no field)."""
    r = reason(error)
    f = field_of(error)
    return msg("{field}: {reason}", field=f, reason=Text(r)) if f else r


__all__ = ["GENERIC", "Reason", "detail", "field_of", "reason"]
