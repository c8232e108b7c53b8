"""Logging a test's browser in as one of the world's accounts (tests/browser/world.py)."""

from __future__ import annotations

from dataclasses import dataclass

from civicvoucher.auth.roles import Role
from tests.browser.world import Account, BrowserWorld

# `login()` signs in as a person does, through the console's sign-in form (which keeps the
# session in its cookie); `via="api"` gets a bearer token instead, for tests of API pages.
CONSOLE_LOGIN_PATH: str | None = "/login"


@dataclass(frozen=True)
class LoggedIn:
    account: Account
    token: str | None  # the bearer token (API login); None after a form login

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def login(page, world: BrowserWorld, base_url: str, role: Role | str, *, via: str | None = None,
          bearer_header: bool = False) -> LoggedIn:
    """Log ``page``'s browser context in as ``role``'s account. ``via``: "api" or "form"
    (default: the form once CONSOLE_LOGIN_PATH is set, else the API). ``bearer_header``:
    also send ``Authorization: Bearer …`` with every request of the context (pages that
    read the API before the console keeps its own session)."""
    account = world[role]
    via = via or ("form" if CONSOLE_LOGIN_PATH else "api")
    if via == "form":
        done = _login_with_form(page, account)
    elif via == "api":
        done = _login_with_api(page, account, base_url)
    else:
        raise ValueError(f"via must be 'api' or 'form', not {via!r}")
    if bearer_header:
        if not done.token:
            raise ValueError("bearer_header needs a token: log in with via='api'")
        page.context.set_extra_http_headers(done.headers)
    return done


def _login_with_api(page, account: Account, base_url: str) -> LoggedIn:
    r = page.request.post(f"{base_url}/api/v1/auth/login",
                          data={"username": account.username, "password": account.password},
                          headers={"Accept-Language": "en"})
    if r.status != 200:
        raise AssertionError(f"login as {account.username} failed: {r.status} {r.text()}")
    return LoggedIn(account, r.json()["access_token"])


def _login_with_form(page, account: Account) -> LoggedIn:
    assert CONSOLE_LOGIN_PATH is not None
    page.goto(CONSOLE_LOGIN_PATH)
    page.locator("input[name=username]").fill(account.username)
    page.locator("input[name=password]").fill(account.password)
    page.locator("form[action=\"/login\"] [type=submit]").click()
    page.wait_for_url(lambda url: CONSOLE_LOGIN_PATH not in url)
    return LoggedIn(account, None)
