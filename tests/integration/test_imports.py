"""Member imports through the service: all or nothing, GBK and BOM files, reject files."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from civicvoucher.core.tabular import write_table
from civicvoucher.errors import ImportRejected
from civicvoucher.i18n import localize
from civicvoucher.members.models import Member
from civicvoucher.members.rules import with_ric_check
from civicvoucher.members.service import import_members
from tests.world import SECRET, build_world

HEADER = ["姓名", "身份证号", "手机号", "所属工会", "状态"]


def rows(union: str, n: int, start: int = 0) -> list[list[str]]:
    """Distinct valid people: 1,344 birthdays (1998-2001) x sequence numbers."""
    out = []
    for i in range(start, start + n):
        k = i % 1344
        born = f"{1998 + k // 336}{(k // 28) % 12 + 1:02d}{k % 28 + 1:02d}"
        out.append([f"会员{i}", with_ric_check(f"140101{born}{i // 1344:03d}"),
                    f"138{i:08d}", union, "在职"])
    return out


def count(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Member)).scalar()


def test_10000_rows_with_one_bad_checksum_import_nothing_and_name_the_row(db, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    data = rows(w.union_uscc["A"], 10_000)
    good = data[5000][1]
    data[5000][1] = good[:-1] + ("0" if good[-1] != "0" else "1")
    path = tmp_path / "members.csv"
    write_table(path, HEADER, data)
    with pytest.raises(ImportRejected) as exc, db.session() as s:
        import_members(s, path=path, key=SECRET)
    assert [(e.row, e.field) for e in exc.value.errors] == [(5002, "身份证号 (id_number)")]
    assert "checksum" in exc.value.errors[0].reason
    assert count(db) == 0
    with db.session() as s:
        result = import_members(s, path=path, key=SECRET, reject_path=tmp_path / "bad.csv")
    assert (result.imported, len(result.rejected)) == (9_999, 1)
    assert "5002" in (tmp_path / "bad.csv").read_text(encoding="utf-8-sig")
    assert count(db) == 9_999


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_chinese_excel_csv_files_import(db, tmp_path, encoding):
    w = build_world(db, members=(0, 0, 0))
    path = tmp_path / "members.csv"
    lines = [",".join(HEADER)] + [",".join(r) for r in rows(w.union_uscc["B"], 20)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    with db.session() as s:
        assert import_members(s, path=path, key=SECRET).imported == 20
    with db.session() as s:  # the same file again changes nothing
        again = import_members(s, path=path, key=SECRET)
    assert (again.imported, again.unchanged) == (0, 20)


def test_xlsx_imports_and_the_same_id_under_two_unions_is_reported(db, tmp_path):
    w = build_world(db, members=(0, 0, 0))
    first = tmp_path / "a.xlsx"
    write_table(first, HEADER, rows(w.union_uscc["A"], 5))
    second = tmp_path / "b.xlsx"
    write_table(second, HEADER, rows(w.union_uscc["C"], 2))  # the first two people again
    with db.session() as s:
        assert import_members(s, path=first, key=SECRET).duplicates == []
    with db.session() as s:
        result = import_members(s, path=second, key=SECRET)
    assert result.imported == 2
    assert len(result.duplicates) == 2
    assert all(d.id_masked.startswith("140") and "*" in d.id_masked for d in result.duplicates)
    with db.session() as s:
        stored = s.execute(select(Member.id_hash, Member.id_masked)).all()
    assert all(len(h) == 64 and not m[3:-4].strip("*") for h, m in stored)  # no plain IDs


def test_cards_issued_after_birth_import_and_ages_are_checked(db, tmp_path, monkeypatch):
    """An ID's area code is where the card was issued: 小店区 (140105, since 1997) for someone
    born in 1990 is valid. Too young, too old and unknown areas are named by row."""
    from datetime import datetime

    from civicvoucher.core import clock

    monkeypatch.setattr(clock, "_now", lambda: datetime(2026, 6, 1, 4, 0))
    w = build_world(db, members=(0, 0, 0))
    union = w.union_uscc["A"]
    path = tmp_path / "ages.csv"
    people = [("小店", "14010519900101001"), ("大连", "21020219700101002"),
              ("少年", "14010520200101003"), ("老人", "14010518950101004"),
              ("无县", "65857119800101005")]
    write_table(path, HEADER, [[n, with_ric_check(b), "", union, "在职"] for n, b in people])
    with pytest.raises(ImportRejected) as exc, db.session() as s:
        import_members(s, path=path, key=SECRET)
    reasons = {e.row: e.reason for e in exc.value.errors}
    assert sorted(reasons) == [4, 5, 6]
    assert localize(reasons[4], "zh").startswith("未满16周岁")
    assert "出生年份" in localize(reasons[5], "zh") and "birth year" in reasons[5]
    assert "658571" in reasons[6]
    write_table(path, HEADER, [[n, with_ric_check(b), "", union, "在职"] for n, b in people[:3]])
    monkeypatch.setenv("CIVICVOUCHER_MIN_MEMBER_AGE", "5")
    with db.session() as s:
        assert import_members(s, path=path, key=SECRET).imported == 3
