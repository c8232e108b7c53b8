"""GET /reports/programs/{program} as a file: ``format=xlsx|pdf`` (or that Accept) answers the
workbook and the A4 PDF of the same report the JSON gives, over the same subtree, with the
same refusals (on SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import subprocess

from openpyxl import load_workbook

from civicvoucher.auth.roles import Role

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_the_report_as_a_workbook_and_a_pdf(api, tmp_path):
    w = api.w
    path = f"/reports/programs/{w.program}"
    body = api.call("GET", path, Role.COUNTY_ADMIN).json()
    total = next(r for t in body["tables"] if t["name"] == "expected_issued"
                 for r in t["rows"] if r["level"] == "total")
    x = api.call("GET", f"{path}?format=xlsx", Role.COUNTY_ADMIN)
    assert x.status_code == 200, x.text[:300]
    assert x.headers["content-type"] == XLSX
    assert 'filename="report-p2020-140105-' in x.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(x.content))["应发与实发"]
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == "合计")
    assert row[1] == total["members"] and row[3] * 100 == total["issued_fen"]
    for ask in ({"params": {"format": "pdf"}}, {"headers": {"Accept": "application/pdf"}}):
        p = api.call("GET", path, Role.COUNTY_ADMIN, lang="zh", **ask)
        assert p.status_code == 200 and p.headers["content-type"] == "application/pdf", ask
        f = tmp_path / "r.pdf"
        f.write_bytes(p.content)
        text = subprocess.run(["pdftotext", str(f), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "小店区总工会" in text and "应发与实发（按层级）" in text
    en = api.call("GET", f"{path}?format=pdf", Role.COUNTY_ADMIN, lang="en")
    assert en.headers["content-disposition"].split(";")[1].strip().endswith('-en.pdf"')
    assert api.call("GET", f"{path}?format=json", Role.COUNTY_ADMIN).json()["program_key"] \
        == "p2020"
    bad = api.call("GET", f"{path}?format=docx", Role.COUNTY_ADMIN)
    assert bad.status_code == 422
    for role, org in ((Role.COUNTY_ADMIN, w.city), (Role.AUDITOR, api.union_x)):
        r = api.call("GET", f"{path}?org_id={org}&format=pdf", role)
        assert (r.status_code, r.json()["code"]) == (403, "out_of_scope"), role
    r = api.call("GET", f"{path}?format=xlsx", Role.CASHIER)
    assert (r.status_code, r.json()["code"]) == (403, "role_forbidden")
