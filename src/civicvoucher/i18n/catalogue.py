"""The message catalogue: every ``i18n/<lang>/*.po`` file, merged, compiled in memory once.

One file per area keeps each readable and lets areas be translated apart (``core.po``,
``cli.po``, ``api.po``, ...). A msgid translated differently in two files is an error (the
check in ``scripts/messages.py`` names both), never a silent pick.
"""

from __future__ import annotations

import hashlib
import io
import os
from functools import cache
from gettext import GNUTranslations, NullTranslations
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

HERE = Path(__file__).resolve().parent
LOCALES = {"zh": "zh_CN"}


def po_files(lang: str) -> list[Path]:
    return sorted((HERE / LOCALES[lang]).glob("*.po"))


def merged(lang: str) -> tuple[Catalog, list[str]]:
    """The language's catalogue and the conflicts found while merging its files."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    locale = LOCALES[lang]
    out = Catalog(locale=locale, domain="civicvoucher")
    seen: dict[object, tuple[object, str]] = {}
    conflicts: list[str] = []
    for path in po_files(lang):
        with path.open("rb") as f:
            part = read_po(f, locale=locale)
        for m in part:
            if not m.id or m.fuzzy:
                continue
            key = (m.context, m.id)
            if key in seen:
                if seen[key][0] != m.string:
                    conflicts.append(f"{m.id!r} ({m.context or 'no context'}) is translated "
                                     f"differently in {seen[key][1]} and {path.name}")
                continue
            seen[key] = (m.string, path.name)
            out.add(m.id, m.string, context=m.context, locations=m.locations)
    return out, conflicts


def _cache_file(lang: str) -> Path | None:
    """Where the compiled catalogue is kept between processes: the user's cache folder, under
    a name that changes whenever a ``.po`` file does (so a stale copy is never read)."""
    try:
        stamp = repr([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in po_files(lang)])
        home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except (OSError, RuntimeError):
        return None
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return Path(home) / "civicvoucher" / f"{LOCALES[lang]}-{digest}.mo"


@cache
def translations(lang: str) -> NullTranslations:
    """The language's compiled catalogue. Reading and merging the ``.po`` files costs about
    0.2 s, paid by every command: the result is kept in the cache folder, and a process
    whose folder cannot be written compiles in memory. A kept catalogue is read with the
    standard library's ``gettext`` (Babel, which compiles, is not even imported then)."""
    if lang not in LOCALES:
        return NullTranslations()
    cached = _cache_file(lang)
    if cached is not None and cached.is_file():
        try:
            with cached.open("rb") as f:
                return GNUTranslations(io.BytesIO(f.read()))
        except (OSError, ValueError):
            pass  # unreadable or cut short: compile again below
    from babel.messages.mofile import write_mo

    catalog, _ = merged(lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    data = buf.getvalue()
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)  # whole or not at all: a reader never sees half a file
        except OSError:
            pass
    return GNUTranslations(io.BytesIO(data))
