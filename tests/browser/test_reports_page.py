"""The reports page in a real browser as the county admin: the form computes the report of the
user's own county, its figures and tables show, the XLSX and PDF links download the files of
that report, axe finds nothing serious in Chinese or English at phone and desktop width, no
table pushes the page wider than the phone, and the screenshots are kept."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from civicvoucher.auth.roles import Role
from tests.browser.harness import assert_no_serious_a11y, both_viewports, loads

# What must fit the screen (a wide table scrolls inside its own box).
OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll(
      '.table-wrap, .figures, header, nav, form, h1, h2, .rep-downloads')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
      out.push(`${el.tagName}#${el.id || (el.closest('[id]') || {}).id} ${r.left}..${r.right}`);
    }
  }
  return {vw, page: document.documentElement.scrollWidth, over: out};
}"""


def show_report(page, login, button: str):
    login(page, Role.COUNTY_ADMIN)
    with loads(page):
        page.goto("/reports")
    assert page.locator("#table-expected_issued").count() == 0  # computed only when asked
    page.locator("#rep-program").select_option("p2020")  # the world's (others' tests add more)
    with loads(page):
        page.get_by_role("button", name=button).click()
    page.wait_for_selector("#table-expected_issued")
    return page


@both_viewports
@pytest.mark.zh
def test_the_report_in_chinese_and_its_downloads(page, login, screenshot, viewport, tmp_path):
    show_report(page, login, "生成报告")
    assert page.get_by_role("heading", level=1).inner_text() == "统计报告"
    assert "小店区总工会" in page.locator("#rep-title").inner_text()
    issued = page.locator("#card-issued_fen_total dd").inner_text()
    assert issued.startswith("¥") or issued.endswith(("万", "亿")), issued
    total = page.locator("#table-expected_issued tbody tr.total").inner_text().split()
    assert total[0] == "合计"
    fit = page.evaluate(OVERFLOW)
    assert fit["over"] == [] and fit["page"] <= fit["vw"], fit
    assert_no_serious_a11y(page)
    screenshot(page, "reports-zh")
    with page.expect_download() as got:
        page.locator("#dl-xlsx").click()
    dl = got.value
    assert dl.suggested_filename.startswith("report-p2020-140105-")
    assert dl.suggested_filename.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(Path(dl.path()).read_bytes()))
    ws = wb["应发与实发"]
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == "合计")
    assert f"{row[1]:,}" == total[1]  # the members, as on the page
    with page.expect_download() as got:
        page.locator("#dl-pdf").click()
    dl = got.value
    assert dl.suggested_filename.endswith(".pdf")
    pdf = tmp_path / dl.suggested_filename
    dl.save_as(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "应发与实发（按层级）" in text and "小店区总工会" in text
    assert " ".join(total) in " ".join(text.split())  # the page's total row, in the PDF


@both_viewports
def test_the_report_in_english_by_keyboard(page, login, screenshot, viewport):
    login(page, Role.COUNTY_ADMIN)
    with loads(page):
        page.goto("/reports")
    page.locator("#rep-program").select_option("p2020")  # the world's (others' tests add more)
    page.locator("#rep-program").focus()
    page.keyboard.press("Tab")  # the organisation
    page.keyboard.press("Tab")  # the breakdown
    page.keyboard.press("Tab")  # the button
    with loads(page):
        page.keyboard.press("Enter")
    page.wait_for_selector("#table-expected_issued")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text() == "Reports"
    assert page.get_by_role("heading", name="Expected vs issued by level").count() == 1
    assert page.get_by_role("link", name="Download PDF").get_attribute("href").startswith(
        "/reports/download.pdf?program=p2020")
    fit = page.evaluate(OVERFLOW)
    assert fit["over"] == [] and fit["page"] <= fit["vw"], fit
    assert_no_serious_a11y(page)
    screenshot(page, "reports-en")
    with page.expect_download() as got:
        page.get_by_role("link", name="Download PDF").click()
    assert got.value.suggested_filename.endswith("-en.pdf")
