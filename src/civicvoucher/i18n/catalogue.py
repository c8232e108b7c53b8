"""The message catalogue: every ``i18n/<lang>/*.po`` file, merged, compiled in memory once.

One file per area keeps each readable and lets areas be translated apart (``core.po``,
``cli.po``, ``api.po``, ...). A msgid translated differently in two files is an error (the
check in ``scripts/messages.py`` names both), never a silent pick.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

HERE = Path(__file__).resolve().parent
LOCALES = {"zh": "zh_CN"}


def po_files(lang: str) -> list[Path]:
    return sorted((HERE / LOCALES[lang]).glob("*.po"))


def merged(lang: str) -> tuple[Catalog, list[str]]:
    """The language's catalogue and the conflicts found while merging its files."""
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


@cache
def translations(lang: str) -> Translations:
    if lang not in LOCALES:
        return Translations()
    catalog, _ = merged(lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain="civicvoucher")
