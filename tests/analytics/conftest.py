"""Fixtures for report tests: the Shanxi scenario's published figures and county guarantees."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from civicvoucher.analytics import compute_report
from tests.analytics.world import GUARANTEE, build_report_world


def shanxi_scenario() -> dict:
    path = resources.files("civicvoucher") / "scenarios/data/shanxi-2020.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def scenario() -> dict:
    return shanxi_scenario()


@pytest.fixture(scope="session")
def published(scenario) -> dict:
    return scenario["published"]


@pytest.fixture
def report_world(db):
    """The worked example of tests/analytics/world.py, on SQLite and on PostgreSQL."""
    return build_report_world(db)


@pytest.fixture
def make_report(published):
    def make(url: str, *, scale: float = 0.001, guarantee: dict | None = None, **kw):
        return compute_report(url, scale=scale, published=published,
                              guarantee_by_county=GUARANTEE if guarantee is None else guarantee,
                              **kw)

    return make


DEMO_SCALE = 0.001


@pytest.fixture(scope="session")
def demo_db_url(tmp_path_factory) -> str:
    """The demo's Shanxi program at a tiny scale on SQLite (``DEMO_SCALE``, seed 2020)."""
    from civicvoucher.db import Database
    from civicvoucher.scenarios.model import load_scenario
    from civicvoucher.scenarios.simulate import simulate
    from civicvoucher.schema import upgrade

    db = Database(f"sqlite:///{tmp_path_factory.mktemp('demo-db') / 'demo.db'}")
    upgrade(db.engine)
    simulate(db, load_scenario(), scale=DEMO_SCALE, seed=2020, key=b"demo-test")
    db.dispose()
    return db.url
