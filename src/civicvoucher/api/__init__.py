"""The HTTP API under /api/v1 (FastAPI). ``create_app()`` builds it."""

from civicvoucher.api.app import create_app

__all__ = ["create_app"]
