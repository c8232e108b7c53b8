"""The interactive docs page works offline: Swagger UI comes from the vendored package."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_docs_page_uses_vendored_swagger_ui_only(api):
    page = api.client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.text
    assert "/api/v1/docs/swagger-ui-bundle.js" in html and "/api/v1/openapi.json" in html
    assert "cdn" not in html.lower() and "https://" not in html.replace(
        "https://swagger.io", "")
    js = api.client.get("/api/v1/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert api.client.get("/api/v1/docs/swagger-ui.css").status_code == 200
    assert api.client.get("/api/v1/docs/../../etc/passwd").status_code == 404
