"""A report table as people read it, the same on every surface that shows one (the offline
HTML page, the PDF, the console's reports page): the visible columns (machine keys left out),
each column of amounts in one unit (元, 万元 or 亿元, chosen by its largest value and named in
its header), and every cell as text (``fmt``), with the English beside a Chinese label."""

from __future__ import annotations

from typing import Any

from civicvoucher.analytics import fmt
from civicvoucher.analytics.tables import Table


def table_view(table: Table) -> dict[str, Any]:
    """A table as the template needs it: visible columns (a column of amounts in one unit,
    named in its header) and formatted cells."""
    cols = [c for c in table.columns if not c.code]
    units = {c.key: fmt.money_unit(r.get(c.key) for r in table.rows)
             for c in cols if c.kind == "fen"}
    heads = []
    for c in cols:
        unit = units.get(c.key)
        heads.append(dict(label_zh=f"{c.label_zh}（{unit.zh}）" if unit else c.label_zh,
                          label_en=f"{c.label_en} ({unit.en})" if unit else c.label_en,
                          num=c.kind not in ("text", "bool"), kind=c.kind))
    rows = []
    for r in table.rows:
        cells = []
        for c, head in zip(cols, heads, strict=True):
            en = ""
            if c.key.endswith("_zh"):
                base = c.key[:-3]
                en = r.get(f"{base}_en") or (r.get(base) if base != "label" else "") or ""
            css = "num" if head["num"] else ""
            if c.key in ("deviation_pct", "delta_pct"):
                css += " dev-" + fmt.deviation_class(r.get(c.key))
            if c.key == "verdict_zh":
                css += " verdict-" + str(r.get("verdict"))
            text = fmt.in_unit(r.get(c.key), units[c.key]) if c.key in units else fmt.cell(c, r)
            cells.append(dict(text=text, en=str(en) if en != "" else "", css=css,
                              label=head["label_zh"]))
        total = any(r.get(k) == "total" for k in ("level", "form", "group"))
        rows.append(dict(cells=cells, total=total))
    return dict(name=table.name, title_zh=table.title_zh, title_en=table.title_en,
                note_zh=table.note_zh, note_en=table.note_en, columns=heads, rows=rows)


def head_label(head: dict[str, Any], lang: str) -> str:
    """A column's header in ``lang``. A Chinese-label column shown in English shows its
    rows' English labels, so its header drops the '(zh)' the workbook needs."""
    return head["label_zh"] if lang == "zh" else head["label_en"].removesuffix(" (zh)")


def cell_text(cell: dict[str, Any], head: dict[str, Any], lang: str) -> str:
    """A cell in ``lang``: the row's English beside a Chinese label, yes/no for 是/否."""
    if lang == "zh":
        return cell["text"]
    text = cell["en"] or cell["text"]
    if head.get("kind") == "bool":
        text = {"是": "yes", "否": "no"}.get(text, text)
    return text
