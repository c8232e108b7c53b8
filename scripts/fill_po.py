"""Fill translations into one area's catalogue from a JSON or Python dict file (translator aid).

    python scripts/fill_po.py AREA translations.json   # {"English msgid": "中文", ...}

A key "context\\x04msgid" fills a msgid under that context. Plural msgids take the one
Chinese form. Entries not in the file stay as they are; unknown keys are reported."""

from __future__ import annotations

import json
import sys

from babel.messages.pofile import read_po, write_po

from civicvoucher.i18n.catalogue import HERE


def main(area: str, source: str) -> int:
    path = HERE / "zh_CN" / f"{area}.po"
    with path.open("rb") as f:
        cat = read_po(f, locale="zh_CN")
    with open(source, encoding="utf-8") as f:
        table = json.load(f)
    unknown = []
    for key, zh in table.items():
        ctx, _, mid = key.rpartition("\x04")
        m = next((m for m in cat if (m.id[0] if isinstance(m.id, tuple) else m.id) == mid
                  and (m.context or "") == ctx), None)
        if m is None:
            unknown.append(key)
            continue
        m.string = (zh,) if isinstance(m.id, tuple) else zh
    with path.open("wb") as f:
        write_po(f, cat, width=100, no_location=True)
    for k in unknown:
        print(f"not in {path.name}: {k!r}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
