"""Uploads are bounded before they are buffered (413 problem+json), import limits answer 413,
and a control character in a cell is a named row error (422), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json

from bench.import_files import write_xlsx_bomb
from sqlalchemy import func, select

from civicvoucher.api.uploads import UploadLimit
from civicvoucher.auth.roles import Role
from civicvoucher.members.models import Member
from civicvoucher.orgs.models import Org
from tests.world import make_id, make_uscc

MEMBER_HEADER = "姓名,身份证号,手机号,所属工会,状态\n"


def _members(api) -> int:
    with api.db.session() as s:
        return s.execute(select(func.count()).select_from(Member)).scalar()


def _upload(api, path: str, name: str, data: bytes, role: Role = Role.COUNTY_ADMIN):
    files = {"file": (name, io.BytesIO(data), "application/octet-stream")}
    return api.call("POST", path, role, files=files)


def _roster(api, n: int, start: int = 100) -> str:
    union = api.w.union_uscc["A"]
    return MEMBER_HEADER + "".join(f"会员{i},{make_id(i)},,{union},在职\n"
                                   for i in range(start, start + n))


def test_an_upload_over_the_limit_is_413_and_nothing_is_imported(api, monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_UPLOAD_MAX_BYTES", "100000")
    before = _members(api)
    data = _roster(api, 50).encode() + b"#" * 200_000
    r = _upload(api, "/members/import", "m.csv", data)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "import_too_large"
    assert _members(api) == before


def test_too_many_rows_is_413_and_nothing_is_imported(api, monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_IMPORT_MAX_ROWS", "3")
    before = _members(api)
    r = _upload(api, "/members/import", "m.csv", _roster(api, 4).encode())
    assert (r.status_code, r.json()["code"]) == (413, "import_too_large"), r.text
    assert r.json()["row"] == 5
    assert _members(api) == before
    assert _upload(api, "/members/import", "m.csv", _roster(api, 3).encode()).status_code == 200


def test_a_zip_bomb_upload_is_413(api, tmp_path):
    path = tmp_path / "bomb.xlsx"
    write_xlsx_bomb(path, 20_000)
    r = _upload(api, "/members/import", "bomb.xlsx", path.read_bytes())
    assert (r.status_code, r.json()["code"]) == (413, "import_too_large"), r.text
    assert "压缩比" in r.json()["detail"] or "ratio" in r.json()["detail"]


def test_a_nul_in_a_member_cell_is_a_named_row_error(api):
    before = _members(api)
    union = api.w.union_uscc["A"]
    body = MEMBER_HEADER + f"好人,{make_id(201)},,{union},在职\n坏\x00人,{make_id(202)},,{union},在职\n"
    r = _upload(api, "/members/import", "m.csv", body.encode())
    assert (r.status_code, r.json()["code"]) == (422, "import_rejected"), r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(3, "姓名 (name)")]
    assert "U+0000" in r.json()["errors"][0]["reason"]
    assert _members(api) == before


def test_a_control_character_in_an_org_cell_is_a_named_row_error(api):
    with api.db.session() as s:
        before = s.execute(select(func.count()).select_from(Org)).scalar()
    body = ("层级,名称,行政区划代码,统一社会信用代码,单位性质,上级代码\n"
            f"基层,新\x1b工会,,{make_uscc(401)},企业,140105\n")
    r = _upload(api, "/orgs/import", "orgs.csv", body.encode())
    assert (r.status_code, r.json()["code"]) == (422, "import_rejected"), r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(2, "名称 (name)")]
    with api.db.session() as s:
        assert s.execute(select(func.count()).select_from(Org)).scalar() == before


# --- the middleware alone: what it reads before refusing ----------------------------------

def _run(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    received, sent = [], []

    async def receive():
        received.append(1)
        body = chunks[len(received) - 1] if len(received) <= len(chunks) else b""
        return {"type": "http.request", "body": body,
                "more_body": len(received) < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/members/import",
             "headers": headers, "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 80), "app": None}
    asyncio.run(UploadLimit(app)(scope, receive, send))
    return received, sent


async def _reading_app(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


MULTIPART = (b"content-type", b"multipart/form-data; boundary=x")


def test_a_declared_length_over_the_limit_is_refused_unread(monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_UPLOAD_MAX_BYTES", "1000")
    called = []

    async def app(scope, receive, send):
        called.append(1)

    received, sent = _run(app, [MULTIPART, (b"content-length", b"209715200")], [b"x" * 1000])
    assert called == [] and received == []
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "import_too_large"


def test_a_streamed_body_is_refused_once_it_passes_the_limit(monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_UPLOAD_MAX_BYTES", "1000")
    chunks = [b"x" * 16_384] * 1000  # 16 MB, sent without a Content-Length
    received, sent = _run(_reading_app, [MULTIPART], chunks)
    assert len(received) <= 6  # 1000 bytes + 64 KiB of multipart framing, then no more
    assert sent[0]["status"] == 413


def test_other_bodies_are_bounded_too(monkeypatch):
    monkeypatch.setenv("CIVICVOUCHER_UPLOAD_MAX_BYTES", "100000")
    json_type = (b"content-type", b"application/json")
    received, sent = _run(_reading_app, [json_type], [b"x" * 16_384] * 6)
    assert len(received) == 6 and sent[0]["status"] == 200
    received, sent = _run(_reading_app, [json_type], [b"x" * 16_384] * 100)
    assert len(received) == 7 and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "request_too_large"
    received, sent = _run(_reading_app, [(b"content-type", b"text/csv"),
                                         (b"content-length", b"209715200")], [b"x"])
    assert received == [] and sent[0]["status"] == 413
