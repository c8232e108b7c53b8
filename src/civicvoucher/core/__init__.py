"""Pure core: money, ids, clock. Imports no SQLAlchemy, FastAPI or Typer."""
