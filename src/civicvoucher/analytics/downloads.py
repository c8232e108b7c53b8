"""A report as a file to download (XLSX or PDF), the same bytes for the API and the console.

    body, media_type, filename = report_file(report, "pdf", lang="en")

The tables are ``render.all_tables(report)``, as in ``civicvoucher report``'s folder; the
filename says which program, which subtree and which local day:
``report-shanxi-2020-140105-20200701.pdf`` (ASCII only, so every browser and mail client
keeps it). ``content_disposition`` is the header that makes a browser save it.
"""

from __future__ import annotations

import io
from urllib.parse import quote

from civicvoucher.analytics.tables import Report
from civicvoucher.core import clock

KINDS = ("xlsx", "pdf")
MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _safe(text: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_"
                   for ch in str(text)) or "x"


def filename(report: Report, kind: str, lang: str = "zh") -> str:
    parts = ["report", _safe(report.program_key)]
    if report.scope.org_id is not None:
        parts.append(_safe(report.scope.code or str(report.scope.org_id)))
    if report.generated_at is not None:
        parts.append(clock.to_local(report.generated_at).strftime("%Y%m%d"))
    if kind == "pdf" and lang != "zh":
        parts.append(lang)
    return "-".join(parts) + f".{kind}"


def report_file(report: Report, kind: str, *, lang: str = "zh") -> tuple[bytes, str, str]:
    """(bytes, media type, filename) of the report as ``kind`` (xlsx | pdf)."""
    from civicvoucher.analytics import describe
    from civicvoucher.analytics.pdf import pdf_bytes
    from civicvoucher.analytics.render import all_tables
    from civicvoucher.analytics.xlsx import write_xlsx

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    tables = all_tables(report)
    if kind == "pdf":
        body = pdf_bytes(report, tables, lang=lang)
    else:
        buf = io.BytesIO()
        write_xlsx(buf, report, tables, title=describe.default_title(report))  # type: ignore[arg-type]
        body = buf.getvalue()
    return body, MEDIA[kind], filename(report, kind, lang)


def content_disposition(name: str) -> str:
    return f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
