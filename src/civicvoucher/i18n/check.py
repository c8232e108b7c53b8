"""Keeping the catalogue complete: extract every marked string, compare with the ``.po`` files.

Used by ``scripts/messages.py`` (for translators) and by the test suite (so a message added
without its Chinese fails the build). Three sources of msgids:

1. strings marked in the code: ``_``, ``N_``, ``msg``, ``nmsg``, ``gettext``, ``ngettext``,
   ``pgettext`` (Babel's Python extractor);
2. the CLI's help: every command's and option's help text, read off the command tree;
3. the words of Click and Typer that a ``--help`` or a parse error shows (``LIBRARY_WORDS``).

And one rule the extractor cannot see: an error raised with a bare English literal or an
f-string (``raise NotFound(f"no program {ref}")``) is a message nobody can translate;
``unmarked_raises`` lists them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.extract import extract_from_dir

from civicvoucher.i18n.catalogue import merged

PACKAGE = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "msg": None, "nmsg": (1, 2),
            "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
# the console's templates say msg and nmsg as t and tn (console/render.py)
TEMPLATE_KEYWORDS = {**KEYWORDS, "t": None, "tn": (1, 2)}
SKIP_DIRS = ("migrations", "web/static")

# Typer's own words in --help (its copy of Click writes parse errors as f-strings: those are
# matched back to templates in cli/i18n.py, whose N_ marks put them in the catalogue).
LIBRARY_WORDS = [
    "Arguments", "Options", "Commands", "Error", "Aborted.", "Aborted!",
    "Try [blue]'{command_path} {help_option}'[/] for help.",
    "[default: {}]", "[env var: {}]", "[required]", "(deprecated) ", "(dynamic)",
    "default: {default}", "required", "env var: {var}", "Show this message and exit.",
]
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)?(?:![rsa])?(?::[^{}]*)?\}(?!\})")


@dataclass(frozen=True)
class Wanted:
    msgid: str
    context: str | None
    where: str
    plural: str | None = None


def extracted() -> list[Wanted]:
    import babel.messages.extract as bx

    out: list[Wanted] = []
    # Babel warns of every f-string among a marker's arguments, also a parameter's value
    # (msg("{n} rows", n=f"{n:,}")), which is fine; an f-string as the template itself is
    # caught by unmarked_raises below.
    warn, bx._warn_skipped_fstring = bx._warn_skipped_fstring, lambda *a, **k: None
    try:
        found = list(extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python")], keywords=KEYWORDS,
            comment_tags=(), strip_comment_tags=True))
        found += extract_from_dir(
            str(PACKAGE), method_map=[("console/templates/**.j2", "jinja2.ext:babel_extract")],
            keywords=TEMPLATE_KEYWORDS, options_map={"console/templates/**.j2": {
                "trimmed": "true"}}, comment_tags=(), strip_comment_tags=True)
    finally:
        bx._warn_skipped_fstring = warn
    for filename, lineno, message, _comments, context in found:
        if any(filename.startswith(d) for d in SKIP_DIRS):
            continue
        if isinstance(message, tuple):
            singular, plural = message[0], message[1]
            if singular:
                out.append(Wanted(singular, context, f"{filename}:{lineno}", plural))
        elif message:
            out.append(Wanted(message, context, f"{filename}:{lineno}"))
    return out


def cli_help() -> list[Wanted]:
    import typer

    from civicvoucher.cli.i18n import help_texts
    from civicvoucher.cli.main import app

    return [Wanted(text, None, f"cli: {where}")
            for where, text in help_texts(typer.main.get_command(app))]


def wanted() -> list[Wanted]:
    return extracted() + cli_help() + [Wanted(w, None, "click/typer") for w in LIBRARY_WORDS]


def placeholders(text: str) -> set[str]:
    return {m.group(1) or "" for m in _PLACEHOLDER.finditer(text)}


def problems(lang: str = "zh") -> list[str]:
    """Everything wrong with the catalogue of ``lang``: missing, empty, conflicting, or
    translated with other placeholders than the English."""
    catalog, out = merged(lang)
    seen: set[tuple[str | None, str]] = set()
    for w in wanted():
        key = (w.context, w.msgid)
        if key in seen:
            continue
        seen.add(key)
        m = catalog.get(w.msgid, context=w.context)
        text = m.string if m is not None else None
        if isinstance(text, tuple | list):
            text = text[0]
        if not text:
            out.append(f"untranslated ({w.where}): {w.msgid!r}")
            continue
        if placeholders(text) != placeholders(w.msgid):
            out.append(f"placeholders differ ({w.where}): {w.msgid!r} → {text!r}")
    return out


def missing(lang: str = "zh") -> list[Wanted]:
    catalog, _ = merged(lang)
    out, seen = [], set()
    for w in wanted():
        key = (w.context, w.msgid)
        m = catalog.get(w.msgid, context=w.context)
        if key in seen or (m is not None and m.string):
            continue
        seen.add(key)
        out.append(w)
    return out


def _error_classes() -> set[str]:
    import importlib
    import pkgutil

    import civicvoucher
    from civicvoucher.errors import CivicVoucherError

    for mod in pkgutil.walk_packages(civicvoucher.__path__, "civicvoucher."):
        if ".migrations" in mod.name or mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception:
            continue
    names, todo = set(), [CivicVoucherError]
    while todo:
        c = todo.pop()
        names.add(c.__name__)
        todo.extend(c.__subclasses__())
    return names


def _is_bare_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(re.search(r"[A-Za-z]{2}", node.value))
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_bare_text(node.left) or _is_bare_text(node.right)
    return False


def unmarked_raises() -> list[str]:
    """``raise SomeError("English")`` / ``f"..."`` sites: text that no catalogue can hold."""
    classes = _error_classes()
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if any(rel.startswith(d) for d in SKIP_DIRS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in classes and _is_bare_text(node.args[0]):
                out.append(f"{rel}:{node.lineno}: {name}({ast.unparse(node.args[0])[:70]})")
            if name in KEYWORDS and isinstance(node.args[0], ast.JoinedStr | ast.BinOp):
                out.append(f"{rel}:{node.lineno}: {name}() of an f-string or a sum: "
                           f"{ast.unparse(node.args[0])[:60]}")
            if name == "RowError" and len(node.args) >= 3 and _is_bare_text(node.args[2]):
                out.append(f"{rel}:{node.lineno}: RowError(..., {ast.unparse(node.args[2])[:60]})")
    return out
