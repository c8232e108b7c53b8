"""QR codes as images: the member's payment QR as PNG (default) or SVG, decoded with zxing-cpp
the way a cashier's scanner reads it, and accepted by the cashier lookup; the JSON form still
there for apps. And the hand-out QR of ``voucher export --qr``: it decodes to a member-bound
claim that verifies, and that a cashier's lookup refuses: a leaked hand-out sheet pays nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from civicvoucher.api import qr
from civicvoucher.api.routers.me import QR_MEDIA_TYPES, negotiate
from civicvoucher.auth.roles import Role
from tests.world import SECRET, run_cli

CHROMIUM = Path("/usr/bin/chromium")


def decode_png(data: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
    assert len(found) == 1, found
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


def lookup(api, payload: str):
    return api.call("POST", "/vouchers/lookup", Role.CASHIER, json={"payload": payload})


def test_png_is_the_default_and_decodes_to_a_payload_the_cashier_accepts(api):
    vid = api.voucher_ids_in[0]
    r = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER)  # httpx sends Accept: */*
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-qr-expires-at"].endswith("+08:00")
    payload = decode_png(r.content)
    assert payload.startswith("cv1.")
    found = lookup(api, payload)
    assert found.status_code == 200, found.text
    assert found.json()["amount_fen"] == 30000


def test_a_browser_img_accept_header_gets_the_png(api):
    r = api.call("GET", f"/me/vouchers/{api.voucher_ids_in[0]}/qr", Role.MEMBER, headers={
        "Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"})
    assert r.headers["content-type"] == "image/png"


def test_json_stays_available_for_apps(api):
    vid = api.voucher_ids_in[0]
    for kw in ({"headers": {"Accept": "application/json"}}, {"params": {"format": "json"}}):
        r = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER, **kw)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["payload"].startswith("cv1.") and body["refresh_after_s"] > 0
        assert lookup(api, body["payload"]).status_code == 200


def test_nothing_acceptable_is_406_problem(api):
    r = api.call("GET", f"/me/vouchers/{api.voucher_ids_in[0]}/qr", Role.MEMBER,
                 headers={"Accept": "text/html"})
    assert r.status_code == 406 and r.json()["code"] == "not_acceptable"
    assert r.headers["content-type"].startswith("application/problem+json")


def test_someone_elses_voucher_has_no_qr_in_any_form(api):
    for fmt in ("png", "svg", "json"):
        r = api.call("GET", f"/me/vouchers/{api.voucher_ids_out[0]}/qr", Role.MEMBER,
                     params={"format": fmt})
        assert r.status_code == 404 and r.json()["code"] == "voucher_not_found"


@pytest.mark.browser
def test_svg_drawn_by_a_browser_decodes_to_a_payload_the_cashier_accepts(api):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    vid = api.voucher_ids_in[0]
    by_accept = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER,
                         headers={"Accept": "image/svg+xml"})
    by_param = api.call("GET", f"/me/vouchers/{vid}/qr", Role.MEMBER, params={"format": "svg"})
    payloads = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            for r in (by_accept, by_param):
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "image/svg+xml"
                page = browser.new_page(viewport={"width": 400, "height": 400})
                page.set_content(f"<body style='margin:0;background:#fff'>{r.text}</body>")
                payloads.append(decode_png(page.locator("svg").screenshot()))
                page.close()
        finally:
            browser.close()
    for payload in payloads:
        assert payload.startswith("cv1.")
        assert lookup(api, payload).status_code == 200


def test_openapi_documents_the_qr_content_types(api):
    spec = api.client.get("/api/v1/openapi.json").json()
    op = spec["paths"]["/api/v1/me/vouchers/{voucher_id}/qr"]["get"]
    content = op["responses"]["200"]["content"]
    assert set(content) == {"application/json", "image/png", "image/svg+xml"}
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert "406" in op["responses"]
    assert {p["name"] for p in op["parameters"]} >= {"voucher_id", "format"}


def test_exported_hand_out_qr_is_a_member_bound_claim_a_cashier_cannot_spend(api, monkeypatch,
                                                                              tmp_path):
    out = tmp_path / "a.csv"
    r = run_cli(api.db, monkeypatch, "voucher", "export", out, "--org", str(api.w.union_a),
                "--qr")
    assert r.exit_code == 0, r.output
    images = sorted((tmp_path / "a-images").glob("*.png"))
    assert {int(p.stem) for p in images} == set(api.voucher_ids_in)
    claim = decode_png(images[0].read_bytes())
    assert claim.startswith("cvh1.") and claim in out.read_text("utf-8-sig")
    with api.db.session() as s:
        v = qr.read_handout(s, qr.handout_key(SECRET), claim)
        assert v.id == int(images[0].stem) and v.member_id == int(claim.split(".")[2])
        forged = claim.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
        with pytest.raises(Exception, match="not a voucher hand-out"):
            qr.read_handout(s, qr.handout_key(SECRET), forged)
        other = claim.split(".")
        other[2] = str(api.member_out)  # the same voucher claimed for someone else
        with pytest.raises(Exception, match="not a voucher hand-out"):
            qr.read_handout(s, qr.handout_key(SECRET), ".".join(other))
    refused = lookup(api, claim)
    assert refused.status_code == 422 and refused.json()["code"] == "qr_not_for_payment"
    spend = api.call("POST", "/redemptions", Role.CASHIER,
                     json={"payload": claim, "order_amount_fen": 30000})
    assert spend.status_code == 422 and spend.json()["code"] == "qr_not_for_payment"
    for v_code in api.codes_in:  # digital vouchers: no code in the file
        assert v_code not in out.read_text("utf-8-sig")


def test_xlsx_export_embeds_a_hand_out_qr_per_voucher(api, monkeypatch, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "a.xlsx"
    r = run_cli(api.db, monkeypatch, "voucher", "export", out, "--org", str(api.w.union_a),
                "--qr")
    assert r.exit_code == 0, r.output
    ws = load_workbook(out)["union A"]
    pictures = ws._images
    assert len(pictures) == len(api.voucher_ids_in)
    claims = {row[15].value for row in ws.iter_rows(min_row=4)}
    decoded = {decode_png(p._data()) for p in pictures}
    assert decoded == claims


def test_accept_negotiation_follows_rfc_9110():
    offered = QR_MEDIA_TYPES
    assert negotiate(None, offered) == "png"
    assert negotiate("*/*", offered) == "png"
    assert negotiate("image/svg+xml", offered) == "svg"
    assert negotiate("application/json", offered) == "json"
    assert negotiate("application/json, image/png;q=0.5", offered) == "json"
    assert negotiate("image/*;q=0.9, application/json;q=0.8", offered) == "png"
    assert negotiate("image/png;q=0, image/*", offered) == "svg"  # the specific range decides
    assert negotiate("text/html", offered) is None
    assert negotiate("image/png;q=0", {"png": "image/png"}) is None
