"""Reading partners' files (CSV, JSON Lines, .xlsx), column mappings, and `accord publish
--dry-run` end to end without Kafka: the report, the exit codes, the bad-input cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from accord.cli import main
from accord.core.settings import Settings
from accord.ingest.mapping import ColumnMapping, fold, load_mapping
from accord.ingest.publish import PublishInputError, publish_file
from accord.ingest.readers import MAX_ROW_BYTES, format_of, open_table
from accord.ingest.validation import COLUMNS
from accord.synthetic.people import generate_shielding_list_with_labels, write_csv

REPO = Path(__file__).resolve().parents[2]
ROW = {
    "chi_number": "1403521239",
    "given_name": "Siobhán",
    "family_name": "Ó Briain",
    "date_of_birth": "1952-03-14",
    "address_line1": "Flat 3F2",
    "address_line2": "12 Marchmont Road",
    "town": "Edinburgh",
    "postcode": "EH9 1HB",
    "council_area": "City of Edinburgh",
    "health_board": "NHS Lothian",
    "clinical_risk_group": "SEVERE_RESPIRATORY",
    "shielding_status": "SHIELDING",
    "contact_phone": "07700 900456",
    "effective_date": "2020-06-01",
}


@pytest.fixture
def settings() -> Settings:
    """The repository's settings: its schemas and its partners/ mappings."""
    return Settings(home=REPO)


def dry(settings: Settings, path: Path, **kwargs):
    """`publish_file --dry-run`; by default as a board with no mapping file of its own."""
    return publish_file(
        settings,
        kwargs.pop("org", "nhs-borders"),
        kwargs.pop("dataset", "shielding-list"),
        path,
        dry_run=True,
        **kwargs,
    )


# --- formats ---


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("list.csv", None, "csv"),
        ("LIST.CSV", None, "csv"),
        ("list.txt", None, "csv"),
        ("list.jsonl", None, "jsonl"),
        ("list.ndjson", None, "jsonl"),
        ("list.xlsx", None, "xlsx"),
        ("list.dat", "csv", "csv"),
    ],
)
def test_format_of(name: str, explicit: str | None, expected: str) -> None:
    assert format_of(Path(name), explicit) == expected


@pytest.mark.parametrize(
    ("name", "explicit"), [("list.xls", None), ("list", None), ("a.csv", "pdf")]
)
def test_format_of_refuses(name: str, explicit: str | None) -> None:
    with pytest.raises(PublishInputError):
        format_of(Path(name), explicit)


# --- CSV ---


def test_csv_rows_keep_line_numbers_and_original_bytes(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(
        '\ufeffchi_number,family_name\n1403521239,Ó Briain\n\n"0101011237","Kerr, Ann"\n'.encode()
    )
    table = open_table(path, "csv")
    assert table.header == ["chi_number", "family_name"]
    rows = list(table.rows)
    assert [row.line_number for row in rows] == [2, 4]
    assert rows[0].values == {"chi_number": "1403521239", "family_name": "Ó Briain"}
    assert rows[1].original == b'0101011237,"Kerr, Ann"'


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"a,b\n1,2,3\n", "row_shape"),
        (b"a,b\n1\n", "row_shape"),
        # Mostly UTF-8 ("Ó") with bytes that are not: those rows only are rejected.
        (b"a,b\n\xff\xfe,2\n" + "Ó,1\n".encode(), "encoding"),
        (b"a,b\nx," + b"y" * (MAX_ROW_BYTES + 1) + b"\n", "row_too_large"),
    ],
)
def test_csv_structural_problems_are_per_row(tmp_path: Path, body: bytes, rule: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(body + b"5,6\n")  # the next good row still flows
    rows = list(open_table(path, "csv").rows)
    assert rows[0].problem is not None and rows[0].problem.rule == rule
    assert rows[-1].problem is None and rows[-1].values == {"a": "5", "b": "6"}


def test_csv_non_utf8_row_keeps_its_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("a,b\nÓ,1\n".encode() + "Siobh\u00e1n,2\n".encode("cp1252"))
    rows = list(open_table(path, "csv").rows)
    assert rows[1].problem.rule == "encoding"
    assert rows[1].original == "Siobh\u00e1n,2".encode("cp1252")


def test_a_windows_1252_file_is_detected_and_read_as_such(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("a,b\nSiobh\u00e1n,2\n".encode("cp1252"))
    table = open_table(path, "csv")
    [row] = list(table.rows)
    assert (table.encoding, table.encoding_detected) == ("windows-1252", True)
    assert row.problem is None and row.values == {"a": "Siobh\u00e1n", "b": "2"}
    assert row.original == "Siobh\u00e1n,2".encode("cp1252")
    forced = open_table(path, "csv", encoding="utf-8")  # --encoding wins
    assert next(forced.rows).problem.rule == "encoding"


def test_empty_and_header_only_files_have_no_rows(tmp_path: Path) -> None:
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_bytes(b"")
    header_only.write_bytes(b"chi_number,family_name\n")
    assert list(open_table(empty, "csv").rows) == []
    assert list(open_table(header_only, "csv").rows) == []


# --- JSON Lines ---


def test_jsonl_rows_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"chi_number": "1403521239"}\n'
        b"\n"
        b"{not json\n"
        b"[1, 2]\n"
        b'{"family_name": "\xff"}\n'
        b'{"chi_number": 101011237}\n'
    )
    rows = list(open_table(path, "jsonl").rows)
    assert [row.line_number for row in rows] == [1, 3, 4, 5, 6]
    assert rows[0].values == {"chi_number": "1403521239"}
    assert [row.problem.rule if row.problem else None for row in rows] == [
        None,
        "json_malformed",
        "json_not_object",
        "encoding",
        None,
    ]
    assert rows[1].original == b"{not json"


# --- Excel ---


def test_xlsx_rows_with_typed_cells(tmp_path: Path) -> None:
    from datetime import datetime

    path = tmp_path / "plain.xlsx"
    workbook = Workbook()
    workbook.active.append([])  # blank rows above the header are skipped
    workbook.active.append(["CHI No", "DOB", "Surname", None])
    workbook.active.append([1403521239, datetime(1952, 3, 14), "Ó Briain"])
    workbook.active.append([])
    workbook.active.append([101011237, "14/03/1952", "Kerr", "extra"])
    workbook.save(path)
    table = open_table(path, "xlsx")
    assert table.header == ["CHI No", "DOB", "Surname"]
    rows = list(table.rows)
    assert [row.line_number for row in rows] == [3, 5]
    assert rows[0].values == {"CHI No": 1403521239, "DOB": "1952-03-14", "Surname": "Ó Briain"}
    assert rows[1].problem.rule == "row_shape"
    assert json.loads(rows[0].original) == [1403521239, "1952-03-14", "Ó Briain"]


def test_a_broken_workbook_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PublishInputError, match="not a readable .xlsx"):
        open_table(path, "xlsx")


# --- column mappings ---


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("CHI No", "chi_no"),
        (" chi-no ", "chi_no"),
        ("Date of birth", "date_of_birth"),
        ("DOB", "dob"),
    ],
)
def test_fold(name: str, folded: str) -> None:
    assert fold(name) == folded


def test_mapping_renames_passes_known_names_and_ignores_the_rest() -> None:
    mapping = ColumnMapping(COLUMNS, {"chi_no": "chi_number", "surname": "family_name"})
    row, twice = mapping.apply(
        {"CHI No": "1", "SURNAME": "Kerr", "Date of Birth": "x", "Notes": "y", "GP": "z"}
    )
    assert twice is None
    assert row == {"chi_number": "1", "family_name": "Kerr", "date_of_birth": "x"}
    assert mapping.ignored == {"Notes", "GP"}


def test_mapping_refuses_two_columns_for_one_field() -> None:
    mapping = ColumnMapping(COLUMNS, {"chi_no": "chi_number"})
    with pytest.raises(PublishInputError, match="both give chi_number"):
        mapping.check_header(["CHI No", "chi_number"])
    assert mapping.apply({"CHI No": "1", "chi_number": "2"})[1] == "chi_number"


def test_the_shipped_partner_mappings_load() -> None:
    for path in sorted((REPO / "partners").glob("*.yaml")):
        text = path.read_text()
        for dataset in ("shielding-list", "support-request", "support-outcome"):
            if f"{dataset}:" in text:
                from accord.ingest.datasets import DATASETS

                mapping = load_mapping(path, dataset, DATASETS[dataset].fields)
                assert mapping.renames


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("datasets:\n  shielding-list:\n    columns:\n      CHI No: chi\n", "not a field"),
        ("datasets: [1, 2]\n", "must be a mapping"),
        ("- just a list\n", "expected a mapping"),
        ("datasets:\n  shielding-list:\n    columns: [a]\n", "must map names"),
        ("datasets: {\n", "not a readable YAML"),
    ],
)
def test_broken_mappings_are_usage_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "nhs-lothian.yaml"
    path.write_text(text)
    with pytest.raises(PublishInputError, match=match):
        load_mapping(path, "shielding-list", COLUMNS)


# --- publish_file --dry-run ---


def test_dry_run_reports_counts_reasons_examples_and_ignored_columns(
    settings: Settings, tmp_path: Path
) -> None:
    rows, labels = generate_shielding_list_with_labels(300, bad_rows=14)
    path = tmp_path / "list.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "GP practice"])
        writer.writeheader()
        writer.writerows([{**row, "GP practice": "Marchmont"} for row in rows])
    report = dry(settings, path)
    bad = sum(1 for label in labels if label)
    assert (report.published, report.quarantined) == (300 - bad, bad)
    assert sum(report.reasons.values()) == bad
    assert set(report.reasons) == {
        "chi_check_digit", "chi_dob_mismatch", "postcode_format", "required",
        "council_area_unknown", "dob_future", "enum",
    }  # fmt: skip
    first_bad_line = labels.index(next(label for label in labels if label)) + 2
    assert f"row {first_bad_line}" in report.examples.values()
    assert report.ignored_columns == ["GP practice"]
    assert report.dry_run


def test_dry_run_with_a_partner_mapping_reads_its_own_column_names(
    settings: Settings, tmp_path: Path
) -> None:
    renamed = {
        "chi_number": "CHI No", "given_name": "Forename", "family_name": "Surname",
        "date_of_birth": "DOB", "address_line1": "Address 1", "postcode": "Post Code",
        "council_area": "Council", "health_board": "Board", "clinical_risk_group": "Risk Group",
        "shielding_status": "Status", "effective_date": "Effective",
    }  # fmt: skip
    path = tmp_path / "lothian.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(renamed.values()) + ["Phone"])
        writer.writerow([ROW[field] for field in renamed] + [ROW["contact_phone"]])
    report = dry(settings, path, org="nhs-lothian")  # partners/nhs-lothian.yaml
    assert (report.published, report.quarantined, report.ignored_columns) == (1, 0, [])
    with pytest.raises(PublishInputError, match="no column for"):
        dry(settings, path)  # the same file from a board without that mapping


def test_dry_run_of_jsonl_and_xlsx_agrees_with_csv(settings: Settings, tmp_path: Path) -> None:
    rows, labels = generate_shielding_list_with_labels(120, bad_rows=7, seed=5)
    csv_path, jsonl_path, xlsx_path = (tmp_path / f"l.{ext}" for ext in ("csv", "jsonl", "xlsx"))
    write_csv(rows, csv_path)
    jsonl_path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row[column] for column in COLUMNS])
    workbook.save(xlsx_path)
    reports = [dry(settings, path) for path in (csv_path, jsonl_path, xlsx_path)]
    assert {(r.published, r.quarantined) for r in reports} == {(113, 7)}
    assert reports[0].reasons == reports[1].reasons == reports[2].reasons


def test_dry_run_quarantines_formula_cells_and_bad_bytes_and_carries_on(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    write_csv([ROW, dict(ROW, family_name='=HYPERLINK("http://x","click")'), ROW], path)
    with path.open("ab") as handle:
        handle.write(b"\xff\xfe" + b",x" * 13 + b"\n")
    report = dry(settings, path)
    assert (report.published, report.quarantined) == (2, 2)
    assert report.reasons == {"formula_like": 1, "encoding": 1}
    assert report.examples == {"formula_like": "row 3", "encoding": "row 5"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "weather"}, "unknown dataset"),
        ({"org": "NHS Lothian"}, "not an organisation id"),
        ({"mapping": Path("/nonexistent/mapping.yaml")}, "no such mapping file"),
    ],
)
def test_dry_run_usage_errors(settings: Settings, tmp_path: Path, kwargs: dict, match: str) -> None:
    path = tmp_path / "list.csv"
    write_csv([ROW], path)
    with pytest.raises(PublishInputError, match=match):
        dry(settings, path, **kwargs)


# --- the command ---


def run(args: list[str], env: dict[str, str] | None = None):
    from accord.core.settings import get_settings

    get_settings.cache_clear()
    return CliRunner().invoke(main, args, env=env or {})


def test_cli_dry_run_prints_a_report_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    write_csv([ROW, dict(ROW, postcode="EH9 1H")], path)
    result = run(["publish", "--as", "nhs-lothian", "-d", "shielding-list", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 rows read" in result.output and "dry run" in result.output
    assert "would be published         1" in result.output
    assert "postcode_format" in result.output and "row 3" in result.output
    assert "Postcode is not a valid UK postcode" in result.output  # the message, shown
    assert "1403521239" not in result.output and "Briain" not in result.output
    assert (tmp_path / "list.rejects.csv").is_file()  # beside the input, by default


def test_cli_exits_3_when_nothing_would_be_published(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    write_csv([dict(ROW, postcode="EH9 1H"), dict(ROW, chi_number="123")], path)
    rejects = tmp_path / "out" / "r.jsonl"
    rejects.parent.mkdir()
    args = ["publish", "--as", "nhs-lothian", "-d", "shielding-list", "--dry-run"]
    result = run([*args, "--rejects", str(rejects), str(path)])
    assert result.exit_code == 3, result.output
    assert "nothing would be published (exit code 3)" in result.output
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [e["row"] for e in entries] == ["row 2", "row 3"]
    assert oct(rejects.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "weather"], "unknown dataset"),
        (["-d", "shielding-list", "--format", "xlsx"], "not a readable .xlsx"),
        (["-d", "shielding-list", "MISSING"], "no such file"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "list.csv"
    write_csv([ROW], path)
    if "MISSING" in args:
        args = [a if a != "MISSING" else str(tmp_path / "missing.csv") for a in args]
    else:
        args = [*args, str(path)]
    result = run(["publish", "--as", "nhs-lothian", "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_row_that_cannot_be_encoded_is_rejected_without_quoting_it(
    settings: Settings, tmp_path: Path, monkeypatch
) -> None:
    """Should a validated event ever not fit its schema, the row goes to the rejects with
    the record type, field and error type, and nothing of its value."""
    from dataclasses import replace

    from accord.ingest import publish as publish_module

    process = publish_module.Pipeline.process

    def corrupt(self, values, location, original):
        outcome = process(self, values, location, original)
        return replace(outcome, event={**outcome.event, "given_name": 14035})

    monkeypatch.setattr(publish_module.Pipeline, "process", corrupt)
    path = tmp_path / "list.csv"
    write_csv([ROW], path)
    report = dry(settings, path)
    assert (report.published, report.quarantined) == (0, 1)
    assert report.reasons == {"encode_failed": 1}
