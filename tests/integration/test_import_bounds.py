"""Import bounds through the services and the CLI: a control character is a named row error on
both databases (PostgreSQL cannot store NUL), and ``civicvoucher member import`` refuses a file
over a limit with a clear message and nothing imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from bench.import_files import write_xlsx_bomb
from sqlalchemy import func, select

from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import ImportRejected
from civicvoucher.members.models import Member
from civicvoucher.members.service import import_members
from civicvoucher.merchants.rules import MERCHANT_ALIASES, validate_merchant_rows
from tests.world import SECRET, build_world, make_id, make_uscc

HEADER = ["姓名", "身份证号", "手机号", "所属工会", "状态"]


def _count(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Member)).scalar()


@pytest.mark.parametrize("char", ["\x00", "\x07"])
def test_a_control_character_in_a_roster_is_a_row_error_not_a_crash(db, tmp_path, char):
    w = build_world(db, members=(0, 0, 0))
    path = tmp_path / "m.csv"
    path.write_text(",".join(HEADER) + "\n"
                    f"张三,{make_id(1)},,{w.union_uscc['A']},在职\n"
                    f"李{char}四,{make_id(2)},,{w.union_uscc['A']},在职\n",
                    encoding="utf-8")
    with pytest.raises(ImportRejected) as exc, db.session() as s:
        import_members(s, path=path, key=SECRET)
    assert [(e.row, e.field) for e in exc.value.errors] == [(3, "姓名 (name)")]
    assert _count(db) == 0


def test_a_control_character_in_a_merchant_file_is_a_row_error(tmp_path):
    path = tmp_path / "shops.csv"
    write_table(path, ["统一社会信用代码", "商户名称", "商户类别码", "区县代码", "受理渠道"],
                [[make_uscc(700), "超\x00市", "5411", "140105", "线下"]])
    _, errors = validate_merchant_rows(read_table(path, aliases=MERCHANT_ALIASES))
    # write_table turned the NUL into U+FFFD; write the raw byte instead
    assert errors == []
    path.write_bytes(path.read_bytes().replace("\ufffd".encode(), b"\x00"))
    _, errors = validate_merchant_rows(read_table(path, aliases=MERCHANT_ALIASES))
    assert [(e.row, e.field) for e in errors] == [(2, "商户名称 (name)")]


def _cli(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "CIVICVOUCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "CIVICVOUCHER_SECRET_KEY": "cli-test-key", **env}
    return subprocess.run([sys.executable, "-c", "from civicvoucher.cli.main import run; run()",
                           *args], capture_output=True, text=True, env=full, timeout=120)


def test_the_cli_refuses_a_zip_bomb_and_a_file_over_the_limits(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    write_xlsx_bomb(bomb, 20_000)
    r = _cli(tmp_path, "member", "import", str(bomb), CIVICVOUCHER_LANG="zh")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "import_too_large" in r.stderr and "压缩比" in r.stderr
    big = tmp_path / "big.csv"
    big.write_text(",".join(HEADER) + "\n" + "张三,1,,2,在职\n" * 2000, encoding="utf-8")
    r = _cli(tmp_path, "member", "import", str(big), CIVICVOUCHER_IMPORT_MAX_BYTES="10000")
    assert r.returncode == 2 and "import_too_large" in r.stderr, r.stdout + r.stderr
    r = _cli(tmp_path, "member", "import", str(big), CIVICVOUCHER_IMPORT_MAX_ROWS="1000")
    assert r.returncode == 2 and "1,000" in r.stderr, r.stdout + r.stderr
