"""Creating users: a user carries only the binding of its role, and every binding is in scope.

A county admin (小店) may make cashiers of its county's merchants; slipping an org_id of
another province into the body used to be stored unchecked. Now any binding field that does not
belong to the role is a 400 naming the field, and nothing is created.
"""

from __future__ import annotations

from sqlalchemy import func, select

from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.roles import Role


def _users(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(ApiUser)).scalar_one()


def test_bindings_that_do_not_belong_to_the_role_are_refused_naming_the_field(api):
    n = _users(api.db)
    cases = [  # (caller, body, the field named)
        (Role.COUNTY_ADMIN, {"role": "cashier", "merchant_id": api.merchant_in,
                             "org_id": api.union_x}, "org_id"),
        (Role.COUNTY_ADMIN, {"role": "cashier", "merchant_id": api.merchant_in,
                             "member_id": api.member_out}, "member_id"),
        (Role.COUNTY_ADMIN, {"role": "union_admin", "org_id": api.w.union_a,
                             "merchant_id": api.merchant_out}, "merchant_id"),
        (Role.COUNTY_ADMIN, {"role": "member", "member_id": api.member_in,
                             "org_id": api.w.union_a}, "org_id"),
        (Role.MERCHANT_ADMIN, {"role": "cashier", "merchant_id": api.merchant_in,
                               "channels": ["offline"]}, "channels"),
        (Role.PROVINCE_ADMIN, {"role": "channel", "org_id": api.w.province}, "org_id"),
    ]
    for i, (caller, body, field) in enumerate(cases):
        r = api.call("POST", "/auth/users", caller, json={"username": f"x{i}", **body})
        assert (r.status_code, r.json().get("code"), r.json().get("field")) == (
            400, "binding_not_allowed", field), (body, r.text)
    assert _users(api.db) == n
    # the binding of the role is still scope-checked
    r = api.call("POST", "/auth/users", Role.COUNTY_ADMIN,
                 json={"username": "far", "role": "cashier", "merchant_id": api.merchant_out})
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope")
    ok = api.call("POST", "/auth/users", Role.COUNTY_ADMIN,
                  json={"username": "till-2", "role": "cashier", "merchant_id": api.merchant_in})
    assert ok.status_code == 201, ok.text
    assert (ok.json()["org_id"], ok.json()["merchant_id"]) == (None, api.merchant_in)
