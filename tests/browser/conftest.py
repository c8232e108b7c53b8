"""Browser-test fixtures: the real app served live on loopback, Debian's Chromium driven by
Playwright, a fresh context per test (viewport preset, language, time zone), and a test that
fails when its pages logged a console error or asked for anything off loopback.

Per xdist worker (or per plain run): one seeded world and server (``live_server``), one
browser (``browser``). Per test: ``browser_log``, ``context``, ``page``. Helpers:
``login(page, role)``, ``screenshot(page, name)``; ``axe(page)`` and
``assert_no_serious_a11y(page)`` are plain functions in ``tests.browser.harness``.
How to use: /work/wt/notes/browser.md (and the smoke test next to this file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from civicvoucher.auth.roles import Role
from tests.browser import harness, session
from tests.browser.harness import CHROMIUM, VIEWPORTS, BrowserLog, LiveServer, ParkedLoop
from tests.browser.world import BrowserWorld, activate_member, build_browser_world
from tests.world import SECRET

HERE = Path(__file__).parent
ALLOW_MARKER = "console_errors"


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_MARKER}(*patterns): the test expects console errors (all of them, or only "
        "those matching a pattern); requests off loopback still fail it")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:  # every test under tests/browser/ is a browser test
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


# --------------------------------------------------------------------------- per worker


@dataclass
class Live:
    url: str  # http://127.0.0.1:<port>
    world: BrowserWorld
    db: object
    server: LiveServer

    def account(self, role: Role | str):
        return self.world[role]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The real app (``create_app``) on a seeded SQLite world, served by uvicorn on a free
    loopback port in a background thread; stopped at the end of the worker's session."""
    from civicvoucher.api import create_app
    from civicvoucher.auth.ratelimit import Limits
    from civicvoucher.db import Database
    from civicvoucher.schema import upgrade

    path = tmp_path_factory.mktemp("browser-world") / "cv.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    world = build_browser_world(db)
    # every test logs in from 127.0.0.1: the per-address login limit (60 a minute) is for
    # attackers, not for a test suite; every other limit stays as deployed
    limits = dataclasses.replace(Limits.from_env(), login_per_ip=100_000)
    server = LiveServer(create_app(db, secret_key=SECRET, limits=limits)).start()
    try:
        activate_member(server.url, world)
        yield Live(server.url, world, db, server)
    finally:
        server.stop()
        db.dispose()


@pytest.fixture(scope="session")
def playwright_loop():
    """Playwright (sync API), started once per worker; yields its event loop, parked between
    browser tests (harness.ParkedLoop says why)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing and CI is set: the browser tests must run")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; never playwright's)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    loop = ParkedLoop()
    loop.pw = pw
    ParkedLoop.park()
    yield loop
    loop.resume()
    try:
        pw.stop()
    finally:
        ParkedLoop.park()


@pytest.fixture(scope="session")
def browser(playwright_loop):
    """One headless Debian Chromium per worker (never a downloaded one)."""
    playwright_loop.resume()
    try:
        b = playwright_loop.pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                               args=harness.CHROMIUM_ARGS)
    finally:
        ParkedLoop.park()
    yield b
    playwright_loop.resume()
    try:
        b.close()
    finally:
        ParkedLoop.park()


# --------------------------------------------------------------------------- per test


@pytest.fixture
def viewport() -> str:
    """"desktop" unless the test parametrizes it: ``@both_viewports`` or
    ``@pytest.mark.parametrize("viewport", ["phone"])``."""
    return "desktop"


@pytest.fixture
def locale(request) -> str:
    """The browser's language (Accept-Language, navigator.language): English like the rest
    of the suite, zh-CN for a test marked ``@pytest.mark.zh``; parametrize to choose."""
    return "zh-CN" if request.node.get_closest_marker("zh") else "en-US"


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def context(playwright_loop, browser, live_server, viewport, locale, browser_log):
    """A fresh browser context (no cookies, no storage) with the viewport preset; relative
    URLs go to the live server; anything off loopback is aborted and fails the test."""
    vp = VIEWPORTS[viewport]
    playwright_loop.resume()
    ctx = browser.new_context(
        base_url=live_server.url, viewport={"width": vp.width, "height": vp.height},
        device_scale_factor=vp.scale, is_mobile=vp.mobile, has_touch=vp.mobile,
        locale=locale, timezone_id="Asia/Shanghai", service_workers="block")
    ctx.set_default_timeout(harness.DEFAULT_TIMEOUT_MS)
    browser_log.attach(ctx)
    try:
        yield ctx
    finally:
        try:
            ctx.close()
        finally:
            ParkedLoop.park()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def login(live_server):
    """``login(page, role, via=None, bearer_header=False)`` → LoggedIn (account, token)."""
    def do(page, role, **kw):
        return session.login(page, live_server.world, live_server.url, role, **kw)

    return do


@pytest.fixture
def screenshot(request, tmp_path_factory, viewport):
    """``screenshot(page, name="", full_page=True)`` → the PNG's path, under
    $CIVICVOUCHER_SCREENSHOTS or pytest's tmp (``…/screenshots/``)."""
    folder = harness.screenshot_dir(tmp_path_factory.getbasetemp() / "screenshots")
    count = itertools.count(1)
    shots: list[Path] = []

    def shoot(page, name: str = "", *, full_page: bool = True, **kw) -> Path:
        test = request.node.name if viewport in request.node.name else (
            f"{request.node.name}-{viewport}")
        stem = harness.safe_name(f"{test}-{name or next(count)}")
        out = folder / f"{stem}.png"
        page.screenshot(path=str(out), full_page=full_page, **kw)
        shots.append(out)
        return out

    yield shoot
    if shots:
        request.node.add_report_section("call", "screenshots", "\n".join(map(str, shots)))


# --------------------------------------------------------------------------- the verdict


def _allowed(item) -> list[re.Pattern] | None:
    marks = list(item.iter_markers(ALLOW_MARKER))
    if not marks:
        return None
    patterns = [p for m in marks for p in m.args]
    return [re.compile(p) for p in patterns]  # [] (a bare marker): every error allowed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    log = getattr(item, "funcargs", {}).get("browser_log")
    if not isinstance(log, BrowserLog):
        return (yield)
    try:
        result = yield
    finally:
        ctx = item.funcargs.get("context")
        if ctx is not None:
            with contextlib.suppress(Exception):  # a closed context: nothing more to hear
                ctx.cookies()  # a round trip: events sent before it are dispatched
        if text := log.report():
            item.add_report_section("call", "browser", text)
    if problems := log.problems(_allowed(item)):
        pytest.fail("the page logged problems:\n" + "\n".join(problems), pytrace=False)
    return result
