"""GET /reports/programs/{program}: the tables ``civicvoucher report`` writes, as JSON, over the
caller's own subtree (on SQLite and PostgreSQL). Money is integer fen, as everywhere in the API.

The API world: 山西 140000 ── 太原 140100 ── 小店 140105 ── union A (issued), union B;
迎泽 140106 ── union C; and 内蒙古 150000 ── union X (issued), which nobody in 山西 may see.
"""

from __future__ import annotations

import csv
import io

from civicvoucher.auth.roles import Role
from tests.world import run_cli


def rows_of(body: dict, name: str) -> list[dict]:
    return next(t for t in body["tables"] if t["name"] == name)["rows"]


def parse(cell: str):
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def test_the_api_returns_the_tables_the_cli_writes(api, monkeypatch, tmp_path):
    w = api.w
    r = api.call("GET", f"/reports/programs/{w.program}", Role.PROVINCE_ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == {"org_id": w.province, "name_zh": "山西省总工会",
                             "level": "province", "code": "140000"}
    assert body["sample"] is False and body["scale"] == 1 and body["sample_warning_zh"] is None
    assert body["generated_at"].endswith("+08:00")
    total = next(row for row in rows_of(body, "expected_issued") if row["level"] == "total")
    assert total["issued_fen"] == 90000 and isinstance(total["issued_fen"], int)  # union A
    assert total["members"] == 7  # 山西's, not 内蒙古's
    out = tmp_path / "cli"
    done = run_cli(api.db, monkeypatch, "report", w.program, "--org", "140000", "--out", out)
    assert done.exit_code == 0, done.output
    for table in body["tables"]:
        text = (out / f"{table['name']}.csv").read_text(encoding="utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))
        keys = [c["key"] for c in table["columns"]]
        assert lines[0] == [f"{c['label_zh']} ({c['key']})" for c in table["columns"]]
        assert [[parse(v) for v in line] for line in lines[1:]] == [
            [row[k] for k in keys] for row in table["rows"]], table["name"]
    headline = {h["key"]: h for h in body["headline"]}
    assert headline["issued_fen_total"] == {
        "key": "issued_fen_total", "label_zh": "全省实发合计", "label_en":
        "issued total, province-wide", "unit": "fen", "value": 90000, "full": 90000}


def test_each_reader_sees_only_their_own_subtree(api):
    w = api.w
    path = f"/reports/programs/{w.program}"
    r = api.call("GET", path, Role.ANALYST)  # bound to 小店区 140105
    assert r.status_code == 200, r.text
    assert r.json()["scope"]["org_id"] == w.county_a
    assert [row["level"] for row in rows_of(r.json(), "expected_issued")] == ["county", "total"]
    r = api.call("GET", f"{path}?org_id={w.union_a}&level=union", Role.COUNTY_ADMIN)
    assert r.status_code == 422  # a union has nothing below it to list
    r = api.call("GET", f"{path}?org_id={w.city}&level=county", Role.CITY_ADMIN)
    assert r.status_code == 200, r.text
    by_org = rows_of(r.json(), "by_org")
    assert [row["name"] for row in by_org] == ["小店区总工会", "迎泽区总工会", "合计"]
    for role, org in ((Role.COUNTY_ADMIN, w.city), (Role.CITY_ADMIN, api.province2),
                      (Role.UNION_ADMIN, w.union_b), (Role.AUDITOR, api.union_x)):
        r = api.call("GET", f"{path}?org_id={org}", role)
        assert (r.status_code, r.json()["code"]) == (403, "out_of_scope"), (role, r.text)
    for role in (Role.MERCHANT_ADMIN, Role.CASHIER, Role.MEMBER, Role.CHANNEL):
        r = api.call("GET", path, role)
        assert (r.status_code, r.json()["code"]) == (403, "role_forbidden"), (role, r.text)
    r = api.call("GET", "/reports/programs/nope", Role.PROVINCE_ADMIN, lang="zh")
    assert (r.status_code, r.json()["code"]) == (404, "program_not_found")
    r = api.call("GET", f"{path}?org_id=99999", Role.PROVINCE_ADMIN)
    assert (r.status_code, r.json()["code"]) == (404, "org_not_found")
