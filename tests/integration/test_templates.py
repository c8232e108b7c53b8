"""``org template`` and ``merchant template``: the columns the importer reads, with notes and
examples that import as they are, so that template → fill a row → import works first time.

The templates are derived from the importers' alias tables; these tests hold them together:
the template's header read back is exactly the importer's columns, and a column the importer
learns without a note fails the template instead of silently missing from it.
"""

from __future__ import annotations

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from stdnum.cn import uscc

from civicvoucher.cli import registry
from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import MERCHANT_ALIASES, validate_merchant_rows
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import ORG_ALIASES, validate_org_rows
from tests.world import build_world, run_cli

KINDS = {"org": ORG_ALIASES, "merchant": MERCHANT_ALIASES}


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
@pytest.mark.parametrize("kind", ["org", "merchant"])
def test_template_header_is_exactly_the_importers_columns(kind, suffix, tmp_path):
    path = tmp_path / f"t{suffix}"
    registry.write_template(kind, path)
    table = read_table(path, aliases=KINDS[kind])
    assert table.header == list(dict.fromkeys(KINDS[kind].values()))
    validate = validate_org_rows if kind == "org" else validate_merchant_rows
    good, errors = validate(table)
    assert errors == [] and len(good) == len(registry.template_example_rows(kind))


def test_a_column_the_importer_learns_without_a_note_fails_the_template(monkeypatch):
    monkeypatch.setitem(registry.TEMPLATE_ALIASES, "org", {**ORG_ALIASES, "备注": "remark"})
    with pytest.raises(RuntimeError, match="remark"):
        registry.template_columns("org")


def test_xlsx_template_explains_every_column_on_a_second_sheet(tmp_path):
    path = tmp_path / "orgs.xlsx"
    registry.write_template("org", path)
    wb = load_workbook(path)
    assert wb.sheetnames == ["导入数据", "填写说明"]
    data, notes = wb["导入数据"], wb["填写说明"]
    header = [c.value for c in data[1]]
    explained = [r[0].value for r in notes.iter_rows(min_row=3) if r[0].value in header]
    assert explained == header
    assert all(c.comment is not None and c.comment.text for c in data[1])
    assert data["D5"].number_format == "@"  # the USCC column keeps its characters


def test_org_template_filled_in_imports(db, monkeypatch, tmp_path):
    path = tmp_path / "orgs.xlsx"
    r = run_cli(db, monkeypatch, "org", "template", path)
    assert r.exit_code == 0, r.output
    rows = [[c.value for c in row] for row in load_workbook(path)["导入数据"].iter_rows(min_row=2)]
    body = "81140105000000077"
    rows.append(["基层工会", "太原某某公司工会", "", body + uscc.calc_check_digit(body),
                 "企业", "140105"])
    filled = tmp_path / "filled.xlsx"
    write_table(filled, [c.value for c in load_workbook(path)["导入数据"][1]], rows)
    r = run_cli(db, monkeypatch, "org", "import", filled)
    assert r.exit_code == 0, r.output
    with db.session() as s:
        names = set(s.execute(select(Org.name)).scalars())
    assert {"山西省总工会", "小店区总工会", "示例公司工会委员会", "太原某某公司工会"} <= names


def test_the_three_templates_import_one_after_another(db, monkeypatch, tmp_path):
    """A fresh database: the org template's examples, then the member template's (their
    union is the org template's), then the merchant template's (in its 140105)."""
    for kind, flags in (("org", ()), ("member", ()), ("merchant", ("--activate",))):
        path = tmp_path / f"{kind}.csv"
        r = run_cli(db, monkeypatch, kind, "template", path)
        assert r.exit_code == 0, r.output
        r = run_cli(db, monkeypatch, kind, "import", path, *flags)
        assert r.exit_code == 0, (kind, r.output)
    assert "2 imported" in r.output or "registered 2" in r.output


def test_merchant_template_filled_in_imports_and_prints_the_ids(db, monkeypatch, tmp_path):
    build_world(db)
    path = tmp_path / "merchants.csv"
    r = run_cli(db, monkeypatch, "merchant", "template", path)
    assert r.exit_code == 0, r.output
    table = read_table(path, aliases=MERCHANT_ALIASES)
    body = "91140106000000042"
    row = {"uscc": body + uscc.calc_check_digit(body), "name": "迎泽小吃店", "mcc": "5814",
           "county_code": "140106", "channels": "线下", "status": "", "category": ""}
    lines = [[r[c] for c in table.header] for _, r in table.rows]
    lines.append([row.get(c, "") for c in table.header])  # optional bank columns: empty
    write_table(path, [table.labels[c] for c in table.header], lines)
    r = run_cli(db, monkeypatch, "merchant", "import", path)
    assert r.exit_code == 0, r.output
    with db.session() as s:
        created = {m.name: m.id for m in s.execute(select(Merchant).where(
            Merchant.name.in_(["示例超市", "示例饭店", "迎泽小吃店"]))).scalars()}
    assert len(created) == 3
    assert "registered 3 merchants" in r.output
    for name, mid in created.items():  # each id printed beside its merchant's name
        assert any(name in line and f"│ {mid} " in line for line in r.output.splitlines()), \
            r.output


@pytest.mark.parametrize("kind", ["org", "merchant"])
def test_import_help_lists_every_column(kind, db, monkeypatch):
    r = run_cli(db, monkeypatch, kind, "import", "--help")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for canonical, header, _note in registry.template_columns(kind):
        assert f"/ {canonical} —" in text, canonical
        assert header.split("（")[0] in text
