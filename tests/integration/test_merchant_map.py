"""Merchants stay on the map (a real county inside the org tree, or an allowed one) and a
file's category beats the MCC default: through the service, the CLI and the API, on SQLite
and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, insert, select

from civicvoucher.core.tabular import write_table
from civicvoucher.errors import Conflict, ImportRejected
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import (
    Category,
    Channel,
    MerchantRow,
    MerchantStatus,
    category_for_mcc,
)
from civicvoucher.merchants.service import add_merchants, set_status
from tests.world import build_world, make_uscc


def _shop(n: int, county: str, *, category: Category | None = None,
          status: MerchantStatus = MerchantStatus.ACTIVE) -> MerchantRow:
    return MerchantRow(uscc=make_uscc(n), name=f"店{n}", mcc="5411",
                       category=category or category_for_mcc("5411"), county_code=county,
                       channels=(Channel.OFFLINE,), status=status)


def _count(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Merchant)).scalar()


def test_counties_off_the_map_are_refused_and_named(db):
    build_world(db, members=(0, 0, 0))  # 山西 140000 › 太原 140100 › 小店 140105, 迎泽 140106
    before = _count(db)
    rows = [(2, _shop(801, "140321")), (3, _shop(802, "130999")), (4, _shop(803, "440305"))]
    with pytest.raises(ImportRejected) as exc, db.session() as s:
        add_merchants(s, rows)
    assert [(e.row, e.field) for e in exc.value.errors] == [(3, "county_code"),
                                                            (4, "county_code")]
    assert "GB/T 2260" in exc.value.errors[0].reason
    assert "organisation tree" in exc.value.errors[1].reason
    assert _count(db) == before
    with db.session() as s:
        assert add_merchants(s, rows[:1]) == 1  # a real county of the province: fine


def test_an_allowed_region_may_hold_merchants(db, monkeypatch):
    build_world(db, members=(0, 0, 0))
    monkeypatch.setenv("CIVICVOUCHER_MERCHANT_REGIONS", "4403")
    with db.session() as s:
        assert add_merchants(s, [(1, _shop(811, "440305"))]) == 1
    with db.session() as s, pytest.raises(ImportRejected):
        add_merchants(s, [(1, _shop(812, "130999"))])  # allowed regions are real ones too


def test_a_merchant_off_the_map_cannot_be_activated(db):
    build_world(db, members=(0, 0, 0))
    with db.session() as s:  # registered before the map was checked
        s.execute(insert(Merchant).values(uscc=make_uscc(821), name="旧店", mcc="5411",
                                          category="supermarket_fuel", county_code="130999",
                                          channels="offline", status="pending",
                                          created_at=s.execute(select(func.now())).scalar()))
        mid = s.execute(select(Merchant.id).where(Merchant.uscc == make_uscc(821))).scalar()
    with db.session() as s, pytest.raises(Conflict) as exc:
        set_status(s, merchant_id=mid, status="active")
    assert exc.value.code == "county_outside_map"
    with db.session() as s:
        assert set_status(s, merchant_id=mid, status="suspended").status == "suspended"


def test_the_named_category_is_stored(db):
    build_world(db, members=(0, 0, 0))
    with db.session() as s:
        add_merchants(s, [(1, _shop(831, "140105", category=Category.GRAIN_PRODUCE))])
        stored = s.execute(select(Merchant.category).where(Merchant.uscc == make_uscc(831)))
        assert stored.scalar() == "grain_produce"


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIVICVOUCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "CIVICVOUCHER_SECRET_KEY": "cli-test-key"}
    return subprocess.run([sys.executable, "-c", "from civicvoucher.cli.main import run; run()",
                           *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_import_names_counties_off_the_map_and_takes_the_category(tmp_path):
    orgs = tmp_path / "orgs.csv"
    write_table(orgs, ["层级", "名称", "行政区划代码", "上级代码"],
                [["省", "河北省总工会", "130000", ""], ["市", "石家庄市总工会", "130100", "130000"]])
    assert _cli(tmp_path, "org", "import", str(orgs)).returncode == 0
    shops = tmp_path / "shops.csv"
    header = ["统一社会信用代码", "商户名称", "商户类别码", "类别", "区县代码", "受理渠道"]
    write_table(shops, header, [[make_uscc(841), "粮油店", "5411", "粮油果蔬", "130102", "线下"],
                                [make_uscc(842), "无此县", "5411", "", "130999", "线下"],
                                [make_uscc(843), "外省店", "5411", "", "440305", "线下"]])
    r = _cli(tmp_path, "merchant", "import", str(shops), "--activate")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "row 3" in r.stderr and "row 4" in r.stderr and "nothing was imported" in r.stderr
    write_table(shops, header, [[make_uscc(841), "粮油店", "5411", "粮油果蔬", "130102", "线下"],
                                [make_uscc(844), "坏码", "99999", "", "130102", "线下"],
                                [make_uscc(845), "无此县", "5411", "", "130999", "线下"]])
    r = _cli(tmp_path, "merchant", "import", str(shops), "--activate")  # every error at once
    assert r.returncode == 2 and "row 3" in r.stderr and "row 4" in r.stderr, r.stderr
    assert "区县代码" in r.stderr  # the column as the file names it
    write_table(shops, header, [[make_uscc(841), "粮油店", "5411", "粮油果蔬", "130102", "线下"]])
    r = _cli(tmp_path, "merchant", "import", str(shops), "--activate")
    assert r.returncode == 0, r.stdout + r.stderr
    from civicvoucher.db import Database

    d = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    with d.session() as s:
        assert s.execute(select(Merchant.category, Merchant.status)).one() == (
            "grain_produce", "active")
    d.dispose()
