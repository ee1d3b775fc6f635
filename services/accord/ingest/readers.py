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

import codecs
import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator
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
    "detect_encoding",
    "format_of",
    "sniff_delimiter",
    "open_table",
    "check_xlsx_archive",
    "read_csv_rows",
]

FORMATS: Final = ("csv", "jsonl", "xlsx")
_EXTENSIONS: Final = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".tab": "csv",
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
            f"use .csv, .tsv, .jsonl or .xlsx, or --format"
        )
    return _EXTENSIONS[suffix]


# How many of a file's first rows may stand above its header (a title, a date, notes).
HEADER_SEARCH_ROWS: Final = 20
ENCODINGS: Final = ("utf-8", "utf-8-sig", "windows-1252", "utf-16")
DELIMITERS: Final = {",": "comma", ";": "semicolon", "\t": "tab"}
_SNIFF_CHARS: Final = 64 * 1024
_DETECT_CHUNK: Final = 1024 * 1024

HeaderScore = Callable[[list[Any]], int]


class Table:
    """An opened file: its header (None for JSON Lines, whose keys are per row), its rows,
    and how it was read: the encoding (and whether it was detected), the delimiter, the
    line or row of the header, and for a workbook the sheet and every sheet's name."""

    def __init__(
        self,
        header: list[str] | None,
        rows: Iterator[SourceRow],
        *,
        encoding: str | None = None,
        encoding_detected: bool = False,
        delimiter: str | None = None,
        header_line: int | None = None,
        header_score: int | None = None,
        sheet: str | None = None,
        sheets: tuple[str, ...] = (),
    ) -> None:
        self.header = header
        self.rows = rows
        self.encoding = encoding
        self.encoding_detected = encoding_detected
        self.delimiter = delimiter
        self.header_line = header_line
        self.header_score = header_score
        self.sheet = sheet
        self.sheets = sheets

    def where(self, name: str) -> str:
        """'list.xlsx sheet List' or 'list.csv': how errors name the file."""
        return f"{name} sheet {self.sheet!r}" if self.sheet is not None else name

    def describe(self) -> str:
        """How the file was read, in words: 'windows-1252 (detected), semicolon-delimited,
        header on line 2'."""
        parts = []
        if self.sheet is not None:
            others = len(self.sheets) - 1
            parts.append(f"sheet {self.sheet!r}" + (f" (of {len(self.sheets)})" if others else ""))
        if self.encoding is not None:
            parts.append(f"{self.encoding}" + (" (detected)" if self.encoding_detected else ""))
        if self.delimiter is not None:
            parts.append(f"{DELIMITERS.get(self.delimiter, repr(self.delimiter))}-delimited")
        if self.header_line is not None:
            unit = "row" if self.sheet is not None else "line"
            parts.append(f"header on {unit} {self.header_line}")
        return ", ".join(parts)


_UTF8_DECODER: Final = codecs.getincrementaldecoder("utf-8")


def detect_encoding(path: Path) -> str:
    """UTF-8, UTF-8 with a byte-order mark, UTF-16 (by its mark) or Windows-1252.

    A file that is valid UTF-8 throughout is UTF-8. One whose non-ASCII bytes are never
    UTF-8 is Windows-1252 (what Excel writes for "CSV (Comma delimited)"). One that holds
    both valid UTF-8 and bytes that are not is UTF-8 with some broken rows: reading it as
    Windows-1252 would garble every accented name in it, so those rows are rejected
    instead (`encoding`)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        handle.seek(0)
        decoder = _UTF8_DECODER(errors="surrogateescape")
        valid = invalid = False
        while piece := handle.read(_DETECT_CHUNK):
            text = decoder.decode(piece)
            if not text.isascii():
                bad = _SURROGATE.search(text) is not None
                invalid = invalid or bad
                valid = valid or any(ord(c) > 0x7F and not 0xDC80 <= ord(c) <= 0xDCFF for c in text)
            if valid and invalid:
                return "utf-8"
        text = decoder.decode(b"", final=True)
        invalid = invalid or _SURROGATE.search(text) is not None
    return "windows-1252" if invalid and not valid else "utf-8"


def sniff_delimiter(sample: str) -> str:
    """Comma, semicolon or tab: the one that splits the sample's lines most consistently
    into more than one field (title rows above the header do not decide); comma when
    none does."""
    lines = sample.splitlines()
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line of a sample may be cut short
    best, best_score = ",", (0, 0)
    for delimiter in (",", ";", "\t"):
        try:
            counts = [len(cells) for cells in csv.reader(lines, delimiter=delimiter) if cells]
        except csv.Error:
            continue
        if not counts:
            continue
        mode = max(set(counts), key=lambda n: (counts.count(n), n))
        score = (counts.count(mode), mode) if mode > 1 else (0, 0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _choose_header(
    candidates: list[tuple[int, list[Any]]], header_row: int | None, score: HeaderScore | None
) -> tuple[int, int | None]:
    """(index into candidates of the header, its score). Given `header_row` (a line or row
    number), that one; with a score, the first candidate naming most fields; else the
    first."""
    if header_row is not None:
        for index, (number, _) in enumerate(candidates):
            if number == header_row:
                return index, score(candidates[index][1]) if score else None
        raise PublishInputError(
            f"--header-row {header_row}: no such row among the first {HEADER_SEARCH_ROWS} "
            "non-empty rows"
        )
    if score is None or not candidates:
        return 0, None
    scores = [score(cells) for _, cells in candidates]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, scores[best]


def _csv_table(
    path: Path,
    limits: ReadLimits = DEFAULT_LIMITS,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    header_score: HeaderScore | None = None,
) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    detected = encoding is None
    if encoding is None:
        encoding = detect_encoding(path)
    elif encoding not in ENCODINGS:
        raise PublishInputError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    if delimiter is None:
        if path.suffix.lower() in (".tsv", ".tab"):
            delimiter = "\t"
        else:
            with open(path, newline="", encoding=encoding, errors="surrogateescape") as sample:
                delimiter = sniff_delimiter(sample.read(_SNIFF_CHARS))
    handle = open(path, newline="", encoding=encoding, errors="surrogateescape")
    lines = _BoundedLines(handle, limits.max_row_bytes)
    reader = csv.reader(lines, delimiter=delimiter)

    def records() -> Iterator[tuple[int, list[str] | None, SourceRow | None]]:
        """(line, cells, None) for each record, or (line, None, the problem)."""
        while True:
            first = lines.line_number + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except _RecordTooLarge as exc:
                problem = _too_large(exc.line_number, limits.max_row_bytes, "row starting")
                yield exc.line_number, None, SourceRow(exc.line_number, {}, b"", problem)
                continue
            except csv.Error as exc:
                problem = _problem("row_unreadable", f"The row cannot be read as CSV ({exc}).")
                yield reader.line_num, None, SourceRow(reader.line_num, {}, b"", problem)
                continue
            finally:
                lines.record_done()
            skipped = [n for n in range(first, lines.line_number + 1) if n in lines.oversized]
            if skipped:
                head = lines.oversized[skipped[0]]
                for n in skipped:
                    del lines.oversized[n]
                problem = _too_large(skipped[0], limits.max_row_bytes)
                original = head.encode(_WRITTEN_AS.get(encoding, encoding), "surrogateescape")
                yield skipped[0], None, SourceRow(skipped[0], {}, original, problem)
                continue
            if not any(cell.strip() for cell in cells):
                continue
            yield reader.line_num, cells, None

    stream = records()
    ahead: list[tuple[int, list[str] | None, SourceRow | None]] = []
    for item in stream:
        ahead.append(item)
        if sum(1 for _, cells, _ in ahead if cells is not None) >= HEADER_SEARCH_ROWS:
            break
        if header_score is None and header_row is None and item[1] is not None:
            break  # no search: the first record is the header
    candidates = [(number, cells) for number, cells, _ in ahead if cells is not None]
    if not candidates:
        handle.close()
        if any(problem is not None for _, _, problem in ahead):
            raise PublishInputError(
                f"{path.name}: the header row is over the limit of {limits.max_row_bytes} bytes"
                " or cannot be read"
            )
        return Table([], iter(()), encoding=encoding, encoding_detected=detected,
                     delimiter=delimiter)  # fmt: skip
    try:
        chosen, score = _choose_header(candidates, header_row, header_score)
    except PublishInputError:
        handle.close()
        raise
    header_line, header_cells = candidates[chosen]
    header = [name.strip() for name in header_cells]
    if any(_has_surrogates(name) for name in header):
        handle.close()
        raise PublishInputError(
            f"{path.name}: the header (line {header_line}) is not {encoding} text; give "
            f"--encoding ({', '.join(ENCODINGS)}), or save the file as 'CSV UTF-8'"
        )
    position = next(i for i, (n, c, _) in enumerate(ahead) if n == header_line and c is not None)
    above = [problem for _, _, problem in ahead[:position] if problem is not None]
    if above:
        handle.close()
        assert above[0].problem is not None
        if above[0].problem.rule == "row_too_large":
            raise PublishInputError(
                f"{path.name}: the header row is over the limit of {limits.max_row_bytes} bytes"
            )
        raise PublishInputError(
            f"{path.name}: line {above[0].line_number}, above the header, cannot be read: "
            f"{above[0].problem.message}"
        )
    rest = ahead[position + 1 :]

    def rows() -> Iterator[SourceRow]:
        with handle:
            for number, cells, problem in itertools.chain(rest, stream):
                if problem is not None:
                    yield problem
                elif cells is not None:
                    yield _csv_row(number, header, cells, encoding, delimiter)

    return Table(
        header,
        rows(),
        encoding=encoding,
        encoding_detected=detected,
        delimiter=delimiter,
        header_line=header_line,
        header_score=score,
    )


_SURROGATE: Final = re.compile("[\udc80-\udcff]")
# A row's original bytes, encoded again as the file held them (without a byte-order mark).
_WRITTEN_AS: Final = {"utf-8-sig": "utf-8", "utf-16": "utf-16-le"}


def _has_surrogates(text: str) -> bool:
    """Bytes that were not in the file's encoding, as surrogateescape leaves them."""
    return _SURROGATE.search(text) is not None


def _csv_row(
    line_number: int,
    header: list[str],
    cells: list[str],
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> SourceRow:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="", delimiter=delimiter).writerow(cells)
    try:
        original = buffer.getvalue().encode(_WRITTEN_AS.get(encoding, encoding), "surrogateescape")
    except UnicodeEncodeError:
        original = buffer.getvalue().encode("utf-8", errors="surrogateescape")
    problem = None
    if len(original) > MAX_ROW_BYTES:
        problem = _problem(
            "row_too_large", f"The row is {len(original)} bytes, over the limit of {MAX_ROW_BYTES}."
        )
    elif _has_surrogates("".join(cells)):
        problem = _problem(
            "encoding",
            f"The row holds bytes that are not {encoding} text; save the file as 'CSV UTF-8' "
            "(or give --encoding).",
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


def _xlsx_header(
    sheet: Any, header_row: int | None, score: HeaderScore | None
) -> tuple[int, list[str], int | None] | None:
    """(row number, header, score) among the sheet's first non-empty rows; None if the
    sheet has no non-empty row."""
    candidates: list[tuple[int, list[Any]]] = []
    for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
        if any(cell is not None and str(cell).strip() for cell in cells):
            candidates.append((number, list(cells)))
            if len(candidates) >= HEADER_SEARCH_ROWS or (score is None and header_row is None):
                break
    if not candidates:
        return None
    chosen, found = _choose_header(candidates, header_row, score)
    number, cells = candidates[chosen]
    header = ["" if cell is None else str(cell).strip() for cell in cells]
    while header and not header[-1]:
        header.pop()
    return number, header, found


def _xlsx_table(
    path: Path,
    limits: ReadLimits = DEFAULT_LIMITS,
    *,
    sheet_name: str | None = None,
    header_row: int | None = None,
    header_score: HeaderScore | None = None,
) -> Table:
    """A workbook's sheet: the one named, else the first whose header names the most
    fields (a notes or cover sheet in front is passed over), else the first."""
    from openpyxl import load_workbook

    check_xlsx_archive(path, limits)
    try:
        # A file handle, not the path: openpyxl judges paths by extension, and
        # `--format xlsx` may be given for a workbook saved under another name.
        workbook = load_workbook(open(path, "rb"), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, InvalidFileException) as exc:
        raise PublishInputError(f"{path.name} is not a readable .xlsx workbook: {exc}") from exc
    names = tuple(workbook.sheetnames)
    try:
        if sheet_name is not None:
            if sheet_name not in names:
                import difflib

                close = difflib.get_close_matches(sheet_name, names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PublishInputError(
                    f"{path.name} has no sheet {sheet_name!r}{hint} (sheets: {', '.join(names)})"
                )
            chosen = [sheet_name]
        else:
            chosen = list(names)
        best: tuple[str, int, list[str], int | None] | None = None
        for name in chosen:
            found = _xlsx_header(workbook[name], header_row, header_score)
            if found is None:
                continue
            if best is None or (found[2] or 0) > (best[3] or 0):
                best = (name, *found)
            if header_score is None:
                break
    except PublishInputError:
        workbook.close()
        raise
    if best is None:
        workbook.close()
        return Table([], iter(()), sheet=sheet_name or (names[0] if names else None), sheets=names)
    name, header_line, header, score = best
    sheet = workbook[name]

    def rows() -> Iterator[SourceRow]:
        try:
            numbered = enumerate(sheet.iter_rows(values_only=True), start=1)
            for line_number, cells in numbered:
                if line_number <= header_line:
                    continue
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

    return Table(
        header,
        rows(),
        header_line=header_line,
        header_score=score,
        sheet=name,
        sheets=names,
    )


def open_table(
    path: Path,
    fmt: str,
    limits: ReadLimits = DEFAULT_LIMITS,
    *,
    encoding: str | None = None,
    header_row: int | None = None,
    header_score: HeaderScore | None = None,
    sheet: str | None = None,
) -> Table:
    """Open a partner's file in the given format (see `format_of`).

    CSV: the encoding is `encoding` or detected (`detect_encoding`), the delimiter sniffed
    (comma, semicolon or tab; tab for .tsv). CSV and .xlsx: the header is row
    `header_row` (its line or row number), else with `header_score` the one of the first
    HEADER_SEARCH_ROWS non-empty rows whose cells name most fields, else the first.
    .xlsx: the sheet named `sheet`, else the one whose header scores best."""
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")
    if fmt == "csv":
        return _csv_table(
            path, limits, encoding=encoding, header_row=header_row, header_score=header_score
        )
    if fmt == "jsonl":
        return _jsonl_table(path, limits)
    if fmt == "xlsx":
        return _xlsx_table(
            path, limits, sheet_name=sheet, header_row=header_row, header_score=header_score
        )
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
