"""The console's navigation: every page's link has its place in ``nav.ORDER`` and is shown
in that order, whatever order the page modules were imported in."""

from __future__ import annotations

from civicvoucher.console import app, nav


def test_every_link_has_its_place_and_they_are_shown_in_that_order():
    app.routers()  # imports every page module: each registers its link
    routes = [link.route for link in nav.LINKS]
    assert set(routes) <= set(nav.ORDER), set(routes) - set(nav.ORDER)
    assert routes == [r for r in nav.ORDER if r in routes]


def test_a_link_registered_late_still_takes_its_place(monkeypatch):
    monkeypatch.setattr(nav, "LINKS", [nav.Link("console_home", "/", "Home")])
    nav.register(nav.Link("console_audit", "/audit", "Audit log"))
    nav.register(nav.Link("console_somewhere_new", "/new", "New"))
    nav.register(nav.Link("console_dashboard", "/dashboard", "Dashboard"))
    assert [link.route for link in nav.LINKS] == [
        "console_home", "console_dashboard", "console_audit", "console_somewhere_new"]
