"""``civicvoucher demo``: the Shanxi 2020 scenario through the real engine, and its report."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing yet: the scenario simulator lands with the demo issue."""
