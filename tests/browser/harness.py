"""The pieces of the browser harness that are not fixtures: the live server, Chromium's launch
options, the viewports, what a page logged, axe-core, screenshots. Fixtures: conftest.py."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never a browser Playwright downloads
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run",
    "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
]
AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS_ENV = "CIVICVOUCHER_SCREENSHOTS"
DEFAULT_TIMEOUT_MS = 10_000  # fail fast (Playwright's default is 30 s)


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    mobile: bool = False
    scale: float = 1


VIEWPORTS: dict[str, Viewport] = {
    "phone": Viewport("phone", 390, 844, mobile=True, scale=2),
    "desktop": Viewport("desktop", 1400, 900),
}
both_viewports = pytest.mark.parametrize("viewport", list(VIEWPORTS))  # phone, desktop


@contextmanager
def loads(page) -> Iterator[None]:
    """The click or key inside leads to a new page: return once that page has loaded.

    ``page.wait_for_load_state("load")`` after a click returns at once, while the old page is
    still showing; so does ``wait_for_url`` when the new page has the old one's address (a
    language switch, a form that posts to itself). Waiting for the next ``load`` event, armed
    before the action, is neither."""
    with page.expect_event("load"):
        yield


# --------------------------------------------------------------------------- live server


class LiveServer:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1, on a port the kernel
    picks (the socket is bound before the thread starts, so there is no race for it)."""

    def __init__(self, app, *, log_level: str = "warning") -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.host, self.port = self.sock.getsockname()
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"live-server-{self.port}",
                                       daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # SystemExit from a failed startup, too
            self.error = exc

    def start(self, timeout: float = 20) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"live server did not start on {self.url}: {self.error!r}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10)
        if self.thread.is_alive():  # stuck connections: stop waiting for them
            self.server.force_exit = True
            self.thread.join(5)
        self.sock.close()


# --------------------------------------------------------------------------- Playwright's loop


class ParkedLoop:
    """Playwright's sync API leaves its event loop marked *running* in the main thread
    between calls, so while one browser lives for the whole worker session, any later test in
    that worker calling ``asyncio.run`` would fail ("cannot be called from a running event
    loop"). The fixtures hand the loop back to Playwright for a browser test (``resume``) and
    take it away after (``park``)."""

    def __init__(self) -> None:
        self.loop = asyncio._get_running_loop()
        self.pw = None  # the Playwright object (sync API)

    def resume(self) -> None:
        asyncio._set_running_loop(self.loop)

    @staticmethod
    def park() -> None:
        asyncio._set_running_loop(None)


# --------------------------------------------------------------------------- what a page logged


def is_loopback(url: str) -> bool:
    """http(s)/ws(s) to 127.0.0.1 (or ::1), or a URL that never leaves the browser."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in (
        "127.0.0.1", "::1")


# Chromium logs a console error for every fetch answered 4xx/5xx. A test that expects a 4xx
# (a wrong password, a refused form) says so: @pytest.mark.console_errors(HTTP_4XX).
HTTP_4XX = r"the server responded with a status of 4\d\d"


@dataclass
class BrowserLog:
    """Everything a test's pages said: console messages, uncaught errors, failed requests,
    and requests that tried to leave loopback (aborted before they left)."""

    console: list[tuple[str, str, str]] = field(default_factory=list)  # (type, text, url)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)  # "GET url: net::ERR_…"
    outside_requests: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [f"{text} ({url})" if url else text
                for kind, text, url in self.console if kind == "error"]

    def attach(self, context) -> None:
        context.on("page", self.watch)
        context.route(lambda url: not is_loopback(url), self._refuse)

    def watch(self, page) -> None:
        def console(m) -> None:
            loc = m.location or {}
            self.console.append((m.type, m.text, loc.get("url", "")))

        page.on("console", console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed_requests.append(
            f"{r.method} {r.url}: {r.failure}"))

    def _refuse(self, route) -> None:
        self.outside_requests.append(f"{route.request.method} {route.request.url}")
        route.abort("blockedbyclient")

    def problems(self, allowed: list[re.Pattern] | None) -> list[str]:
        """What fails a test: console errors (unless ``allowed`` matches them; ``allowed=[]``
        allows every one), uncaught page errors (same rule), any request off loopback."""
        def kept(items: list[str]) -> list[str]:
            if allowed is None:
                return items
            if not allowed:
                return []
            return [i for i in items if not any(p.search(i) for p in allowed)]

        out = [f"console error: {e}" for e in kept(self.console_errors)]
        out += [f"uncaught error: {e}" for e in kept(self.page_errors)]
        out += [f"request off loopback (aborted): {u}" for u in self.outside_requests]
        return out

    def report(self) -> str:
        lines = [f"console.{k}: {t}" + (f" ({u})" if u else "") for k, t, u in self.console]
        lines += [f"pageerror: {e}" for e in self.page_errors]
        lines += [f"requestfailed: {r}" for r in self.failed_requests]
        lines += [f"off loopback: {r}" for r in self.outside_requests]
        return "\n".join(lines)


# --------------------------------------------------------------------------- axe-core


SERIOUS = ("serious", "critical")


def axe(page, *, context: str | dict | None = None, options: dict | None = None) -> list[dict]:
    """Run the vendored axe-core on the page as it is now; returns the violations (axe's own
    dicts: ``id``, ``impact``, ``help``, ``helpUrl``, ``nodes``…). ``context``: a selector or
    axe context object (default the whole document); ``options``: axe.run options, e.g.
    ``{"runOnly": ["wcag2a", "wcag2aa"]}`` or ``{"rules": {"color-contrast": {"enabled":
    False}}}``. Injected once per document, from the file (never a CDN)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        inject_axe(page)
    result = page.evaluate(
        "([ctx, opts]) => window.axe.run(ctx === null ? document : ctx, opts)",
        [context, options or {}])
    return result["violations"]


AXE_PATH = "/__tests__/axe-core/axe.min.js"  # answered by a route, never by the app


def inject_axe(page) -> None:
    """On a served page, as a same-origin script (a route answers it from the file), so a
    console CSP of ``script-src 'self'`` lets it run; elsewhere (``set_content``) inline."""
    parts = urlsplit(page.url)
    if parts.scheme in ("http", "https") and is_loopback(page.url):
        url = f"{parts.scheme}://{parts.netloc}{AXE_PATH}"
        page.route(url, lambda route: route.fulfill(path=str(AXE_JS),
                                                    content_type="application/javascript"))
        try:
            page.add_script_tag(url=url)
        finally:
            page.unroute(url)
    else:
        page.add_script_tag(path=str(AXE_JS))


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        targets = ", ".join(" ".join(n["target"]) if isinstance(n["target"], list)
                            else str(n["target"]) for n in v["nodes"][:5])
        more = f" (+{len(v['nodes']) - 5} more)" if len(v["nodes"]) > 5 else ""
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} — {targets}{more}")
    return "\n".join(lines)


def assert_no_serious_a11y(page, **kw) -> list[dict]:
    """Fail on any serious or critical axe violation; returns the lesser ones."""
    found = axe(page, **kw)
    bad = [v for v in found if v.get("impact") in SERIOUS]
    assert not bad, "serious/critical accessibility violations:\n" + describe(bad)
    return found


# --------------------------------------------------------------------------- screenshots


def screenshot_dir(fallback: Path) -> Path:
    """$CIVICVOUCHER_SCREENSHOTS if set (kept after the run), else ``fallback`` (pytest's
    tmp: the last three runs are kept under /tmp/pytest-of-<user>/)."""
    env = os.environ.get(SCREENSHOTS_ENV, "").strip()
    d = Path(env) if env else fallback
    d.mkdir(parents=True, exist_ok=True)
    return d


def safe_name(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9._-]+", "-", text)).strip("-")[:150] or "shot"
