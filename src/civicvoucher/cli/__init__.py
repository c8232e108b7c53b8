"""Typer commands, one module per domain; ``main.run`` is the console script."""
