"""Read partners' files row by row: CSV, JSON Lines and Excel (.xlsx).

Each row comes with its coordinates (line or spreadsheet row number) and its original
bytes, so a rejected row can be quarantined exactly as it was sent. A row that cannot
even be read (not UTF-8, malformed JSON, the wrong number of fields, far too large)
comes with a `problem` instead of failing the file: the next good row still flows.
Only a file that cannot be opened at all is an `PublishInputError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from openpyxl.utils.exceptions import InvalidFileException

from accord.core.errors import AccordError
from accord.ingest.validation import FieldError

__all__ = [
    "FORMATS",
    "MAX_ROW_BYTES",
    "PublishInputError",
    "SourceRow",
    "Table",
    "count_rows",
    "format_of",
    "open_table",
    "read_csv_rows",
]

FORMATS: Final = ("csv", "jsonl", "xlsx")
_EXTENSIONS: Final = {
    ".csv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
}
# No real row of a partner's file comes near this; a longer one is quarantined, not parsed.
MAX_ROW_BYTES: Final = 1024 * 1024
# The csv module refuses fields above its limit (128 KiB by default) without saying which
# bytes; a high limit lets us read such a row whole and quarantine it with its bytes.
_CSV_FIELD_LIMIT: Final = 64 * 1024 * 1024


class PublishInputError(AccordError):
    """The command was given something it cannot publish (unknown dataset, missing or
    unreadable file, a broken column mapping)."""


@dataclass(frozen=True)
class SourceRow:
    line_number: int
    values: dict[str, Any]
    original: bytes
    problem: FieldError | None = None  # a structural problem found while reading


def _problem(rule: str, message: str) -> FieldError:
    return FieldError("", rule, message)


def format_of(path: Path, explicit: str | None = None) -> str:
    """The file's format: the explicit one, else from its extension."""
    if explicit:
        if explicit not in FORMATS:
            raise PublishInputError(f"unknown format {explicit!r}; known: {', '.join(FORMATS)}")
        return explicit
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise PublishInputError(f"{path.name}: old Excel (.xls) files are not read; save as .xlsx")
    if suffix not in _EXTENSIONS:
        raise PublishInputError(
            f"{path.name}: cannot tell the format from the extension {suffix or '(none)'}; "
            f"use .csv, .jsonl or .xlsx, or --format"
        )
    return _EXTENSIONS[suffix]


class Table:
    """An opened file: its header (None for JSON Lines, whose keys are per row) and rows."""

    def __init__(self, header: list[str] | None, rows: Iterator[SourceRow]) -> None:
        self.header = header
        self.rows = rows


def _csv_table(path: Path) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    handle = open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        handle.close()
        return Table([], iter(()))
    except csv.Error as exc:
        handle.close()
        raise PublishInputError(f"{path.name}: the header row cannot be read: {exc}") from exc
    if any(_has_surrogates(name) for name in header):
        handle.close()
        raise PublishInputError(
            f"{path.name} is not UTF-8 text; save it as 'CSV UTF-8' and publish again"
        )

    def rows() -> Iterator[SourceRow]:
        with handle:
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield SourceRow(
                        reader.line_num,
                        {},
                        b"",
                        _problem("row_unreadable", f"The row cannot be read as CSV ({exc})."),
                    )
                    continue
                if not any(cell.strip() for cell in cells):
                    continue
                yield _csv_row(reader.line_num, header, cells)

    return Table(header, rows())


_SURROGATE: Final = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    """Bytes that were not UTF-8, as the surrogateescape error handler leaves them."""
    return _SURROGATE.search(text) is not None


def _csv_row(line_number: int, header: list[str], cells: list[str]) -> SourceRow:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    original = buffer.getvalue().encode("utf-8", errors="surrogateescape")
    problem = None
    if len(original) > MAX_ROW_BYTES:
        problem = _problem(
            "row_too_large", f"The row is {len(original)} bytes, over the limit of {MAX_ROW_BYTES}."
        )
    elif _has_surrogates("".join(cells)):
        problem = _problem(
            "encoding", "The row is not valid UTF-8 text; save the file as 'CSV UTF-8'."
        )
    elif len(cells) != len(header):
        problem = _problem(
            "row_shape", f"The row has {len(cells)} fields but the header has {len(header)}."
        )
    values = {} if problem else dict(zip(header, cells, strict=True))
    return SourceRow(line_number, values, original, problem)


def read_csv_rows(path: Path) -> Iterator[SourceRow]:
    """Rows of a CSV file with their line numbers and original text."""
    return _csv_table(path).rows


def _jsonl_table(path: Path) -> Table:
    def rows() -> Iterator[SourceRow]:
        with open(path, "rb") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                original = line.rstrip(b"\r\n")
                if not original.strip():
                    continue
                yield _jsonl_row(line_number, original)

    return Table(None, rows())


def _jsonl_row(line_number: int, original: bytes) -> SourceRow:
    if len(original) > MAX_ROW_BYTES:
        return SourceRow(
            line_number,
            {},
            original,
            _problem(
                "row_too_large",
                f"The line is {len(original)} bytes, over the limit of {MAX_ROW_BYTES}.",
            ),
        )
    try:
        value = json.loads(original.decode("utf-8"))
    except UnicodeDecodeError:
        return SourceRow(
            line_number, {}, original, _problem("encoding", "The line is not valid UTF-8 text.")
        )
    except ValueError as exc:
        return SourceRow(
            line_number,
            {},
            original,
            _problem("json_malformed", f"The line is not valid JSON ({exc.args[0]})."),
        )
    if not isinstance(value, dict):
        return SourceRow(
            line_number,
            {},
            original,
            _problem("json_not_object", "Each line must be one JSON object ({...})."),
        )
    return SourceRow(line_number, value, original)


def _cell(value: Any) -> Any:
    """A spreadsheet cell as the row rules read it: dates as ISO text, the rest as is."""
    if isinstance(value, datetime):
        if value.time() == datetime.min.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _xlsx_table(path: Path) -> Table:
    from openpyxl import load_workbook

    try:
        # A file handle, not the path: openpyxl judges paths by extension, and
        # `--format xlsx` may be given for a workbook saved under another name.
        workbook = load_workbook(open(path, "rb"), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, InvalidFileException) as exc:
        raise PublishInputError(f"{path.name} is not a readable .xlsx workbook: {exc}") from exc
    sheet = workbook.worksheets[0]
    iterator = enumerate(sheet.iter_rows(values_only=True), start=1)
    header: list[str] = []
    for _, cells in iterator:
        if any(cell is not None and str(cell).strip() for cell in cells):
            header = ["" if cell is None else str(cell).strip() for cell in cells]
            while header and not header[-1]:
                header.pop()
            break

    def rows() -> Iterator[SourceRow]:
        try:
            for line_number, cells in iterator:
                values = [_cell(cell) for cell in cells]
                while values and values[-1] is None:
                    values.pop()
                if not any(v is not None and str(v).strip() for v in values):
                    continue
                original = json.dumps(values, ensure_ascii=False, default=str).encode()
                extra = [v for v in values[len(header) :] if v is not None and str(v).strip()]
                if extra:
                    yield SourceRow(
                        line_number,
                        {},
                        original,
                        _problem(
                            "row_shape",
                            f"The row has values beyond the {len(header)} headed columns.",
                        ),
                    )
                    continue
                yield SourceRow(
                    line_number,
                    {name: value for name, value in zip(header, values, strict=False) if name},
                    original,
                )
        finally:
            workbook.close()

    return Table(header, rows())


def open_table(path: Path, fmt: str) -> Table:
    """Open a partner's file in the given format (see `format_of`)."""
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")
    if fmt == "csv":
        return _csv_table(path)
    if fmt == "jsonl":
        return _jsonl_table(path)
    if fmt == "xlsx":
        return _xlsx_table(path)
    raise PublishInputError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def count_rows(path: Path, fmt: str) -> int | None:
    """A quick upper bound on the data rows, for the progress bar; None if unknown."""
    try:
        if fmt in ("csv", "jsonl"):
            with open(path, "rb") as handle:
                lines = sum(1 for line in handle if line.strip())
            return max(0, lines - 1) if fmt == "csv" else lines
        if fmt == "xlsx":
            from openpyxl import load_workbook

            workbook = load_workbook(open(path, "rb"), read_only=True)
            try:
                return max(0, (workbook.worksheets[0].max_row or 1) - 1)
            finally:
                workbook.close()
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, InvalidFileException):
        return None
    return None
