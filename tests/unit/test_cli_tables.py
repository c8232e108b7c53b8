"""A list on a narrow terminal: every column stays readable (Rich squeezed some to nothing)."""

from __future__ import annotations

from rich.console import Console

from civicvoucher.cli import tables
from civicvoucher.cli.tables import Column, Sheet


def _printed(monkeypatch, width: int, sheet: Sheet) -> str:
    con = Console(width=width, record=True, force_terminal=False)
    monkeypatch.setattr(tables, "console", con)
    tables.show(sheet)
    return con.export_text()


def test_a_wide_list_on_an_80_column_terminal_shows_every_value(monkeypatch):
    cols = [Column(f"列{i}", f"column {i}") for i in range(12)]
    sheet = Sheet("t", cols, [[f"值{i}号" for i in range(12)]], title="核销记录")
    out = _printed(monkeypatch, 80, sheet)
    for i in range(12):
        assert f"值{i}号" in out and f"列{i}" in out, out
    wide = _printed(monkeypatch, 240, sheet)
    assert "┃" in wide and all(f"值{i}号" in wide for i in range(12))
