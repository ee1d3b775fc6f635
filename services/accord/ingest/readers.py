"""Read partners' files row by row: CSV, JSON Lines and Excel (.xlsx).

Each row comes with its coordinates (line or spreadsheet row number) and its original
bytes, so a rejected row can be quarantined exactly as it was sent. A row that cannot
even be read (not UTF-8, malformed JSON, the wrong number of fields, far too large)
comes with a `problem` instead of failing the file: the next good row still flows.
Only a file that cannot be opened at all is an `PublishInputError`.

Nothing a file says is trusted with memory: CSV and JSON Lines are read a line at a time
with a bounded read, so a line over the row limit is skipped in pieces and rejected with
its line number rather than read whole; an .xlsx workbook (a zip archive) is refused before
parsing when its members would inflate past a total size or compression ratio
(`ReadLimits`), the signature of a zip bomb.
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
    "ReadLimits",
    "SourceRow",
    "Table",
    "count_rows",
    "format_of",
    "open_table",
    "check_xlsx_archive",
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
# What a workbook may inflate to, and by what ratio, before it is parsed at all: a sheet
# of a few hundred thousand rows is tens of MiB of XML, and real workbooks compress about
# 5-20:1 (a 203 KiB file that inflated to 833 MiB was about 4,000:1).
XLSX_MAX_INFLATED_BYTES: Final = 200 * 1024 * 1024
XLSX_MAX_RATIO: Final = 100.0
# Pieces in which the rest of an over-long line is read and dropped.
_SKIP_CHUNK: Final = 64 * 1024
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


@dataclass(frozen=True)
class ReadLimits:
    """How much of a file the readers will hold or inflate (see `Settings`)."""

    max_row_bytes: int = MAX_ROW_BYTES
    xlsx_max_inflated_bytes: int = XLSX_MAX_INFLATED_BYTES
    xlsx_max_ratio: float = XLSX_MAX_RATIO

    @classmethod
    def of(cls, settings: Any) -> ReadLimits:
        return cls(
            xlsx_max_inflated_bytes=settings.xlsx_max_inflated_bytes,
            xlsx_max_ratio=settings.xlsx_max_ratio,
        )


DEFAULT_LIMITS: Final = ReadLimits()


def _too_large(line_number: int, limit: int, what: str = "line") -> FieldError:
    return _problem(
        "row_too_large",
        f"The {what} on line {line_number} is over the limit of {limit} bytes; it was not read.",
    )


class _RecordTooLarge(Exception):
    def __init__(self, line_number: int) -> None:
        self.line_number = line_number


class _BoundedLines:
    """The physical lines of a text file (opened with newline=""), for csv.reader, none
    held longer than `limit` characters: the rest of a longer line is read in pieces and
    dropped, and the reader is handed an empty line in its place (its number is noted in
    `oversized`). A record that grows past `limit` over several lines (a quote opened and
    never closed) raises _RecordTooLarge from the reader; the caller calls `record_done`
    after each record."""

    def __init__(self, handle: Any, limit: int) -> None:
        self.handle = handle
        self.limit = limit
        self.line_number = 0
        self.oversized: dict[int, str] = {}  # line number -> the characters read of it
        self._record_chars = 0
        self._record_start = 1

    def __iter__(self) -> _BoundedLines:
        return self

    def record_done(self) -> None:
        self._record_chars = 0

    def _skipped(self, head: str, quotes: int) -> str:
        """What the reader gets for a dropped line: an empty line that opens or closes a
        quoted field as the dropped one did (an odd number of quotes), so the lines after
        it are read as they would have been."""
        self.oversized[self.line_number] = head
        return '"\n' if quotes % 2 else "\n"

    def __next__(self) -> str:
        line = self.handle.readline(self.limit + 2)
        if not line:
            raise StopIteration
        self.line_number += 1
        ended = line.endswith(("\n", "\r"))
        if not ended and len(line) == self.limit + 2:
            head, piece, quotes = line, line, line.count('"')
            while piece and not piece.endswith(("\n", "\r")):
                piece = self.handle.readline(_SKIP_CHUNK)
                quotes += piece.count('"')
            return self._skipped(head, quotes)
        if len(line.rstrip("\r\n")) > self.limit:
            return self._skipped(line, line.count('"'))
        if self._record_chars == 0:
            self._record_start = self.line_number
        self._record_chars += len(line.rstrip("\r\n"))
        if self._record_chars > self.limit:
            self._record_chars = 0
            raise _RecordTooLarge(self._record_start)
        return line


def _bounded_binary_lines(handle: Any, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without its end, over the limit) for each line of a binary
    file; of a line over `limit` bytes only the first `limit` + 2 bytes are kept, the rest
    is read in pieces and dropped."""
    line_number = 0
    while True:
        line = handle.readline(limit + 2)
        if not line:
            return
        line_number += 1
        if not line.endswith(b"\n") and len(line) == limit + 2:
            piece = line
            while piece and not piece.endswith(b"\n"):
                piece = handle.readline(_SKIP_CHUNK)
            yield line_number, line, True
            continue
        content = line.rstrip(b"\r\n")
        yield line_number, content, len(content) > limit


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


def _csv_table(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    handle = open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")
    lines = _BoundedLines(handle, limits.max_row_bytes)
    reader = csv.reader(lines)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        handle.close()
        return Table([], iter(()))
    except csv.Error as exc:
        handle.close()
        raise PublishInputError(f"{path.name}: the header row cannot be read: {exc}") from exc
    except _RecordTooLarge:
        handle.close()
        raise PublishInputError(
            f"{path.name}: the header row is over the limit of {limits.max_row_bytes} bytes"
        ) from None
    if lines.oversized:
        handle.close()
        raise PublishInputError(
            f"{path.name}: the header row is over the limit of {limits.max_row_bytes} bytes"
        )
    lines.record_done()
    if any(_has_surrogates(name) for name in header):
        handle.close()
        raise PublishInputError(
            f"{path.name} is not UTF-8 text; save it as 'CSV UTF-8' and publish again"
        )

    def rows() -> Iterator[SourceRow]:
        with handle:
            while True:
                first = lines.line_number + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except _RecordTooLarge as exc:
                    yield SourceRow(
                        exc.line_number,
                        {},
                        b"",
                        _too_large(exc.line_number, limits.max_row_bytes, "row starting"),
                    )
                    continue
                except csv.Error as exc:
                    yield SourceRow(
                        reader.line_num,
                        {},
                        b"",
                        _problem("row_unreadable", f"The row cannot be read as CSV ({exc})."),
                    )
                    continue
                finally:
                    lines.record_done()
                skipped = [n for n in range(first, lines.line_number + 1) if n in lines.oversized]
                if skipped:
                    head = lines.oversized[skipped[0]]
                    for n in skipped:
                        del lines.oversized[n]
                    yield SourceRow(
                        skipped[0],
                        {},
                        head.encode("utf-8", errors="surrogateescape"),
                        _too_large(skipped[0], limits.max_row_bytes),
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


def read_csv_rows(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[SourceRow]:
    """Rows of a CSV file with their line numbers and original text."""
    return _csv_table(path, limits).rows


def _jsonl_table(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Table:
    limit = limits.max_row_bytes

    def rows() -> Iterator[SourceRow]:
        with open(path, "rb") as handle:
            for line_number, line, oversized in _bounded_binary_lines(handle, limit):
                if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if oversized:
                    yield SourceRow(line_number, {}, line, _too_large(line_number, limit))
                elif line.strip():
                    yield _jsonl_row(line_number, line)

    return Table(None, rows())


def _jsonl_row(line_number: int, original: bytes) -> SourceRow:
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


def check_xlsx_archive(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse a workbook whose members would inflate past the limits, before any of it is
    inflated: the sizes come from the zip's central directory, and Python's zipfile never
    inflates a member past the size declared there, so they bound what parsing can use."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PublishInputError(f"{path.name} is not a readable .xlsx workbook: {exc}") from exc
    inflated = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members)
    if inflated > limits.xlsx_max_inflated_bytes:
        raise PublishInputError(
            f"{path.name} would inflate to {inflated} bytes, over the limit of "
            f"{limits.xlsx_max_inflated_bytes} bytes (ACCORD_XLSX_MAX_INFLATED_BYTES); "
            "split the workbook or save it as CSV"
        )
    ratio = inflated / max(compressed, 1)
    if ratio > limits.xlsx_max_ratio:
        raise PublishInputError(
            f"{path.name} would inflate {ratio:.0f} times its compressed size, over the "
            f"limit of {limits.xlsx_max_ratio:g}:1 (ACCORD_XLSX_MAX_RATIO); a workbook "
            "that compresses so well is refused unread"
        )


def _xlsx_table(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Table:
    from openpyxl import load_workbook

    check_xlsx_archive(path, limits)
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


def open_table(path: Path, fmt: str, limits: ReadLimits = DEFAULT_LIMITS) -> Table:
    """Open a partner's file in the given format (see `format_of`)."""
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")
    if fmt == "csv":
        return _csv_table(path, limits)
    if fmt == "jsonl":
        return _jsonl_table(path, limits)
    if fmt == "xlsx":
        return _xlsx_table(path, limits)
    raise PublishInputError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def _count_lines(path: Path) -> int:
    """The lines of a file, counted in fixed-size pieces (no line is read whole)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while piece := handle.read(_SKIP_CHUNK):
            lines += piece.count(b"\n")
            last = piece[-1:]
    return lines + (last != b"\n")


def count_rows(path: Path, fmt: str, limits: ReadLimits = DEFAULT_LIMITS) -> int | None:
    """A quick upper bound on the data rows, for the progress bar; None if unknown (or the
    file is one the readers will refuse)."""
    try:
        if fmt in ("csv", "jsonl"):
            lines = _count_lines(path)
            return max(0, lines - 1) if fmt == "csv" else lines
        if fmt == "xlsx":
            from openpyxl import load_workbook

            check_xlsx_archive(path, limits)
            workbook = load_workbook(open(path, "rb"), read_only=True)
            try:
                return max(0, (workbook.worksheets[0].max_row or 1) - 1)
            finally:
                workbook.close()
    except (
        OSError,
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        InvalidFileException,
        PublishInputError,
    ):
        return None
    return None
