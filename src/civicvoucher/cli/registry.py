"""org / member / merchant commands: the registries.

The org and merchant import templates are built from the importers' own definitions: each
canonical column the importer reads (the values of ``ORG_ALIASES`` / ``MERCHANT_ALIASES``,
in their order) is one template column, headed by its first (Chinese) alias, so the template
and the importer cannot drift apart; ``TEMPLATE_NOTES`` explains every one of them (a column
without a note fails the template, and its test), and the same notes are the import
commands' ``--help``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table as RichTable

from civicvoucher import i18n
from civicvoucher.cli.common import audit, console, database, key_or_new, progress, settings
from civicvoucher.core import ids
from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import ImportRejected, ValidationError
from civicvoucher.i18n import N_, Text, _, localize, msg, nmsg
from civicvoucher.merchants.rules import MERCHANT_ALIASES
from civicvoucher.orgs.rules import ORG_ALIASES


@dataclass(frozen=True)
class ColumnNote:
    """What one import column means: a short hint for the header, and the full notes."""

    required: tuple[str, str]  # (Chinese, English): 必填 / required, or a condition
    zh: str
    en: str
    hint: str = ""  # shown in the header as （…）, which the importer ignores

    def need(self, lang: str) -> str:
        return self.required[0] if lang == i18n.ZH else self.required[1]

    def text(self, lang: str) -> str:
        return self.zh if lang == i18n.ZH else self.en


TEMPLATE_NOTES: dict[str, dict[str, ColumnNote]] = {
    "org": {
        "level": ColumnNote(("必填", "required"), "组织层级：省、市、县（区）总工会，或基层工会；"
                            "也认 省级、市级、县区、基层 等写法",
                            "province, city or county federation, or a grassroots union",
                            "省/市/县/基层工会"),
        "name": ColumnNote(("必填", "required"), "组织全称，如 太原市总工会",
                           "the organisation's full name"),
        "division_code": ColumnNote(
            ("总工会必填", "federations"), "6 位行政区划代码：省以 0000 结尾（140000），市以 00 "
            "结尾（140100），县区不以 00 结尾（140105）；基层工会留空",
            "the 6-digit division code (province ends 0000, city 00, county not 00); "
            "empty for a union"),
        "uscc": ColumnNote(("基层工会必填", "unions"), "18 位统一社会信用代码；请把这一列设为文本，"
                           "以免 Excel 改写", "the 18-character unified social credit code; "
                           "format the column as text"),
        "unit_type": ColumnNote(("基层工会必填", "unions"), "单位性质：行政事业单位 或 企业；总工会留空",
                                "administrative (行政事业单位) or enterprise (企业); empty for "
                                "a federation", "行政事业单位/企业"),
        "parent": ColumnNote(("省级以外必填", "all but a province"),
                             "上级总工会的行政区划代码；省级留空。上级须在本文件中靠前的行，"
                             "或已经导入",
                             "the parent federation's division code; empty for a province; "
                             "a parent comes earlier in the file or is imported already"),
    },
    "merchant": {
        "uscc": ColumnNote(("必填", "required"), "商户的 18 位统一社会信用代码；请把这一列设为文本",
                           "the merchant's 18-character unified social credit code"),
        "name": ColumnNote(("必填", "required"), "商户名称（收银员和会员看到的名字）",
                           "the merchant's name as cashiers and members see it"),
        "mcc": ColumnNote(("必填", "required"), "4 位商户类别码（MCC，ISO 18245），如 5411 超市、"
                          "5812 餐馆；须是可以用券的行业，决定默认的用券类别",
                          "the 4-digit merchant category code; an eligible trade; it sets "
                          "the default category"),
        "county_code": ColumnNote(("必填", "required"), "所在区县的 6 位行政区划代码（末两位不是 "
                                  "00），须在本系统某级总工会的范围内",
                                  "the county's 6-digit division code, inside the "
                                  "organisation tree"),
        "channels": ColumnNote(("必填", "required"), "受理渠道，可填多个，用顿号或逗号分隔",
                               "one or more of offline, online, takeaway, groupbuy",
                               "线下/线上/外卖/团购"),
        "status": ColumnNote(("选填", "optional"), "留空为待审核；导入时加 --activate 则全部为正常",
                             "empty: pending; --activate registers all as active",
                             "待审核/正常/暂停"),
        "category": ColumnNote(("选填", "optional"), "用券类别；留空按 MCC 归类。可填：日用百货、"
                               "粮油果蔬、超市便利加油、宾馆餐娱、医药交通缴费",
                               "the voucher category; empty: from the MCC"),
        "payee_name": ColumnNote(("选填", "optional"), "收款账户的户名；与开户行、银行账号一起填写或"
                                 "都留空", "the payee's account name; with the bank and the "
                                 "account number, or none of them"),
        "bank_name": ColumnNote(("选填", "optional"), "开户行（银行及支行名称）",
                                "the bank and branch holding the account"),
        "account_no": ColumnNote(("选填", "optional"), "银行账号，8 到 32 位数字；请把这一列设为文本。"
                                 "导入后加密保存，只显示掩码",
                                 "the account number, 8 to 32 digits, as text; sealed at rest, "
                                 "shown masked"),
    },
}
TEMPLATE_ALIASES: dict[str, Mapping[str, str]] = {"org": ORG_ALIASES,
                                                   "merchant": MERCHANT_ALIASES}


_NO_NOTE = ColumnNote(("", ""), "", "")


def template_columns(kind: str, *, strict: bool = True) -> list[tuple[str, str, ColumnNote]]:
    """(canonical column, header, note) for every column the importer of ``kind`` reads, in
    the order of its aliases; the header is the first alias (Chinese) with the note's hint.
    A column without a note is an error (``strict``), or listed bare (for ``--help``, which
    must not break the command line)."""
    aliases, notes = TEMPLATE_ALIASES[kind], TEMPLATE_NOTES[kind]
    first: dict[str, str] = {}
    for alias, canonical in aliases.items():
        first.setdefault(canonical, alias)
    missing = sorted(set(first) - set(notes))
    if missing and strict:
        raise RuntimeError(f"{kind} import columns without a template note: {missing}")
    out = []
    for c, h in first.items():
        note = notes.get(c, _NO_NOTE)
        out.append((c, f"{h}（{note.hint}）" if note.hint else h, note))
    return out


def template_example_rows(kind: str) -> list[list[str]]:
    """Made-up rows that import as they are into a fresh database: a federation tree down to
    小店区 (140105) with one union, and merchants in 140105. The union's USCC is the one the
    member template's examples belong to, so the three templates import one after another."""
    from stdnum.cn import uscc

    from civicvoucher.members.rules import member_template_example_rows

    if kind == "org":
        union = member_template_example_rows()[0][3]
        return [["省", "山西省总工会", "140000", "", "", ""],
                ["市", "太原市总工会", "140100", "", "", "140000"],
                ["县", "小店区总工会", "140105", "", "", "140100"],
                ["基层工会", "示例公司工会委员会", "", union, "企业", "140105"]]
    shop, diner = (body + uscc.calc_check_digit(body)
                   for body in ("91140105000000001", "92140105000000002"))
    return [[shop, "示例超市", "5411", "140105", "线下、线上", "正常", "", "示例超市有限公司",
             "中国工商银行太原小店支行", "6222020000000000018"],
            [diner, "示例饭店", "5812", "140105", "线下、外卖", "", "宾馆餐娱", "", "", ""]]


def write_template(kind: str, file: Path) -> None:
    """The import template: XLSX with the columns and examples on the first sheet (the one
    the importer reads; the header cells carry their notes as comments) and a 填写说明 sheet
    explaining each column; CSV with the header and the example rows only."""
    cols = template_columns(kind)
    examples = template_example_rows(kind)
    header = [h for _, h, _ in cols]
    if file.suffix.lower() != ".xlsx":
        write_table(file, header, examples)
        return
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "导入数据"
    ws.append(header)
    for row in examples:
        ws.append(row)
    for i, (canonical, head, note) in enumerate(cols, start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = max(14, 2 * len(head) + 2)
        for cell in ws[letter]:
            cell.number_format = "@"  # codes keep every digit
            cell.data_type = "s"
        top = ws[f"{letter}1"]
        top.font = Font(bold=True)
        top.comment = Comment(f"{note.required[0]}\n{note.zh}\n{canonical}: {note.en}",
                              "civicvoucher", width=320, height=140)
    ws.freeze_panes = "A2"
    info = wb.create_sheet("填写说明")
    info.append(["列名", "英文列名", "是否必填", "说明", "Meaning", "示例"])
    info.append(["column", "name", "required", "explanation", "explanation (English)",
                 "example"])
    for i, (canonical, head, note) in enumerate(cols):
        info.append([head, canonical, f"{note.required[0]} ({note.required[1]})", note.zh,
                     note.en, examples[0][i]])
    info.append([])
    info.append(["导入数据 工作表的示例行可以直接导入；导入前请换成自己的数据。列名可用中文或"
                 "英文列名，列的先后不限，括号里的提示可留可删。"])
    info.append(["The example rows import as they are: replace them with your own. Headers "
                 "may be the Chinese or the English names, in any order."])
    for cell in info[1] + info[2]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEF", (26, 16, 24, 60, 60, 24), strict=True):
        info.column_dimensions[letter].width = width
    for row in info.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.save(file)


def import_help(kind: str, summary: str, lang: str = i18n.EN) -> str:
    """An import command's ``--help`` in ``lang``: what it does, then every column with its
    notes in that language. The English text is what the command carries (and the catalogue's
    msgid); its Chinese in the catalogue is this function's ``lang="zh"`` text, which a test
    keeps equal, so the notes have one home (``TEMPLATE_NOTES``)."""
    zh = lang == i18n.ZH
    lines = [i18n.gettext(summary, lang), "",
             "列（第 1 行；中文或英文列名均可，顺序不限）：" if zh else
             "Columns (row 1; Chinese or English names, any order):"]
    for canonical, head, note in template_columns(kind, strict=False):
        lines.append("")
        sep, end = ("：", "。") if zh else (": ", ".")
        lines.append(f"{head} / {canonical} — {note.need(lang)}{sep}{note.text(lang)}{end}")
    lines += ["", f"`civicvoucher {kind} template FILE` 写出带示例行的模板。" if zh else
              f"`civicvoucher {kind} template FILE` writes a template with example rows."]
    return "\n".join(lines)


IMPORT_SUMMARIES = {
    "org": N_("Import organisations from CSV/XLSX (parents before children, or already "
              "stored)."),
    "merchant": N_("Import merchants from CSV/XLSX; prints the id of each merchant "
                   "registered."),
}
KEY = typer.Option(None, "--key", help="idempotency key: a retry with the same key (and the "
                   "same file or arguments) prints the first result and writes nothing twice")


# --- idempotency keys at the command line's door ---------------------------------------------
#
# The registry services keep no key of their own (an import run twice meets its own "exists
# already"; a status set twice is audited twice). The command line keeps the key in the API's
# table (``idempotency_key``, as user CLI_USER), written in the SAME transaction as the work
# and its audit entry: if the first run died before its commit, nothing of it exists and the
# retry runs afresh; if after, the retry finds the key and prints the stored answer. Two runs
# with one key at once: the second's insert meets the unique (user, key) and is retried by
# ``Database.run``, which then finds the first's answer. The same key with another file or
# other arguments is refused (``idempotency_key_reused``).

CLI_USER = -1  # the API's users are 0 (anonymous) and up
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


def fingerprint(command: str, file: Path | None = None, **options: object) -> str:
    """What a key stands for: the command, the file's bytes, the arguments."""
    h = hashlib.sha256()
    h.update(json.dumps([command, options], sort_keys=True, default=str).encode())
    if file is not None:
        with Path(file).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _stored_answer(s, key: str, rh: str) -> dict | None:
    from sqlalchemy import delete, select

    from civicvoucher.auth.models import IdempotencyRecord as K
    from civicvoucher.core import clock
    from civicvoucher.errors import IdempotencyConflict

    row = s.execute(select(K).where(K.user_id == CLI_USER, K.key == key)).scalar()
    if row is None:
        return None
    if row.expires_at <= clock.now():  # kept a day, then the key may be used again
        s.execute(delete(K).where(K.id == row.id))
        return None
    if row.request_hash != rh:
        raise IdempotencyConflict(msg("the key {key} was used for another command, file or "
                                      "arguments; use a new key", key=key))
    return json.loads(row.body)


def _remember(s, key: str, rh: str, answer: dict) -> None:
    from civicvoucher.api.idempotency import TTL
    from civicvoucher.auth.models import IdempotencyRecord
    from civicvoucher.core import clock

    now = clock.now()
    s.add(IdempotencyRecord(user_id=CLI_USER, key=key, request_hash=rh, state="done",
                            status_code=0, content_type="application/json",
                            body=json.dumps(answer, ensure_ascii=False).encode(),
                            created_at=now, locked_at=now, expires_at=now + TTL))
    s.flush()


def once_per_key(key: str, rh: str, work: Callable[[Any], dict]) -> tuple[dict, bool]:
    """``(answer, replayed)``: ``work(session)`` (which writes and audits, and returns what
    the command prints, as JSON data) once per key; a retry gets the first answer."""
    if not _KEY_PATTERN.fullmatch(key):
        raise ValidationError(N_("a key is 1 to 200 printable ASCII characters"), field="key")

    def txn(s):
        if (found := _stored_answer(s, key, rh)) is not None:
            return found, True
        answer = work(s)
        _remember(s, key, rh, answer)
        return answer, False

    return database().run(txn)


def _replayed(replayed: bool) -> None:
    if replayed:
        console.print(f"[dim]{_('replayed: this key ran before; nothing new was written')}[/dim]")


def _named(labels: Mapping, code: object) -> str:
    from civicvoucher.cli.tables import named

    return named(labels, code)


org_app = typer.Typer(help="Organisations: federations and grassroots unions.", no_args_is_help=True)
member_app = typer.Typer(help="The member registry.", no_args_is_help=True)
merchant_app = typer.Typer(help="The merchant registry.", no_args_is_help=True)


@org_app.command("template")
def org_template(file: Path = typer.Argument(Path("orgs-template.xlsx"))) -> None:
    """Write the organisation import template (.xlsx with a 填写说明 sheet, or .csv) with
    example rows that import as they are."""
    write_template("org", file)
    console.print(localize(msg("template written to {file}", file=file)))


@org_app.command("import", help=import_help("org", IMPORT_SUMMARIES["org"]))
def org_import(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               key: str = KEY) -> None:
    from civicvoucher.orgs.rules import ORG_ALIASES, validate_org_rows
    from civicvoucher.orgs.service import import_orgs

    table = read_table(file, aliases=ORG_ALIASES)
    rows, errors = validate_org_rows(table)
    if errors:
        raise ImportRejected(errors, total_rows=len(table.rows))

    def work(s) -> dict:
        created = import_orgs(s, rows)
        audit(s, "org.import", f"file:{file.name}"[:200], {"created": len(created)})
        return {"created": len(created)}

    answer, replayed = once_per_key(key_or_new(key, "org-import"), fingerprint("org import", file),
                                    work)
    n = answer["created"]
    console.print(f"[green]{localize(nmsg('imported {n} organisation', 'imported {n} organisations', n))}[/green]")
    _replayed(replayed)


ORG_LIST_HEADERS = (N_("id"), N_("level"), N_("name"), N_("code"), N_("unit type"))


@org_app.command("list")
def org_list(under: str = typer.Option(None, help="division code, USCC or id of the subtree root"),
             level: str = typer.Option(None, help="province, city, county or union")) -> None:
    """List organisations (a subtree with --under)."""
    from sqlalchemy import select

    from civicvoucher.orgs.models import Org
    from civicvoucher.orgs.rules import ORG_LEVEL_LABEL_ZH, UNIT_TYPE_LABEL_ZH
    from civicvoucher.orgs.service import find_org, subtree

    with database().session() as s:
        if under:
            orgs = subtree(s, find_org(s, under), level=level)
        else:
            q = select(Org).order_by(Org.path)
            orgs = list(s.execute(q.where(Org.level == level) if level else q).scalars())
        t = RichTable(*[_(h) for h in ORG_LIST_HEADERS])
        for o in orgs[:500]:
            t.add_row(str(o.id), _named(ORG_LEVEL_LABEL_ZH, o.level), o.name,
                      o.division_code or o.uscc or "",
                      _named(UNIT_TYPE_LABEL_ZH, o.unit_type) if o.unit_type else "")
    console.print(t)
    if len(orgs) > 500:
        console.print(localize(msg("... and {n} more", n=len(orgs) - 500)))


@member_app.command("template")
def member_template(file: Path = typer.Argument(Path("members-template.xlsx"))) -> None:
    """Write the member import template (.xlsx or .csv) with two example rows."""
    from civicvoucher.members.rules import MEMBER_TEMPLATE_HEADER, member_template_example_rows

    write_table(file, list(MEMBER_TEMPLATE_HEADER), member_template_example_rows())
    console.print(localize(msg("template written to {file}", file=file)))


def _change_lines(field_changes) -> str:
    from civicvoucher.members.rules import MEMBER_STATUS_LABEL_ZH

    names = {"name": N_("name"), "phone": N_("phone"), "status": N_("status")}

    def shown(field: str, v) -> str:
        if v is None:
            return _("(empty)")
        return _named(MEMBER_STATUS_LABEL_ZH, v) if field == "status" else str(v)

    sep = "；" if i18n.current() == i18n.ZH else "; "
    return sep.join(localize(msg("{field}: {old} → {new}", field=_(names.get(f, f)),
                                 old=shown(f, old), new=shown(f, new)))
                    for f, old, new in field_changes)


@member_app.command("import")
def member_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    reject_file: Path = typer.Option(
        None, help="import the good rows and write the bad ones here (default: all or nothing)"),
    update: bool = typer.Option(
        False, "--update", help="also apply the file's changes to people already registered in "
        "that union (name; phone and status where the cell is not empty), after listing them"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="only show what the import would do; write nothing"),
    changes_file: Path = typer.Option(
        None, help="write every change (row, member, field, from, to) to this CSV/XLSX"),
    key: str = KEY,
) -> None:
    """Import members from CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX."""
    from civicvoucher.members.service import import_members

    if reject_file is not None:
        check_file_type(reject_file)
    if changes_file is not None:
        check_file_type(changes_file)

    def work(s) -> dict:
        with progress(_("importing members"), None) as tick:
            # the service writes the reject file (the user's headers, ID numbers masked)
            # before the commit: once the import is committed, its files exist
            result = import_members(s, path=file, key=settings().secret_key,
                                    reject_path=reject_file, progress=tick, update=update,
                                    dry_run=dry_run, audit=audit)
        bad_rows = len({e.row for e in result.rejected})
        if not dry_run:
            audit(s, "member.import", f"file:{file.name}"[:200],
                  {"rows": result.rows, "imported": result.imported,
                   "unchanged": result.unchanged, "updated": result.updated,
                   "rejected_rows": bad_rows})
        if changes_file is not None:
            write_table(changes_file, ["row", "member_id", "id_masked", "field", "from", "to"],
                        [[c.row or "", c.member_id, c.id_masked, f.field, f.old or "",
                          f.new or ""] for c in result.changes for f in c.changes])
        return {
            "rows": result.rows, "imported": result.imported, "unchanged": result.unchanged,
            "updated": result.updated, "rejected_rows": bad_rows,
            "reject_file": str(reject_file) if result.rejected and reject_file and not dry_run
            else None,
            "changes_total": len(result.changes),
            "changes": [{"row": c.row, "member_id": c.member_id, "id_masked": c.id_masked,
                         "name": c.name, "fields": [[f.field, f.old, f.new] for f in c.changes]}
                        for c in result.changes[:CHANGES_SHOWN]],
            "duplicates_total": len(result.duplicates),
            "duplicates": [[d.id_masked, list(d.union_ids)] for d in result.duplicates[:20]],
        }

    if dry_run:  # writes nothing: no key to keep
        with database().session() as s:
            answer, replayed = work(s), False
    else:
        answer, replayed = once_per_key(
            key_or_new(key, "member-import"),
            fingerprint("member import", file, update=update,
                        reject_file=str(reject_file) if reject_file else None,
                        changes_file=str(changes_file) if changes_file else None), work)
    _print_member_import(answer, update=update, dry_run=dry_run, changes_file=changes_file)
    _replayed(replayed)


CHANGES_SHOWN = 200


def check_file_type(path: Path) -> None:
    if Path(path).suffix.lower() not in (".csv", ".xlsx"):
        raise ValidationError(msg("{file}: use a .csv or .xlsx file", file=Path(path).name),
                              field="file")


def _print_member_import(a: dict, *, update: bool, dry_run: bool,
                         changes_file: Path | None) -> None:
    n_changes = a["changes_total"]
    if changes_file is not None:
        console.print(localize(msg("{n} changes written to {file}", n=n_changes,
                                   file=changes_file)))
    if n_changes:
        applied = update and not dry_run
        console.print(localize(msg("changes applied ({n} members):", n=n_changes) if applied
                               else msg("changes ({n} members):", n=n_changes)))
        for c in a["changes"]:
            where = localize(msg("row {row}", row=c["row"])) + "  " if c["row"] else ""
            console.print("  " + where + localize(msg("member {id}", id=c["member_id"]))
                          + f"  {c['id_masked']}  {c['name']}:  " + _change_lines(c["fields"]))
        if n_changes > len(a["changes"]):
            more = localize(msg("... and {n} more", n=n_changes - len(a["changes"])))
            if not changes_file:
                more += " " + _("(--changes-file writes them all)")
            console.print("  " + more)
    first = (msg("{n} would be imported", n=a["imported"]) if dry_run
             else msg("{n} imported", n=a["imported"]))
    rest = [msg("{n} already registered", n=a["unchanged"])]
    if update:
        rest.append(msg("{n} would be updated", n=n_changes) if dry_run
                    else msg("{n} updated", n=a["updated"]))
    rest.append(msg("{n} rejected of {rows} rows", n=a["rejected_rows"], rows=a["rows"]))
    sep = "，" if i18n.current() == i18n.ZH else ", "
    console.print(f"[green]{localize(first)}[/green]{sep}"
                  + sep.join(localize(m) for m in rest))
    if n_changes and not update:
        console.print("[yellow]" + localize(msg(
            "{n} registered members differ from the file (nothing changed): run again with "
            "--update --dry-run to see how, --update to apply", n=n_changes)) + "[/yellow]")
    if dry_run:
        console.print(f"[yellow]{_('dry run: nothing was written')}[/yellow]")
    if a["reject_file"]:
        console.print("[yellow]" + localize(msg("bad rows written to {file}",
                                                file=a["reject_file"])) + "[/yellow]")
    _print_duplicates_data(a["duplicates_total"], a["duplicates"])


def _find_member(s, ref: str, union: str | None):
    """A member by id, or by ID-card number (with --union if the person is in several)."""
    from sqlalchemy import select

    from civicvoucher.errors import NotFound
    from civicvoucher.members.models import Member
    from civicvoucher.members.rules import hash_id_number, id_number_problem
    from civicvoucher.orgs.service import find_org

    ref = ref.strip()
    if len(ref) < 18 and (mid := ids.as_id(ref)) is not None:
        m = s.get(Member, mid)
        if m is None:
            raise NotFound(msg("no member {ref}", ref=ref), code="member_not_found")
        return m
    q = select(Member).where(Member.id_hash == hash_id_number(ref, key=settings().secret_key))
    if union:
        q = q.where(Member.union_id == find_org(s, union).id)
    found = list(s.execute(q.order_by(Member.id)).scalars())
    if not found:
        problem = id_number_problem(ref, min_age=0)
        raise NotFound(N_("no member with this ID-card number") if problem is None else
                       msg("no member with this ID-card number: {problem}",
                           problem=Text(problem)), code="member_not_found")
    if len(found) > 1:
        raise ValidationError(msg("this ID-card number is registered in several unions "
                                  "(members {ids}): give --union or the member id",
                                  ids=[str(m.id) for m in found]), field="member")
    return found[0]


@member_app.command("change")
def member_change(
    member: str = typer.Argument(..., help="member id, or the 18-digit ID-card number"),
    status: str = typer.Option(None, help="在职/停用/离会/调出 or active, suspended, left, "
                               "transferred (to move to a union here, use `member transfer`)"),
    phone: str = typer.Option(None, help="new mobile number"),
    clear_phone: bool = typer.Option(False, "--clear-phone", help="remove the phone number"),
    reason: str = typer.Option(None, help="why (e.g. 离会原因); kept on the member and audited"),
    union: str = typer.Option(None, help="the union (code or id), if the ID number is in several"),
) -> None:
    """Change one member's status or phone (audited). Only active members are issued vouchers."""
    from civicvoucher.members.rules import MEMBER_STATUS_LABEL_ZH, parse_status
    from civicvoucher.members.service import change_member

    new_status = None
    if status is not None:
        new_status = parse_status(status) if status.strip() else None
        if new_status is None:
            raise ValidationError(msg("unknown member status {status}: use 在职, 停用, 离会 or "
                                      "调出 (active, suspended, left, transferred)",
                                      status=repr(status)), field="status")
    with database().session() as s:
        m = _find_member(s, member, union)
        m, change = change_member(s, m.id, key=settings().secret_key, audit=audit,
                                  status=new_status, phone=phone, clear_phone=clear_phone,
                                  reason=reason)
        label = _named(MEMBER_STATUS_LABEL_ZH, m.status)
    if change is None:
        console.print(localize(msg("member {id} {masked}: nothing to change ({status}, phone "
                                   "{phone})", id=m.id, masked=m.id_masked, status=label,
                                   phone=m.phone_masked or "-")))
        return
    console.print(f"[green]{localize(msg('member {id}', id=m.id))}[/green] {m.id_masked} "
                  f"{m.name}: " + _change_lines([(f.field, f.old, f.new)
                                                 for f in change.changes]))


@member_app.command("transfer")
def member_transfer(
    member: str = typer.Argument(..., help="member id, or the 18-digit ID-card number"),
    to: str = typer.Option(..., "--to", help="the union the member moves to (USCC or id)"),
    reason: str = typer.Option(None, help="why; kept on the member and audited"),
    union: str = typer.Option(None, help="the union (code or id) the member leaves, if the ID "
                              "number is in several"),
) -> None:
    """Transfer a member to another union (调出/调入, audited): the old union's row is marked
    transferred and the new union gets the person's row. Vouchers already issued stay with the
    union that issued them; the new union cannot entitle the person twice for a product."""
    from civicvoucher.members.rules import MEMBER_STATUS_LABEL_ZH
    from civicvoucher.members.service import transfer_member
    from civicvoucher.orgs.service import find_org

    with database().session() as s:
        m = _find_member(s, member, union)
        target = find_org(s, to)
        t = transfer_member(s, m.id, to_union_id=target.id, audit=audit, reason=reason)
        name = target.name
    if not t.changed:
        console.print(localize(msg("member {old} was already transferred to {union} (member "
                                   "{new})", old=t.old.id, union=name, new=t.new.id)))
        return
    text = (msg("member {old} {masked} transferred to {union}: new member {new} ({status})",
                old=t.old.id, masked=t.old.id_masked, union=name, new=t.new.id,
                status=_named(MEMBER_STATUS_LABEL_ZH, t.new.status)) if t.created else
            msg("member {old} {masked} transferred to {union}: existing member {new} "
                "({status})", old=t.old.id, masked=t.old.id_masked, union=name, new=t.new.id,
                status=_named(MEMBER_STATUS_LABEL_ZH, t.new.status)))
    console.print(localize(text))


def _print_duplicates(dups) -> None:
    _print_duplicates_data(len(dups), [[d.id_masked, list(d.union_ids)] for d in dups[:20]])


def _print_duplicates_data(total: int, shown: list) -> None:
    if not total:
        return
    console.print("[yellow]" + localize(nmsg(
        "{n} person is a member of more than one union (each is issued once, by whichever "
        "union issues first):",
        "{n} people are members of more than one union (each is issued once, by whichever "
        "union issues first):", total)) + "[/yellow]")
    for masked, unions in shown:
        console.print(f"  {masked}  " + localize(msg("unions {ids}",
                                                     ids=[str(u) for u in unions])))


@member_app.command("duplicates")
def member_duplicates() -> None:
    """People registered in more than one union."""
    from civicvoucher.members.service import cross_union_duplicates

    with database().session() as s:
        dups = cross_union_duplicates(s)
    _print_duplicates(dups)
    if not dups:
        console.print(_("no one is registered twice"))


@merchant_app.command("template")
def merchant_template(file: Path = typer.Argument(Path("merchants-template.xlsx"))) -> None:
    """Write the merchant import template (.xlsx with a 填写说明 sheet, or .csv) with example
    rows that import as they are once the organisation tree covers 140105."""
    write_template("merchant", file)
    console.print(localize(msg("template written to {file}", file=file)))


@merchant_app.command("import", help=import_help("merchant", IMPORT_SUMMARIES["merchant"]))
def merchant_import(file: Path = typer.Argument(..., exists=True, dir_okay=False),
                    activate: bool = typer.Option(False, help="register them as active"),
                    key: str = KEY) -> None:
    from dataclasses import replace

    from civicvoucher.errors import RowError
    from civicvoucher.merchants.rules import (
        MERCHANT_ALIASES,
        MerchantStatus,
        validate_merchant_rows,
    )
    from civicvoucher.merchants.service import add_merchants, registry_errors

    table = read_table(file, aliases=MERCHANT_ALIASES)
    rows, errors = validate_merchant_rows(table)
    if activate:
        rows = [(n, replace(r, status=MerchantStatus.ACTIVE)) for n, r in rows]

    def work(s) -> dict:
        # every error at once: the file's own, and the registry's (map, registered already)
        found = errors + [RowError(e.row, table.label(e.field), e.reason)
                          for e in registry_errors(s, rows)]
        if found:
            raise ImportRejected(sorted(found, key=lambda e: (e.row, e.field)),
                                 total_rows=len(table.rows))
        n = add_merchants(s, rows)
        created = _merchant_ids(s, [r.uscc for _, r in rows])
        audit(s, "merchant.import", f"file:{file.name}"[:200], {
            "registered": n, "activated": activate,
            "ids": [created[0][0], created[-1][0]] if created else []})
        return {"registered": n, "total": len(created),
                "first_id": created[0][0] if created else None,
                "last_id": created[-1][0] if created else None,
                "shown": [list(c) for c in created[:MERCHANTS_SHOWN]]}

    answer, replayed = once_per_key(key_or_new(key, "merchant-import"),
                                    fingerprint("merchant import", file, activate=activate),
                                    work)
    n = answer["registered"]
    line = localize(nmsg("registered {n} merchant", "registered {n} merchants", n))
    if answer["total"] > 1:
        line += localize(msg(", ids {first}–{last}", first=answer["first_id"],
                             last=answer["last_id"]))
    console.print(f"[green]{line}[/green]")
    _print_merchant_ids([tuple(c) for c in answer["shown"]], total=answer["total"])
    _replayed(replayed)


MERCHANTS_SHOWN = 50


def _merchant_ids(s, usccs: Sequence[str]) -> list[tuple[int, str, str]]:
    """(id, USCC, name) of the merchants with these USCCs, in file order."""
    from sqlalchemy import select

    from civicvoucher.merchants.models import Merchant

    found: dict[str, tuple[int, str, str]] = {}
    for i in range(0, len(usccs), 500):
        chunk = usccs[i:i + 500]
        for mid, code, name in s.execute(select(Merchant.id, Merchant.uscc, Merchant.name)
                                         .where(Merchant.uscc.in_(chunk))):
            found[code] = (mid, code, name)
    return [found[u] for u in usccs if u in found]


MERCHANT_ID_COLUMNS = (("编号", "id"), ("统一社会信用代码", "USCC"), ("商户", "merchant"))


def _print_merchant_ids(created: list[tuple[int, str, str]], *, total: int) -> None:
    zh = i18n.current() == i18n.ZH
    t = RichTable(*[z if zh else e for z, e in MERCHANT_ID_COLUMNS])
    for mid, code, name in created:
        t.add_row(str(mid), code, name)
    if created:
        console.print(t)
    if total > len(created):
        console.print(localize(msg("... and {n} more: civicvoucher merchant list lists them "
                                   "all", n=total - len(created))))


@merchant_app.command("list")
def merchant_list(
    status: str = typer.Option(None, help="待审核/正常/暂停 or pending, active, suspended"),
    county: str = typer.Option(None, help="division-code prefix: 14, 1401 or 140105"),
    category: str = typer.Option(None, help="日用百货 … or daily_goods …"),
    name: str = typer.Option(None, help="part of the name"),
    limit: int = typer.Option(50, min=1, max=10_000, help="at most this many on screen"),
    after: int = typer.Option(None, help="the last id of the previous page: show the next"),
    file: Path = typer.Option(None, "--export", dir_okay=False,
                              help="write every matching merchant to this .csv or .xlsx"),
) -> None:
    """List merchants with their ids (what redeem --merchant and merchant status take)."""
    from civicvoucher.cli.tables import Column, Row, page_or_export
    from civicvoucher.merchants.regions import current_county
    from civicvoucher.merchants.rules import (
        CATEGORY_LABEL_ZH,
        CHANNEL_LABEL_ZH,
        MERCHANT_STATUS_LABEL_ZH,
        Channel,
        MerchantStatus,
        parse_category,
    )

    st = None
    if status:
        words = {**{zh: s for s, zh in MERCHANT_STATUS_LABEL_ZH.items()},
                 **{s.value: s for s in MerchantStatus}}
        st = words.get(status.strip()) or words.get(status.strip().lower())
        if st is None:
            raise ValidationError(msg("unknown merchant status {status}: use 待审核, 正常 or "
                                      "暂停 (pending, active, suspended)", status=repr(status)),
                                  field="status")
    cat = None
    if category:
        cat = parse_category(category)
        if cat is None:
            raise ValidationError(msg("unknown category {category}: use {choices}",
                                      category=repr(category),
                                      choices=list(CATEGORY_LABEL_ZH.values())),
                                  field="category")
    columns = (Column("编号", "id", "id"), Column("统一社会信用代码", "USCC", width=20),
               Column("商户", "name", width=24), Column("MCC", "MCC"),
               Column("类别", "category"), Column("区县", "county", width=20),
               Column("渠道", "channels"), Column("状态", "status"),
               Column("登记时间", "registered", "instant"))
    sep = "、" if i18n.current() == i18n.ZH else ", "

    def fetch(s, after_id, n):
        from sqlalchemy import select

        from civicvoucher.merchants.models import Merchant

        q = select(Merchant)
        if st is not None:
            q = q.where(Merchant.status == st)
        if county:
            q = q.where(Merchant.county_code.startswith(county.strip()))
        if cat is not None:
            q = q.where(Merchant.category == cat)
        if name:
            q = q.where(Merchant.name.contains(name.strip(), autoescape=True))
        if after_id is not None:
            q = q.where(Merchant.id > after_id)
        return [Row((m.id, m.uscc, m.name, m.mcc, _named(CATEGORY_LABEL_ZH, m.category),
                     f"{m.county_code} {current_county(m.county_code) or ''}".strip(),
                     sep.join(_named(CHANNEL_LABEL_ZH, c) for c in Channel if c in m.channel_set),
                     _named(MERCHANT_STATUS_LABEL_ZH, m.status), m.created_at))
                for m in s.execute(q.order_by(Merchant.id).limit(n)).scalars()]

    page_or_export("商户", _("merchants"), columns, fetch, limit=limit, after=after,
                   file=file, action="merchant.export",
                   detail={"status": st, "county": county, "category": cat, "name": name})


@merchant_app.command("status")
def merchant_status(merchant: str = typer.Argument(..., help="merchant USCC or id"),
                    status: str = typer.Argument(..., help="pending, active or suspended"),
                    key: str = KEY) -> None:
    """Activate or suspend a merchant (audited)."""
    from civicvoucher.merchants.rules import MERCHANT_STATUS_LABEL_ZH
    from civicvoucher.merchants.service import find_merchant, set_status

    with database().session() as s:
        merchant_id = find_merchant(s, merchant).id

    def work(s) -> dict:
        from civicvoucher.merchants.models import Merchant

        before = s.get(Merchant, merchant_id).status
        m = set_status(s, merchant_id=merchant_id, status=status)
        audit(s, "merchant.status", f"merchant:{m.id}", {"from": before, "to": m.status})
        return {"id": m.id, "name": m.name, "from": str(before), "to": str(m.status)}

    answer, replayed = once_per_key(
        key_or_new(key, "merchant-status"),
        fingerprint("merchant status", merchant_id=merchant_id, status=status.strip()), work)
    console.print(f"{answer['name']}: {_named(MERCHANT_STATUS_LABEL_ZH, answer['to'])}")
    _replayed(replayed)

