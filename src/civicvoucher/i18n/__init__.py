"""Words for people: zh-CN first, English on request, from one message catalogue.

Every person-facing sentence (CLI output and ``--help``, errors through every door, import
row reasons) is written in the code in English and marked, so that Babel's extractor finds it:

- ``msg("no program {ref}", ref=ref)``: a message with named parameters. It *is* a ``str``
  (its English text), so logs, ``str(exc)`` and old callers keep working; the door that shows
  it to a person calls ``localize(text)`` and gets it in that person's language.
- ``nmsg("{n} voucher", "{n} vouchers", n)``: the same with a count (English inflects).
- ``_("Ledger OK")``: translate now, in the current language (for text printed at once).
- ``N_("Invalid input")``: mark a constant for the extractor without translating it yet.

Parameters are shown as people read them: ``Yuan(8000)`` is ¥80.00, ``Yuan(15_000_00,
compact=True)`` is 1.5万 (in English ¥15,000.00); a ``Term`` (a category or channel code) is
its name in the language (日用百货 / daily goods); another message is localized in turn.

The language is a context variable: the CLI sets it once from ``--lang``, then
``CIVICVOUCHER_LANG``, then ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG``; the API per
request from ``Accept-Language``. Nothing said, or a ``C``/``POSIX`` locale, means zh-CN:
the people this serves read Chinese.

The catalogue is ``i18n/zh_CN/*.po`` (one file per area, merged when loaded; a msgid in two
files must agree). ``python scripts/messages.py check`` extracts every marked string from the
code and the CLI's help and fails on any without a translation; the test suite runs it.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

ZH, EN = "zh", "en"
LANGUAGES = (ZH, EN)
DEFAULT = ZH
TAGS = {ZH: "zh-CN", EN: "en"}  # Content-Language and <html lang>
ENV = "CIVICVOUCHER_LANG"

_current: ContextVar[str | None] = ContextVar("civicvoucher_language", default=None)


def parse_language(text: str | None) -> str | None:
    """'zh', 'zh-CN', 'zh_CN.UTF-8', 'Chinese', '中文' → 'zh'; 'en', 'en_US' → 'en'; a C or
    POSIX locale, empty or unknown text → None (not said)."""
    if not text:
        return None
    t = text.strip().split(".")[0].split("@")[0].replace("_", "-").lower()
    if t in ("中文", "简体中文", "chinese") or t == "zh" or t.startswith("zh-"):
        return ZH
    if t in ("english", "英文", "英语") or t == "en" or t.startswith("en-"):
        return EN
    return None


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The CLI's language when no ``--lang`` is given: ``CIVICVOUCHER_LANG``, then the POSIX
    variables in gettext's order (``LANGUAGE`` may list several: the first known wins)."""
    env = os.environ if environ is None else environ
    if (lang := parse_language(env.get(ENV))) is not None:
        return lang
    for part in env.get("LANGUAGE", "").split(":"):
        if (lang := parse_language(part)) is not None:
            return lang
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if value:  # the first set variable decides, as in POSIX; C/POSIX → the default
            return parse_language(value) or DEFAULT
    return DEFAULT


def language_from_header(header: str | None) -> str:
    """zh or en from an ``Accept-Language`` header (highest q wins, ties go to the earlier
    one; ``q=0`` means "not this"); zh-CN when nothing usable is said."""
    best, best_q = None, 0.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = parse_language(tag) if tag.strip() != "*" else None
        if lang is not None and q > best_q:
            best, best_q = lang, q
    return best or DEFAULT


def current() -> str:
    """The language of whoever is being answered now (zh-CN when no door set one)."""
    return _current.get() or DEFAULT


def set_language(lang: str) -> None:
    _current.set(lang if lang in LANGUAGES else DEFAULT)


@contextmanager
def language(lang: str) -> Iterator[None]:
    token = _current.set(lang if lang in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(text: str, lang: str | None = None) -> str:
    """``text`` (an English msgid) in ``lang`` (default: the current language)."""
    lang = lang or current()
    if lang == EN or not text:
        return text
    from civicvoucher.i18n.catalogue import translations

    return translations(lang).gettext(text)


def ngettext(singular: str, plural: str, n: int, lang: str | None = None) -> str:
    lang = lang or current()
    if lang == EN:
        return singular if n == 1 else plural
    from civicvoucher.i18n.catalogue import translations

    return translations(lang).ngettext(singular, plural, n)


def pgettext(context: str, text: str, lang: str | None = None) -> str:
    lang = lang or current()
    if lang == EN:
        return text
    from civicvoucher.i18n.catalogue import translations

    return translations(lang).pgettext(context, text)


def _(text: str) -> str:
    return gettext(text)


def N_(text: str) -> str:
    return text


class _Formatter(string.Formatter):
    """``str.format`` limited to plain names: a parameter is never an attribute path or an
    index, so text that reached a template by mistake cannot reach into objects."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return self.get_value(field_name, args, kwargs), field_name


_FORMATTER = _Formatter()


def _fill(template: str, params: Mapping[str, Any], lang: str) -> str:
    if not params:
        return template
    shown = {k: show(v, lang) for k, v in params.items()}
    try:
        return _FORMATTER.vformat(template, (), shown)
    except (KeyError, IndexError, ValueError):
        return template


class Msg(str):
    """A message: its English text as a ``str``, and what it takes to say it in another
    language (the template, its parameters, an optional count)."""

    __slots__ = ("n", "params", "plural", "template")

    def __new__(cls, template: str, params: Mapping[str, Any] | None = None, *,
                plural: str | None = None, n: int | None = None) -> Msg:
        params = dict(params or {})
        if n is not None:
            params.setdefault("n", n)
        english = plural if (plural is not None and n != 1) else template
        self = super().__new__(cls, _fill(english, params, EN))
        self.template, self.params, self.plural, self.n = template, params, plural, n
        return self

    def localized(self, lang: str | None = None) -> str:
        lang = lang or current()
        if lang == EN:
            return str.__str__(self)
        if self.plural is not None:
            t = ngettext(self.template, self.plural, self.n or 0, lang)
        else:
            t = gettext(self.template, lang)
        return _fill(t, self.params, lang)

    def __reduce__(self):
        return (Msg, (self.template, self.params), {"plural": self.plural, "n": self.n})

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)


def msg(template: str, /, **params: Any) -> Msg:
    return Msg(template, params)


def nmsg(singular: str, plural: str, n: int, /, **params: Any) -> Msg:
    return Msg(singular, params, plural=plural, n=n)


def localize(text: Any, lang: str | None = None) -> str:
    """Any text for a person: a ``Msg`` in the language; a plain string looked up as a
    msgid (a constant message), else shown as it is (a name, a code, data)."""
    if isinstance(text, Msg):
        return text.localized(lang)
    if not isinstance(text, str):
        return show(text, lang or current())
    return gettext(text, lang)


class Yuan:
    """An amount of fen as people read it: ¥80.00; compact: 1.5万 / 8.7亿 in Chinese."""

    __slots__ = ("compact", "fen")

    def __init__(self, fen: int, *, compact: bool = False) -> None:
        self.fen, self.compact = fen, compact

    def localized(self, lang: str) -> str:
        from civicvoucher.core.money import WAN, YI, format_yuan

        if self.compact and lang == ZH:
            # 1.5万, 8.7亿: only when that is exact (to two decimals of the unit); a message
            # about money never rounds it, so ¥12,345.67 stays as it is
            for unit, word in ((YI, "亿"), (WAN, "万")):
                if abs(self.fen) >= unit and self.fen % (unit // 100) == 0:
                    whole, part = divmod(abs(self.fen) // (unit // 100), 100)
                    text = f"{whole:,}" + (f".{part:02d}".rstrip("0") if part else "")
                    return ("-" if self.fen < 0 else "") + text + word
        return format_yuan(self.fen)

    def __str__(self) -> str:
        return self.localized(EN)


class Term:
    """A code with a name in each language: a category, a channel, a status, a level.
    ``Term("daily_goods", "category")`` shows as 日用百货 or "daily goods" (the catalogue holds
    both under the context, so a code that is also an English word stays unambiguous)."""

    __slots__ = ("code", "context")

    def __init__(self, code: str, context: str) -> None:
        self.code, self.context = code, context

    def localized(self, lang: str | None = None) -> str:
        lang = lang or current()
        from civicvoucher.i18n.terms import name

        return name(self.context, self.code, lang)

    def __str__(self) -> str:
        return self.localized(EN)


class Text:
    """A parameter that is itself text for a person (a reason, a message made elsewhere):
    a ``Msg`` is localized, a constant looked up as a msgid, anything else shown as it is."""

    __slots__ = ("text",)

    def __init__(self, text: Any) -> None:
        self.text = text

    def localized(self, lang: str | None = None) -> str:
        return localize(self.text, lang)

    def __str__(self) -> str:
        return str(self.text)


def show(value: Any, lang: str) -> str:
    """One parameter of a message, in ``lang``."""
    if isinstance(value, Msg | Term | Yuan | Text):
        return value.localized(lang)
    if callable(getattr(value, "localized", None)):  # an error, an audit break, a row error
        return value.localized(lang)
    if isinstance(value, list | tuple | set | frozenset):
        sep = "、" if lang == ZH else ", "
        return sep.join(show(v, lang) for v in value)
    return str(value)
