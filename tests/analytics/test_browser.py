"""The HTML report in a real headless Chromium: every chart draws, nothing errors, and the
page asks the network for nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from civicvoucher.analytics.charts import CHARTS
from civicvoucher.analytics.render import write_outputs
from tests.analytics.world import build_report_world

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing and CI is set: the browser test must run in CI")
        pytest.skip(f"{CHROMIUM} not installed (install Debian's chromium; never playwright's)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


def test_report_renders_offline_with_every_chart_drawn(chromium, sqlite_db, make_report,
                                                       tmp_path):
    build_report_world(sqlite_db)
    baseline = make_report(sqlite_db.url)
    html = write_outputs(baseline, tmp_path, baseline=baseline,
                         title="山西省职工消费券 政策报告")["html"]
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))

    def block(route):
        requests.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith("file:"), block)
    page.goto(html.as_uri())
    page.wait_for_selector(f"html[data-charts-ready='{len(CHARTS)}']", timeout=15_000)
    for chart_id, *_ in CHARTS:
        size = page.eval_on_selector(
            f"#{chart_id}",
            "el => { const c = el.querySelector('canvas, svg');"
            " return c ? [c.getBoundingClientRect().width, c.getBoundingClientRect().height]"
            " : null; }")
        assert size is not None, f"{chart_id} drew nothing"
        assert size[0] > 200 and size[1] > 200, (chart_id, size)
    assert "政策报告" in page.inner_text("h1")
    assert page.locator("#table-whatif").count() == 1
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    assert problems == []
    assert requests == []
