"""``civicvoucher serve`` / ``user`` / ``audit``: the HTTP API's commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing yet: the HTTP API lands with its own issue."""
