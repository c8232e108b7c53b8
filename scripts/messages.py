"""The message catalogue, for translators: what is missing, and where to add it.

    python scripts/messages.py check            # exit 1 listing every untranslated message
    python scripts/messages.py missing AREA [PREFIX...]
                        # append the missing msgids (those found in files whose path starts
                        # with a PREFIX, e.g. vouchers/ or "cli: civicvoucher issue"), empty,
                        # to src/civicvoucher/i18n/zh_CN/AREA.po
    python scripts/messages.py raises           # errors raised with untranslatable text

Then fill each empty ``msgstr`` in the file (keep every ``{placeholder}`` of the English).
"""

from __future__ import annotations

import sys

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from civicvoucher.i18n import check
from civicvoucher.i18n.catalogue import HERE


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "check":
        found = check.problems() + check.unmarked_raises()
        for p in found:
            print(p)
        print(f"{len(found)} problems")
        return 1 if found else 0
    if cmd == "raises":
        found = check.unmarked_raises()
        print("\n".join(found))
        return 1 if found else 0
    if cmd == "missing":
        area, prefixes = argv[1], tuple(argv[2:])
        path = HERE / "zh_CN" / f"{area}.po"
        if path.exists():
            with path.open("rb") as f:
                cat = read_po(f, locale="zh_CN")
        else:
            cat = Catalog(locale="zh_CN", domain="civicvoucher", project="civicvoucher")
        n = 0
        for w in check.missing():
            if prefixes and not w.where.startswith(prefixes):
                continue
            if cat.get(w.msgid, context=w.context) is None:
                mid = (w.msgid, w.plural) if w.plural else w.msgid
                cat.add(mid, ("",) if w.plural else "", context=w.context,
                        auto_comments=[w.where])
                n += 1
        with path.open("wb") as f:
            write_po(f, cat, width=100, no_location=True)
        print(f"{n} messages added to {path}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
