"""Nothing a partner's file says is trusted with memory: over-long CSV and JSON Lines lines
are rejected with their line numbers without being read whole, and an .xlsx whose members
would inflate too far, or by too much, is refused before it is parsed."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from accord.cli import main
from accord.ingest.publish import PublishInputError
from accord.ingest.readers import (
    MAX_ROW_BYTES,
    ReadLimits,
    check_xlsx_archive,
    count_rows,
    open_table,
)

SMALL = ReadLimits(max_row_bytes=100)


def rules(rows) -> list[tuple[int, str | None]]:
    return [(row.line_number, row.problem.rule if row.problem else None) for row in rows]


# --- CSV and JSON Lines: bounded line reads ---


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # LF, CRLF and CR-only line ends: the long line is line 3 in each, the rest flows.
        (b"a,b\n1,2\nx," + b"y" * 200 + b"\n3,4\n", [(2, None), (3, "row_too_large"), (4, None)]),
        (
            b"a,b\r\n1,2\r\nx," + b"y" * 200 + b"\r\n3,4\r\n",
            [(2, None), (3, "row_too_large"), (4, None)],
        ),
        (b"a,b\r1,2\rx," + b"y" * 200 + b"\r3,4\r", [(2, None), (3, "row_too_large"), (4, None)]),
        # Far over the limit (many skip pieces), and the last line without an end.
        (b"a,b\n1,2\n" + b"z" * 300_000, [(2, None), (3, "row_too_large")]),
        # Exactly at the limit is read; one byte more is not.
        (b"a,b\n" + b"q," + b"w" * 98 + b"\n", [(2, None)]),
        (b"a,b\n" + b"q," + b"w" * 99 + b"\n", [(2, "row_too_large")]),
        # A long line inside a quoted field: the whole record is refused, by that line.
        (b'a,b\n"x\n' + b"y" * 200 + b'",1\n3,4\n', [(3, "row_too_large"), (4, None)]),
        # A long line that opens a quoted field: the record it starts is refused with it.
        (b"a,b\n1," + b"y" * 200 + b'"z\nw",1\n3,4\n', [(2, "row_too_large"), (4, None)]),
        # A quote opened and never closed: the record is refused once it passes the limit.
        (
            b'a,b\n"x,1\n' + b"y,2\n" * 40 + b"",
            [(2, "row_too_large")],
        ),
    ],
)
def test_csv_line_over_the_limit_is_rejected_with_its_line_number(
    tmp_path: Path, body: bytes, expected: list
) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(body)
    rows = list(open_table(path, "csv", SMALL).rows)
    assert rules(rows)[: len(expected)] == expected
    for row in rows:
        if row.problem is not None:
            assert f"line {row.line_number}" in row.problem.message
            assert "100 bytes" in row.problem.message
            assert "y" * 20 not in row.problem.message  # the reason never quotes the line


def test_csv_header_over_the_limit_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"a," + b"b" * 200 + b"\n1,2\n")
    with pytest.raises(PublishInputError, match=r"header\.csv: the header row is over the limit"):
        open_table(path, "csv", SMALL)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"a": 1}\n{"a": "' + b"y" * 200 + b'"}\n{"a": 2}\n',
            [(1, None), (2, "row_too_large"), (3, None)],
        ),
        (
            b'{"a": 1}\r\n{"a": "' + b"y" * 300_000 + b'"}\r\n{"a": 2}\r\n',
            [(1, None), (2, "row_too_large"), (3, None)],
        ),
        (b'{"a": 1}\n' + b"z" * 500, [(1, None), (2, "row_too_large")]),
        (b'{"a": "' + b"w" * 91 + b'"}\n', [(1, None)]),  # 100 bytes exactly
        (b'{"a": "' + b"w" * 92 + b'"}\n', [(1, "row_too_large")]),
    ],
)
def test_jsonl_line_over_the_limit_is_rejected_with_its_line_number(
    tmp_path: Path, body: bytes, expected: list
) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(body)
    rows = list(open_table(path, "jsonl", SMALL).rows)
    assert rules(rows) == expected
    for row in rows:
        if row.problem is not None:
            assert f"line {row.line_number}" in row.problem.message
            assert len(row.original) <= 102  # what was kept of it, not the whole line


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_huge_line_is_never_held_whole(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"huge.{fmt}"
    huge = 40 * 1024 * 1024
    with open(path, "wb") as handle:
        handle.write(b"a,b\n1,2\n" if fmt == "csv" else b'{"a": 1}\n')
        for _ in range(huge // (1024 * 1024)):
            handle.write(b"x" * (1024 * 1024))
        handle.write(b"\n" + (b"3,4\n" if fmt == "csv" else b'{"a": 2}\n'))
    tracemalloc.start()
    try:
        rows = list(open_table(path, fmt).rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [row.problem.rule if row.problem else None for row in rows] == [
        None,
        "row_too_large",
        None,
    ]
    assert peak < 4 * MAX_ROW_BYTES + 8 * 1024 * 1024, peak  # far below the 40 MiB line
    assert count_rows(path, fmt) == 3  # counted in pieces too


# --- .xlsx: inflated size and ratio before parsing ---


def workbook(path: Path, rows: int = 20) -> Path:
    book = Workbook()
    book.active.append(["chi_number", "family_name"])
    for n in range(rows):
        book.active.append([f"14035212{n:02d}", f"Family {n}"])
    book.save(path)
    return path


def bomb(path: Path, inflated: int) -> Path:
    """A real workbook with one more member of zeros: tiny on disk, large inflated."""
    workbook(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", b"\0" * inflated)
    return path


@pytest.mark.parametrize(
    ("make", "limits", "message"),
    [
        (lambda p: bomb(p, 20 * 1024 * 1024), ReadLimits(), r"inflate \d+ times .* limit of 100:1"),
        (
            lambda p: workbook(p),
            ReadLimits(xlsx_max_inflated_bytes=2000),
            r"would inflate to \d+ bytes, over the limit of 2000 bytes",
        ),
        (lambda p: workbook(p), ReadLimits(xlsx_max_ratio=1.5), r"limit of 1.5:1"),
    ],
)
def test_xlsx_over_the_limits_is_refused_before_parsing(
    tmp_path: Path, make, limits: ReadLimits, message: str, monkeypatch
) -> None:
    path = make(tmp_path / "list.xlsx")
    import openpyxl

    def never(*args, **kwargs):
        raise AssertionError("the workbook was parsed")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    with pytest.raises(PublishInputError, match=message) as refused:
        open_table(path, "xlsx", limits)
    assert "list.xlsx" in str(refused.value)
    assert count_rows(path, "xlsx", limits) is None


@pytest.mark.parametrize("rows", [0, 20, 2000])
def test_ordinary_workbooks_pass_the_archive_check(tmp_path: Path, rows: int) -> None:
    path = workbook(tmp_path / "list.xlsx", rows)
    check_xlsx_archive(path)
    assert len(list(open_table(path, "xlsx").rows)) == rows


def test_publish_of_an_xlsx_bomb_exits_2_naming_the_file_and_the_limit(tmp_path: Path) -> None:
    from accord.core.settings import get_settings

    path = bomb(tmp_path / "bomb.xlsx", 30 * 1024 * 1024)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        main,
        ["publish", "--as", "nhs-lothian", "-d", "shielding-list", "--dry-run", str(path)],
        env={"ACCORD_XLSX_MAX_RATIO": "50"},
    )
    get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "bomb.xlsx would inflate" in result.output and "limit of 50:1" in result.output
