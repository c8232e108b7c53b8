"""Every route, as every role, in scope and out of scope.

The table below says how to call each route at a target inside every caller's scope (union A,
its member, the 超市 merchant, a redemption there) and at one outside all of them (union X in
another province, its member, merchant M4 there). Expectations come from auth.policy:
a role not listed for the route gets 403 ``role_forbidden``; a listed role gets through in
scope and is refused (403 ``out_of_scope``, or 404 for a member's own things) out of scope;
lists out of scope come back empty. A route with no rule, or no row here, fails the test.
"""

from __future__ import annotations

import io
import itertools
import uuid

from sqlalchemy import select

from civicvoucher.api.app import api_routes
from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.policy import PUBLIC, RULES
from civicvoucher.auth.roles import Role
from civicvoucher.auth.service import create_user
from civicvoucher.auth.tokens import issue_token
from civicvoucher.funds.approvals import Person, request_deposit
from civicvoucher.members.models import Member
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Issuance
from civicvoucher.vouchers.redemption import redeem
from tests.world import T0, make_uscc, program_spec

_n = itertools.count(200)

# the console's pages share the table (auth.policy); their own matrix is in tests/console
API_RULES = {name for name in RULES if not name.startswith("console_")}


def _fresh_token(aw, role: Role) -> tuple[str, int]:
    with aw.db.session() as s:
        uid = s.execute(select(ApiUser.id).where(ApiUser.username == f"u-{role}")).scalar_one()
        tok, row = issue_token(s, user_id=uid, kind="api", ttl=None)
        return tok, row.id


def valid_id() -> str:
    """A fresh resident ID number that the import's validator accepts."""
    from stdnum.cn import ric

    from civicvoucher.members.rules import id_number_problem

    while True:
        n = next(_n)
        body = f"1101011990{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
        number = body + ric.calc_check_digit(body + "0")
        if id_number_problem(number) is None:
            return number


def _csv(uscc: str) -> dict:
    n = next(_n)
    text = f"姓名,身份证号,手机号,所属工会,状态\n新成员{n},{valid_id()},,{uscc},在职\n"
    return {"files": {"file": ("roster.csv", io.BytesIO(text.encode()), "text/csv")}}


def _org_csv(parent: str) -> dict:
    text = f"层级,名称,统一社会信用代码,单位性质,上级代码\n基层,新工会{next(_n)},{make_uscc(next(_n))},企业,{parent}\n"
    return {"files": {"file": ("orgs.csv", io.BytesIO(text.encode()), "text/csv")}}


def _spec() -> dict:
    spec = program_spec(key=f"p{uuid.uuid4().hex[:8]}")
    for p in spec["products"]:
        p["valid_from"], p["expires_at"] = str(p["valid_from"]), str(p["expires_at"])
    return {"json": spec}


def requests_for(aw, role: Role, side: str) -> dict:
    """route name → (method, path, kwargs, expectation) for one role and one side."""
    i = side == "in"
    w = aw.w
    org = w.union_a if i else aw.union_x
    member = aw.member_in if i else aw.member_out
    merchant = aw.merchant_in if i else aw.merchant_out
    red = aw.red_in if i else aw.red_out
    iss = aw.issuance_in if i else aw.issuance_out
    uscc_union = w.union_uscc["A"] if i else make_uscc(50)
    refuse = "ok" if i else "refused"
    empty = "ok" if i else "empty"
    user_body = ({"role": "cashier", "merchant_id": merchant} if role is Role.MERCHANT_ADMIN
                 else {"role": "union_admin", "org_id": org})
    return {
        "logout": ("POST", "/auth/logout", {"token": _fresh_token(aw, role)[0]}, "ok"),
        "whoami": ("GET", "/auth/me", {}, "ok"),
        "create_api_token": ("POST", "/auth/tokens", {"json": {"name": "x"}}, "ok"),
        "revoke_api_token": ("POST", f"/auth/tokens/{_fresh_token(aw, role)[1]}/revoke", {},
                             "ok"),
        "create_user": ("POST", "/auth/users",
                        {"json": {"username": f"n{uuid.uuid4().hex[:10]}", **user_body}}, refuse),
        "list_orgs": ("GET", f"/orgs?under={org}", {}, refuse),
        "get_org_detail": ("GET", f"/orgs/{org}", {}, refuse),
        "create_org": ("POST", "/orgs", {"json": {
            "level": "union", "name": "新工会", "uscc": make_uscc(next(_n)),
            "unit_type": "enterprise", "parent_id": w.county_a if i else aw.province2}}, refuse),
        "import_orgs_upload": ("POST", "/orgs/import", _org_csv("140105" if i else "150000"),
                               refuse),
        "get_fund_balance": ("GET", f"/orgs/{org}/fund", {}, refuse),
        "create_deposit": ("POST", "/funds/deposits",
                           {"json": {"org_id": org, "amount_fen": 100, "source": "dues"}}, refuse),
        "list_members": ("GET", f"/members?org_id={org}", {}, refuse),
        "get_member": ("GET", f"/members/{member}", {}, refuse),
        "import_members_upload": ("POST", "/members/import",
                                  _csv(uscc_union), refuse),
        "set_member_status": ("POST", f"/members/{member}/status",
                              {"json": {"status": "active"}}, refuse),
        "set_member_phone": ("POST", f"/members/{member}/phone",
                             {"json": {"phone": "13800000000"}}, refuse),
        # into its own union: 422 once past role and scope (a union admin has no other union)
        "transfer_member_route": ("POST", f"/members/{member}/transfer",
                                  {"json": {"to_union_id": org}}, refuse),
        "list_programs": ("GET", "/programs", {}, "ok"),
        "get_program_detail": ("GET", f"/programs/{w.program}", {}, "ok"),
        "create_program_route": ("POST", "/programs", _spec(), "ok"),
        "update_program_route": ("PUT", f"/programs/{w.program}",
                                 {"json": {**_spec()["json"], "key": w.program}}, "ok"),
        "create_issuance": ("POST", "/issuances",
                            {"json": {"union_id": org, "program": w.program}}, refuse),
        "list_issuances": ("GET", f"/issuances?org_id={org}", {}, refuse),
        "get_issuance": ("GET", f"/issuances/{iss}", {}, refuse),
        "list_merchants": ("GET", "/merchants" if i else "/merchants?county=1501", {}, empty),
        "get_merchant": ("GET", f"/merchants/{merchant}", {}, refuse),
        "register_merchant_route": ("POST", "/merchants", {"json": {
            "uscc": make_uscc(next(_n)), "name": "新店", "mcc": "5812",
            "county_code": "140105" if i else "150102", "channels": ["offline"]}}, refuse),
        "set_merchant_status": ("POST", f"/merchants/{merchant}/status",
                                {"json": {"status": "active"}}, refuse),
        "lookup_voucher": ("POST", "/vouchers/lookup", {"json": {"code": aw.codes_in[2]}}, "ok"),
        "create_redemption": ("POST", "/redemptions", {"json": {
            "code": aw.codes_in[1] if i else aw.codes_out[0], "merchant_id": merchant,
            "order_amount_fen": 30000}}, refuse),
        "list_redemptions": ("GET", "/redemptions" if i else f"/redemptions?merchant_id={merchant}",
                             {}, empty),
        "get_redemption": ("GET", f"/redemptions/{red}", {}, refuse),
        "capture_redemption": ("POST", f"/redemptions/{red}/capture", {}, refuse),
        "void_redemption": ("POST", f"/redemptions/{red}/void", {}, refuse),
        "refund_redemption": ("POST", f"/redemptions/{red}/refund", {"json": {}}, refuse),
        "run_expiry": ("POST", "/expiry-runs", {"json": {"as_of": "2020-04-01T00:00:00"}}, "ok"),
        "create_extension": ("POST", "/extensions", {"json": {
            "program": w.program, "new_expires_at": "2020-07-20T00:00:00", "reason": "test",
            "union_ids": [w.union_a]}}, "ok"),
        "run_settlement": ("POST", "/settlement-runs",
                           {"json": {"cutoff": "2020-04-30T00:00:00"}}, "ok"),
        "list_settlement_runs": ("GET", "/settlement-runs", {}, "ok"),
        "list_settlement_batches": ("GET", "/settlement-batches" if i
                                    else f"/settlement-batches?merchant_id={merchant}", {}, empty),
        "verify_ledger": ("GET", "/ledger/verify", {}, "ok"),
        "summary_report": ("GET", f"/reports/summary?org_id={org}", {}, refuse),
        "program_report": ("GET", f"/reports/programs/{w.program}?org_id={org}", {}, refuse),
        "list_audit": ("GET", "/audit", {}, "ok"),
        "verify_audit": ("GET", "/audit/verify", {}, "ok"),
        "my_vouchers": ("GET", "/me/vouchers", {}, "ok"),
        "my_voucher_qr": ("GET", f"/me/vouchers/"
                          f"{aw.voucher_ids_in[0] if i else aw.voucher_ids_out[0]}/qr", {}, refuse),
        # issue 9: member invitations, deposit approvals (approving or rejecting again answers
        # the first decision, so every listed role gets through on the "in" side)
        "invite_member": ("POST", f"/auth/users/{aw.invitee_in if i else aw.invitee_out}/invite",
                          {}, refuse),
        "list_deposit_requests": ("GET", f"/funds/deposit-requests?org_id={org}", {}, refuse),
        "get_deposit_request": ("GET", f"/funds/deposit-requests/{aw.requests[side][0]}", {},
                                refuse),
        "approve_deposit_request": ("POST", f"/funds/deposit-requests/{aw.requests[side][0]}"
                                    "/approve", {}, refuse),
        "reject_deposit_request": ("POST", f"/funds/deposit-requests/{aw.requests[side][1]}"
                                   "/reject", {"json": {"reason": "test"}}, refuse),
    }


def _prepare(aw) -> None:
    """A held online order on each side, for capture / void / refund / read."""
    with aw.db.session() as s:
        aw.red_in = redeem(s, code=aw.codes_in[0], merchant_id=aw.merchant_in,
                           order_amount_fen=30000, channel="online", hold=True,
                           idem_key="m-in", now=T0).redemption.id
        aw.red_out = redeem(s, code=aw.codes_out[0], merchant_id=aw.merchant_out,
                            order_amount_fen=30000, channel="online", hold=True,
                            idem_key="m-out", now=T0).redemption.id
        ids = dict(s.execute(select(Issuance.union_id, Issuance.id)).all())
        aw.issuance_in, aw.issuance_out = ids[aw.w.union_a], ids[aw.union_x]
        issue(s, union_id=aw.w.union_a, program=aw.w.program, idem_key="noop", now=T0)
        # member users to invite again, and fiscal deposit requests (made by an operator) to
        # approve and reject, on each side
        second = s.execute(select(Member.id).where(Member.union_id == aw.w.union_a)
                           .order_by(Member.id).offset(1)).scalars().first()
        aw.invitee_in = create_user(s, username="invitee-in", role="member",
                                    member_id=second).user.id
        aw.invitee_out = create_user(s, username="invitee-out", role="member",
                                     member_id=aw.member_out).user.id
        maker = Person.operator("cli:matrix")
        aw.requests = {side: [request_deposit(s, org_id=org, amount_fen=500, source="fiscal",
                                              idem_key=f"rq-{side}-{n}", maker=maker).request.id
                              for n in range(2)]
                       for side, org in (("in", aw.w.union_a), ("out", aw.union_x))}


def test_every_route_has_a_rule_and_a_row_here(api):
    _prepare(api)
    names = {r.name for r in api_routes(api.client.app)}
    assert names - set(RULES) - set(PUBLIC) == set(), "routes without a rule in auth.policy"
    table = set(requests_for(api, Role.PROVINCE_ADMIN, "in"))
    assert API_RULES - table == set(), "rules without a row in the role matrix"
    assert table - API_RULES == set()


def test_role_matrix(api):
    _prepare(api)
    routes = {r.name: r for r in api_routes(api.client.app)}
    failures = []
    for name in sorted(API_RULES):
        method, path, kw, _ = requests_for(api, Role.PROVINCE_ADMIN, "in")[name]
        kw.pop("token", None)
        r = api.call(method, path, None, **kw)
        if r.status_code != 401:
            failures.append(f"{name} without a token: {r.status_code}")
    for role in Role:
        for side in ("in", "out"):
            for name, (method, path, kw, expect) in requests_for(api, role, side).items():
                assert method in routes[name].methods
                rule = RULES[name]
                if side == "out" and role not in rule.roles:
                    continue  # refused by role already, on the "in" side
                r = api.call(method, path, role, **kw)
                got = f"{role} {side} {name}: {r.status_code} {r.text[:160]}"
                code = r.json().get("code") if r.headers.get("content-type", "").startswith(
                    "application/problem+json") else None
                if r.status_code >= 500:
                    failures.append(got)
                elif role not in rule.roles:
                    if (r.status_code, code) != (403, "role_forbidden"):
                        failures.append(got)
                elif (expect == "ok" and r.status_code in (401, 403)) or (expect == "refused" and not (
                        (r.status_code == 403 and code == "out_of_scope")
                        or (r.status_code == 404 and rule.target == "self"))) or (expect == "empty" and (r.status_code != 200 or r.json()["items"])):
                    failures.append(got)
    assert failures == [], "\n".join(failures)
