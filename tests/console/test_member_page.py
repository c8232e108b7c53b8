"""The member's phone pages (/m): their own vouchers only, the QR image the API's route draws,
merchants by county, their spending; refused to every other role; amounts in yuan; zh and en."""

from __future__ import annotations

import re

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select, update

from civicvoucher.api import qr
from civicvoucher.audit.models import AuditEntry
from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.passwords import hash_password
from civicvoucher.auth.roles import Role
from civicvoucher.members.models import Member
from civicvoucher.vouchers.models import Voucher
from civicvoucher.vouchers.redemption import redeem, refund
from tests.console.conftest import PASSWORD

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def member(console):
    """The console's world with the member's password set (as the member would, activated)."""
    with console.aw.db.session() as s:
        s.execute(update(ApiUser).where(ApiUser.role == Role.MEMBER.value)
                  .values(password_hash=hash_password(PASSWORD)))
        s.commit()
    r = console.login(Role.MEMBER, next_="/m")
    assert r.status_code == 303 and r.headers["location"] == "/m", r.text[:300]
    return console


def _own_and_others(aw):
    with aw.db.session() as s:
        own = s.execute(select(Voucher.id).where(Voucher.member_id == aw.member_in)
                        .order_by(Voucher.id)).scalars().all()
        neighbour = s.execute(select(Voucher.id).where(
            Voucher.union_id == aw.w.union_a, Voucher.member_id != aw.member_in)
            .order_by(Voucher.id)).scalars().all()
    return own, neighbour


def _names(html: str) -> set[str]:
    return set(re.findall(r'<p class="m-name">([^<]*)</p>', html))


def _decode(png: bytes) -> str:
    import io

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, found
    return found[0].text


def test_a_member_sees_only_their_own_vouchers_in_yuan(member):
    aw = member.aw
    own, neighbour = _own_and_others(aw)
    assert own and neighbour
    r = member.client.get("/m")
    assert r.status_code == 200, r.text[:500]
    assert '<html lang="zh-CN">' in r.text
    for vid in own:
        assert f'href="/m/vouchers/{vid}"' in r.text
    for vid in neighbour + aw.voucher_ids_out:
        assert f"/m/vouchers/{vid}" not in r.text
    assert "¥300.00" in r.text and "30000" not in r.text  # yuan, never fen
    assert "日用百货" in r.text and "线下" in r.text and "山西省" in r.text
    with aw.db.session() as s:  # the API's own audit entry: the same function ran
        assert s.execute(select(AuditEntry).where(AuditEntry.action == "voucher.list_own")).first()


def test_the_qr_image_is_the_apis_payment_payload(member):
    aw = member.aw
    own, _ = _own_and_others(aw)
    page = member.client.get(f"/m/vouchers/{own[0]}")
    assert page.status_code == 200, page.text[:500]
    assert f'src="/m/vouchers/{own[0]}/qr"' in page.text and 'aria-live="polite"' in page.text
    assert "¥300.00" in page.text and "收银员" in page.text
    img = member.client.get(f"/m/vouchers/{own[0]}/qr")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.headers["cache-control"] == "no-store"
    payload = _decode(img.content)
    with aw.db.session() as s:
        v = s.execute(select(Voucher).where(Voucher.id == own[0])).scalar_one()
        assert qr.read_payload(s, member.client.app.state.cv.qr_key, payload).id == v.id
        expected, _ = qr.make_payload(member.client.app.state.cv.qr_key, v,
                                      period_s=member.client.app.state.cv.qr_period_s)
    assert payload == expected  # the frozen clock: the same second, the same payload
    api = aw.call("GET", f"/me/vouchers/{own[0]}/qr?format=json", Role.MEMBER).json()
    assert api["payload"] == payload
    svg = member.client.get(f"/m/vouchers/{own[0]}/qr?format=svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content


def test_another_members_voucher_is_not_found(member):
    aw = member.aw
    _, neighbour = _own_and_others(aw)
    for vid in (neighbour[0], aw.voucher_ids_out[0], 2**40):
        for path in (f"/m/vouchers/{vid}/qr", f"/m/vouchers/{vid}"):
            r = member.client.get(path)
            assert r.status_code == 404, (path, r.status_code)
            assert "voucher_not_found" in r.text and b"\x89PNG" not in r.content


def test_a_spent_voucher_has_no_qr(member):
    aw = member.aw
    own, _ = _own_and_others(aw)
    with aw.db.session() as s:
        redeem(s, code=s.get(Voucher, own[0]).code, merchant_id=aw.merchant_in,
               order_amount_fen=45_000, channel="offline", idem_key="m-spent")
        s.commit()
    r = member.client.get(f"/m/vouchers/{own[0]}/qr")
    assert r.status_code == 422 and "voucher_not_redeemable" in r.text


@pytest.mark.parametrize("role", [r for r in Role if r not in (Role.MEMBER, Role.CHANNEL)])
def test_other_roles_are_refused(console, role):
    assert console.login(role).status_code == 303
    for path in ("/m", "/m/merchants", "/m/history", f"/m/vouchers/{console.aw.voucher_ids_in[0]}",
                 f"/m/vouchers/{console.aw.voucher_ids_in[0]}/qr"):
        r = console.client.get(path)
        assert r.status_code == 403, (role, path, r.status_code)
        assert b"\x89PNG" not in r.content


def test_signed_out_goes_to_the_login(console):
    r = console.client.get("/m/vouchers/1/qr")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_merchants_default_to_the_members_county(member):
    r = member.client.get("/m/merchants")
    assert r.status_code == 200, r.text[:500]
    # 140105 is the union's county: 超市 (active), not 饭店 (140106) nor 药店 (suspended)
    assert _names(r.text) == {"超市"}
    assert 'value="140105" selected' in r.text
    assert _names(member.client.get("/m/merchants?county=").text) == {"超市", "饭店", "外省超市"}
    assert _names(member.client.get("/m/merchants?county=&channel=takeaway").text) == set()
    assert _names(member.client.get("/m/merchants?county=&channel=online").text) == {
        "超市", "外省超市"}
    assert _names(member.client.get("/m/merchants?county=&category=hotel_dining").text) == {
        "饭店"}
    odd = member.client.get("/m/merchants?county=999999&category=x&channel=y")
    assert odd.status_code == 200 and _names(odd.text) == {"超市"}  # unknown: the defaults


def test_merchants_are_paged(member, monkeypatch):
    from civicvoucher.console.pages import member as page

    monkeypatch.setattr(page, "MERCHANTS_PER_PAGE", 1)
    first = member.client.get("/m/merchants?county=").text
    more = re.search(r'href="(/m/merchants\?[^"]*after=\d+)"', first)
    assert more, first[-1500:]
    second = member.client.get(more.group(1).replace("&amp;", "&")).text
    assert len(_names(first)) == len(_names(second)) == 1
    assert _names(first) != _names(second)


def test_history_shows_spending_and_refunds_in_local_time(member):
    aw = member.aw
    own, neighbour = _own_and_others(aw)
    with aw.db.session() as s:
        spent = redeem(s, code=s.get(Voucher, own[0]).code,
                       merchant_id=aw.merchant_in, order_amount_fen=45_050, channel="offline",
                       idem_key="m-h1")
        redeem(s, code=s.get(Voucher, neighbour[0]).code, merchant_id=aw.merchant_in,
               order_amount_fen=77_700, channel="offline", idem_key="m-h2")
        s.commit()
        spent_id = spent.redemption.id
    with aw.db.session() as s:
        refund(s, redemption_id=spent_id, idem_key="m-h1-refund")
        s.commit()
    r = member.client.get("/m/history")
    assert r.status_code == 200, r.text[:500]
    assert "超市" in r.text and "¥450.50" in r.text and "¥300.00" in r.text
    assert "¥777.00" not in r.text  # a neighbour's
    assert "2020-05-01 18:00 +08:00" in r.text  # T0 10:00 UTC, shown local
    assert "已退款" in r.text and "退回" in r.text
    en = member.client.get("/m/history", headers={"Accept-Language": "en"})
    assert "refunded" in en.text.lower()


def test_both_languages(member):
    zh = member.client.get("/m")
    assert "我的消费券" in zh.text and "未使用" in zh.text
    member.client.cookies.set("cv_lang", "en")
    own, _ = _own_and_others(member.aw)
    for path in ("/m", f"/m/vouchers/{own[0]}", "/m/merchants", "/m/history"):
        en = member.client.get(path)
        assert en.status_code == 200 and '<html lang="en">' in en.text, path
        text = re.sub(r"<[^>]+>", " ", en.text)
        # only data is Chinese in English: names of merchants, products, places
        from civicvoucher.vouchers.listing import region_name

        data = "中文超市饭店外省消费券成员" + "".join(
            region_name(c) for c in ("14", "140105", "140106", "150102"))
        leftovers = set(CJK.findall(text)) - set(data)
        assert not leftovers, (path, sorted(leftovers)[:20])
    en = member.client.get("/m").text
    assert "My vouchers" in en and "issued" in en and "daily goods" in en


def test_the_member_is_named_masked_on_the_home_page(member):
    with member.aw.db.session() as s:
        name = s.get(Member, member.aw.member_in).name
    home = member.client.get("/").text
    assert name not in home and 'href="/m"' in home


def test_a_bad_path_or_query_value_is_not_a_fault(member):
    """/m/vouchers/abc is no page (404), a bad page number names the field (400): neither is
    a logged 500 (it was, before the console's route class took validation errors)."""
    assert member.client.get("/m/vouchers/abc").status_code == 404
    r = member.client.get("/m/merchants?page=abc")
    assert r.status_code in (200, 400), r.status_code
