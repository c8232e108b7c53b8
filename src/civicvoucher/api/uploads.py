"""Spreadsheet uploads (CSV in UTF-8, UTF-8 with BOM or GBK; XLSX): size and type checked,
read into a table the registries' validators take."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile

from civicvoucher.core.tabular import Table, read_table
from civicvoucher.errors import ValidationError

MAX_UPLOAD = 50 * 1024 * 1024


@contextmanager
def saved_upload(file: UploadFile, stem: str) -> Iterator[Path]:
    """The upload as a temporary file (gone when the block ends), refused if it is not
    .csv/.xlsx or larger than 50 MB."""
    suffix = Path(file.filename or "upload.csv").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValidationError("upload a .csv or .xlsx file", field="file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}{suffix}"
        data = file.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise ValidationError("file larger than 50 MB", field="file")
        path.write_bytes(data)
        yield path


def read_upload(path: Path, aliases: dict) -> Table:
    """Read a saved upload; a file that is not a readable table is the caller's error."""
    try:
        return read_table(path, aliases=aliases)
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(f"cannot read the file: {exc.__class__.__name__}",
                              field="file") from None
