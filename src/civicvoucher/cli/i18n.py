"""The command line in the operator's language: ``--lang``, then the environment.

Help texts are English in the code (docstrings and ``help=``); before a command runs, the
whole command tree's help is looked up in the catalogue (``i18n/zh_CN/cli.po``), and Click's
and Typer's own words (Usage, Options, "Missing argument") are translated too (``click.po``;
Typer carries its own copy of Click, ``typer._click``, whose modules are patched here).
"""

from __future__ import annotations

import gettext as _stdlib_gettext
import re
import sys
from collections.abc import Sequence

from civicvoucher import i18n
from civicvoucher.i18n import N_

_TYPER_WORDS = ("ARGUMENTS_PANEL_TITLE", "OPTIONS_PANEL_TITLE", "COMMANDS_PANEL_TITLE",
                "ERRORS_PANEL_TITLE", "ABORTED_TEXT", "RICH_HELP", "DEFAULT_STRING",
                "ENVVAR_STRING", "REQUIRED_LONG_STRING", "DEPRECATED_STRING")
_english_typer: dict[str, str] = {}
_ORIG = "_civicvoucher_english"  # the English originals, kept on each click object


def language_from_argv(argv: Sequence[str]) -> str | None:
    """``--lang X`` / ``--lang=X`` anywhere before a ``--``: it decides before parsing, so
    that even ``--help`` and Click's own parse errors speak it."""
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--lang" and i + 1 < len(argv):
            return i18n.parse_language(argv[i + 1]) or i18n.EN
        if a.startswith("--lang="):
            return i18n.parse_language(a.split("=", 1)[1]) or i18n.EN
    return None


def _click_gettext(text: str) -> str:
    return i18n.gettext(text)


# Typer's copy of Click writes its parse errors as f-strings, with no gettext: each pattern
# below turns one back into a template with parameters, which the catalogue translates.
USAGE_ERRORS = [
    (re.compile(r"Missing argument '(?P<name>[^']*)'\.(?P<rest>.*)", re.S),
     N_("Missing argument '{name}'.")),
    (re.compile(r"Missing option '(?P<name>[^']*)'\.(?P<rest>.*)", re.S),
     N_("Missing option '{name}'.")),
    (re.compile(r"Missing parameter: (?P<name>\S+)(?P<rest>.*)", re.S),
     N_("Missing parameter: {name}")),
    (re.compile(r"No such option: (?P<name>\S+?)(?P<rest>(?:\. Did you mean .*)?)$", re.S),
     N_("No such option: {name}")),
    (re.compile(r"No such command '(?P<name>[^']*)'\.(?P<rest>.*)", re.S),
     N_("No such command '{name}'.")),
    (re.compile(r"Option '(?P<name>[^']*)' requires an argument\.(?P<rest>.*)", re.S),
     N_("Option '{name}' requires an argument.")),
    (re.compile(r"Option '(?P<name>[^']*)' does not take a value\.(?P<rest>.*)", re.S),
     N_("Option '{name}' does not take a value.")),
    (re.compile(r"Got unexpected extra arguments? \((?P<name>.*)\)(?P<rest>)$", re.S),
     N_("Unexpected extra arguments: {name}")),
    (re.compile(r"Invalid value for (?P<name>[^:]*): (?P<rest>.*)", re.S),
     N_("Invalid value for {name}:")),
    (re.compile(r"Missing command\.(?P<name>)(?P<rest>.*)", re.S), N_("Missing command.")),
]
_DID_YOU_MEAN = re.compile(r"\.? ?Did you mean (?P<s>.*)\?$")


def translate_usage_error(text: str, lang: str) -> str:
    """One of Click's parse errors in ``lang`` (unknown shapes stay as they are)."""
    if lang == i18n.EN:
        return text
    for pattern, template in USAGE_ERRORS:
        m = pattern.match(text)
        if m is None:
            continue
        out = i18n.localize(i18n.msg(template, name=m["name"]), lang)
        rest = m["rest"].strip()
        if (d := _DID_YOU_MEAN.search(rest)) is not None:
            out += " " + i18n.localize(i18n.msg("Did you mean {name}?", name=d["s"]), lang)
        elif rest:
            out += " " + translate_value_error(rest, lang)
        return out
    return text


_VALUE_ERRORS = [
    (re.compile(r"'?(?P<v>.*?)'? is not a valid integer\.?$"), N_("{v} is not a whole number.")),
    (re.compile(r"Value '(?P<v>.*)' is not a valid (?P<t>.*)\.$"), N_("{v} is not a valid {t}.")),
    (re.compile(r"'(?P<v>.*)' is not one of (?P<t>.*)\.$"), N_("{v} is not one of {t}.")),
    (re.compile(r"Path '(?P<v>.*)' does not exist\.$"), N_("Path {v} does not exist.")),
    (re.compile(r"File '(?P<v>.*)' does not exist\.$"), N_("File {v} does not exist.")),
]


def translate_value_error(text: str, lang: str) -> str:
    for pattern, template in _VALUE_ERRORS:
        if (m := pattern.match(text)) is not None:
            return i18n.localize(i18n.msg(template, **m.groupdict()), lang)
    return i18n.localize(text, lang)


def _install_error_translation() -> None:
    import typer.rich_utils as ru

    original = getattr(ru.rich_format_error, "__wrapped__", ru.rich_format_error)

    def rich_format_error(exc) -> None:
        if hasattr(exc, "format_message"):
            text = translate_usage_error(exc.format_message(), i18n.current())
            exc.format_message = lambda: text
        original(exc)

    rich_format_error.__wrapped__ = original
    ru.rich_format_error = rich_format_error


def _patch_library_words(lang: str) -> None:
    """Click's and Typer's built-in words, in ``lang``."""
    import typer.rich_utils as ru

    for mod in [m for name, m in sys.modules.items()
                if m is not None and (name == "click" or name.startswith("click.")
                                      or name.startswith("typer."))]:
        g = getattr(mod, "_", None)
        if g is _stdlib_gettext.gettext or g is _click_gettext:
            mod._ = _click_gettext
    for name in _TYPER_WORDS:
        english = _english_typer.setdefault(name, getattr(ru, name))
        setattr(ru, name, i18n.gettext(english, lang))
    _install_error_translation()


def localize_tree(cmd, lang: str):
    """Every help text of ``cmd`` and its subcommands, in ``lang`` (idempotent: the English
    originals are kept, so switching back and forth is exact)."""
    def walk(c) -> None:
        orig = _originals(c)
        for k, v in orig.items():
            setattr(c, k, i18n.gettext(v.strip(), lang) if v else v)
        for p in [*c.params, _help_option(c)]:
            if p is not None and (h := _originals(p)["help"]):
                p.help = i18n.gettext(h.strip(), lang)
        for sub in getattr(c, "commands", {}).values():
            walk(sub)

    walk(cmd)
    _patch_library_words(lang)
    return cmd


def _help_option(c):
    """The command's --help option (Click makes it on first use; make it now to word it)."""
    try:
        from typer._click.core import Context

        return c.get_help_option(Context(c))
    except Exception:
        return None


def _originals(obj) -> dict[str, str | None]:
    if _ORIG not in obj.__dict__:
        keys = ("help", "short_help", "epilog") if hasattr(obj, "params") else ("help",)
        obj.__dict__[_ORIG] = {k: getattr(obj, k, None) for k in keys}
    return obj.__dict__[_ORIG]


def strip_lang(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--lang X``: the option may come anywhere, Click sees none of it."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--":
            out.extend(argv[i:])
            break
        if a == "--lang":
            skip = True
            continue
        if a.startswith("--lang="):
            continue
        out.append(a)
    return out


def help_texts(cmd) -> list[tuple[str, str]]:
    """(where, English help text) of every command and option: the extractor's view."""
    out: list[tuple[str, str]] = []

    def walk(c, path: str) -> None:
        for v in _originals(c).values():
            if v:
                out.append((path, v.strip()))
        for p in c.params:
            if (h := _originals(p)["help"]):
                out.append((f"{path} {p.opts[0] if getattr(p, 'opts', None) else p.name}",
                            h.strip()))
        for name, sub in getattr(c, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cmd, "civicvoucher")
    return out
