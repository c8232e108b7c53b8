"""Organisation files over HTTP: all or nothing, bad rows named, only into your subtree."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from civicvoucher.auth.roles import Role
from civicvoucher.orgs.models import Org
from tests.world import make_uscc

HEADER = "层级,名称,行政区划代码,统一社会信用代码,单位性质,上级代码\n"


def _upload(api, role: Role, body: str):
    files = {"file": ("orgs.csv", io.BytesIO((HEADER + body).encode()), "text/csv")}
    return api.call("POST", "/orgs/import", role, files=files)


def _count(api) -> int:
    with api.db.session() as s:
        return s.execute(select(func.count()).select_from(Org)).scalar()


def test_a_county_imports_unions_into_its_own_county(api):
    r = _upload(api, Role.COUNTY_ADMIN, f"基层,新建工会甲,,{make_uscc(301)},企业,140105\n"
                                        f"基层,新建工会乙,,{make_uscc(302)},行政事业,140105\n")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["rows"], body["imported"]) == (2, 2)
    assert [o["unit_type"] for o in body["orgs"]] == ["enterprise", "administrative"]


def test_one_bad_row_imports_nothing_and_is_named(api):
    before = _count(api)
    r = _upload(api, Role.COUNTY_ADMIN, f"基层,好工会,,{make_uscc(303)},企业,140105\n"
                                        f"基层,坏工会,,91140100000000000X,企业,140105\n")
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(3, "统一社会信用代码 (uscc)")]
    assert _count(api) == before


def test_a_row_outside_your_subtree_imports_nothing(api):
    before = _count(api)
    r = _upload(api, Role.COUNTY_ADMIN, f"基层,本县工会,,{make_uscc(304)},企业,140105\n"
                                        f"基层,邻县工会,,{make_uscc(305)},企业,140106\n")
    assert (r.status_code, r.json()["code"]) == (403, "out_of_scope"), r.text
    assert _count(api) == before
    # the city holds both counties
    assert _upload(api, Role.CITY_ADMIN, f"基层,本县工会,,{make_uscc(304)},企业,140105\n"
                                         f"基层,邻县工会,,{make_uscc(305)},企业,140106\n"
                   ).status_code == 201
