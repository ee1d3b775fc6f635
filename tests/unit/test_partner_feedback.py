"""What a partner is told: every problem of every row (report, rejects file), spreadsheet
habits read as meant, encodings, delimiters, title rows and sheets, templates and field
rules, and unknown organisation ids refused with suggestions. No Kafka, no OPA."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from accord.cli import main
from accord.core.orgs import UnknownOrganisation, require_known, suggest, unknown_message
from accord.core.settings import Settings
from accord.ingest.datasets import DATASETS
from accord.ingest.fields import describe_fields, template_header
from accord.ingest.habits import Habits, load_habits, restore_chi_zero, restore_phone_zero
from accord.ingest.pipeline import Accepted, Location, Pipeline, Rejected
from accord.ingest.publish import PublishInputError, publish_file
from accord.ingest.readers import detect_encoding, sniff_delimiter
from accord.ingest.rejects import RejectsFile, cell_safe, parse_since, problems_of_record

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
RULES = DATASETS["shielding-list"].rules


@pytest.fixture
def settings() -> Settings:
    return Settings(home=REPO, opa_url="http://127.0.0.1:9")  # no OPA: advisory checks skip


def write(path: Path, rows: list[dict], *, delimiter: str = ",", encoding: str = "utf-8",
          title: str | None = None) -> Path:  # fmt: skip
    with path.open("w", newline="", encoding=encoding) as handle:
        if title:
            handle.write(title + "\r\n")
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def dry(settings: Settings, path: Path, **kwargs):
    return publish_file(settings, "nhs-lothian", "shielding-list", path, dry_run=True, **kwargs)


# --- every problem of every row ---


def test_every_problem_of_every_row_is_counted_with_its_own_field(settings, tmp_path):
    bad = dict(ROW, chi_number="123", given_name="=cmd", family_name="+x", postcode="EH9")
    other = dict(ROW, shielding_status="perhaps")
    path = write(tmp_path / "l.csv", [ROW, bad, other, bad, bad, bad, bad])
    report = dry(settings, path, rejects=tmp_path / "r.csv")
    assert (report.published, report.quarantined) == (1, 6)
    assert report.problem_count == 5 * 4 + 1  # all four problems of each bad row
    assert report.problems[("chi_number", "chi_length")] == 5
    assert report.problems[("given_name", "formula_like")] == 5
    assert report.problems[("family_name", "formula_like")] == 5
    assert report.problems[("shielding_status", "enum")] == 1
    assert report.first_row[("shielding_status", "enum")] == "row 4"  # its own row's field
    assert "Shielding status must be one of" in report.messages[("shielding_status", "enum")]


def test_the_rejects_file_has_every_problem_and_is_formula_safe_and_private(settings, tmp_path):
    bad = dict(ROW, given_name="=HYPERLINK(1)", postcode="EH9")
    path = write(tmp_path / "l.csv", [ROW, bad])
    rejects = tmp_path / "l.rejects.csv"
    report = dry(settings, path, rejects=rejects)
    assert report.rejects_file == rejects
    assert oct(rejects.stat().st_mode & 0o777) == "0o600"
    [entry] = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert entry["accord_row"] == "row 3" and entry["accord_problems"] == "2"
    assert entry["accord_fields"] == "given_name | postcode"
    assert entry["accord_rules"] == "formula_like | postcode_format"
    assert entry["given_name"] == "'=HYPERLINK(1)"  # shown as text by spreadsheets
    assert entry["chi_number"] == ROW["chi_number"]  # the row as sent, to fix and resend
    # Published again, the file's own columns are read and the accord_* ones ignored.
    again = dry(settings, rejects, rejects=tmp_path / "again.csv")
    assert set(again.ignored_columns) >= {"accord_row", "accord_rules", "accord_messages"}


def test_no_rejects_file_when_nothing_is_rejected(settings, tmp_path):
    path = write(tmp_path / "l.csv", [ROW])
    report = dry(settings, path, rejects=tmp_path / "r.csv")
    assert report.rejects_file is None and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("value", ["=1+1", "+44 7700", "-3", "@SUM", "\tx", "\rx"])
def test_cells_that_a_spreadsheet_would_run_are_text(value):
    assert cell_safe(value) == "'" + value
    assert cell_safe("Flat 3F2") == "Flat 3F2"


def test_a_jsonl_rejects_file_keeps_structural_problems_with_their_line(tmp_path):
    out = RejectsFile(tmp_path / "r.jsonl", ["a"])
    out.write("row 4", "x.csv line 4", [{"field": None, "rule": "row_shape", "message": "m"}],
              {}, b"1,2,3")  # fmt: skip
    out.close()
    [entry] = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert entry["problems"][0]["rule"] == "row_shape" and entry["original"] == "1,2,3"


def test_problems_of_an_older_rejects_record_come_from_its_reason():
    old = {"reason_code": "chi_check_digit", "field": "chi_number", "reason": "r"}
    assert problems_of_record(old) == [{"field": "chi_number", "rule": "chi_check_digit",
                                        "message": "r"}]  # fmt: skip
    new = {**old, "problems": [{"field": "a", "rule": "b", "message": "c"}] * 2}
    assert len(problems_of_record(new)) == 2


def test_since_reads_ages_and_times():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("3d", now) == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    assert parse_since("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(PublishInputError, match="--since"):
        parse_since("last tuesday", now)


def test_the_quarantine_record_carries_every_problem():
    pipeline = Pipeline("nhs-lothian", "shielding-list")
    outcome = pipeline.process(
        dict(ROW, chi_number="1", postcode="x"), Location("FILE", "f", "row 2"), b""
    )
    assert isinstance(outcome, Rejected)
    rules = [p["rule"] for p in outcome.quarantine["problems"]]
    assert rules == ["chi_length", "postcode_format"]
    assert all(
        "1" != p["message"] and "x" not in p["message"].split()
        for p in outcome.quarantine["problems"]
    )


# --- spreadsheets as they come ---


@pytest.mark.parametrize("placeholder", ["-", "N/A", "n/a", "none", "None", " - ", ""])
def test_placeholders_in_optional_fields_mean_empty(placeholder):
    pipeline = Pipeline("nhs-lothian", "shielding-list", habits=load_habits(REPO, RULES))
    row = dict(ROW, address_line2=placeholder, town=placeholder, contact_phone=placeholder)
    outcome = pipeline.process(row, Location("FILE", "f", "row 2"), b"")
    assert isinstance(outcome, Accepted), getattr(outcome, "errors", None)
    assert outcome.event["address_line2"] is None and outcome.event["contact_phone"] is None


def test_a_placeholder_in_a_required_field_is_still_missing():
    pipeline = Pipeline("nhs-lothian", "shielding-list", habits=load_habits(REPO, RULES))
    outcome = pipeline.process(dict(ROW, postcode="N/A"), Location("FILE", "f", "row 2"), b"")
    assert isinstance(outcome, Rejected) and outcome.errors[0].rule == "postcode_format"


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("council_area", "Edinburgh", "City of Edinburgh"),
        ("council_area", "edinburgh ", "City of Edinburgh"),
        ("shielding_status", "Yes", "SHIELDING"),
        ("shielding_status", "no", "NOT_SHIELDING"),
        ("health_board", "Lothian", "NHS Lothian"),
    ],
)
def test_synonyms_from_the_shared_table(field, given, expected):
    pipeline = Pipeline("nhs-lothian", "shielding-list", habits=load_habits(REPO, RULES))
    outcome = pipeline.process(dict(ROW, **{field: given}), Location("FILE", "f", "row 2"), b"")
    assert isinstance(outcome, Accepted), getattr(outcome, "errors", None)
    assert outcome.event[field] == expected
    assert [(t.field, t.what) for t in outcome.tidied] == [(field, "synonym")]


@pytest.mark.parametrize(
    ("council", "expected"),
    [
        ("Glasgow", "Glasgow City"),
        ("Western Isles", "Na h-Eileanan Siar"),
        ("Orkney", "Orkney Islands"),
    ],
)
def test_council_synonyms_named_by_the_issue(council, expected):
    habits = load_habits(REPO, RULES)
    tidied, _ = habits.tidy(RULES, {"council_area": council})
    assert tidied["council_area"] == expected


def test_a_partner_mapping_adds_its_own_synonyms_and_refuses_impossible_ones(settings, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "datasets:\n  shielding-list:\n    values:\n      shielding_status: {Active: SHIELDING}\n"
    )
    path = write(tmp_path / "l.csv", [dict(ROW, shielding_status="Active")])
    assert dry(settings, path, mapping=mapping).published == 1
    mapping.write_text(
        "datasets:\n  shielding-list:\n    values:\n      shielding_status: {Active: MAYBE}\n"
    )
    with pytest.raises(PublishInputError, match="does not accept"):
        dry(settings, path, mapping=mapping)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1314960002, "01314960002"), (7700900123, "07700900123"), ("7700 900123", "07700900123"),
     (7700900123.0, "07700900123"), ("12345", None), (0, None), ("07700900123", None)],
)  # fmt: skip
def test_a_phone_that_lost_its_leading_zero_is_restored(given, expected):
    assert restore_phone_zero(given) == expected


def test_a_chi_that_lost_its_leading_zero_is_restored_only_when_its_check_digit_passes():
    assert restore_chi_zero(int("0101601018")) == "0101601018"
    assert restore_chi_zero("101601019") is None  # the check digit fails: a slip, not a zero


def test_a_windows_1252_semicolon_file_with_a_title_row_is_read(settings, tmp_path):
    path = write(tmp_path / "excel.csv", [ROW, dict(ROW, chi_number="0101601018",
                 date_of_birth="01/01/1960")], delimiter=";", encoding="cp1252",
                 title="NHS Lothian; shielding list; exported 1 Nov")  # fmt: skip
    report = dry(settings, path)
    assert (report.published, report.quarantined) == (2, 0)
    assert report.read_as == "windows-1252 (detected), semicolon-delimited, header on line 2"


def test_tsv_and_header_row(settings, tmp_path):
    path = write(tmp_path / "l.tsv", [ROW], delimiter="\t", title="Title\tonly")
    assert dry(settings, path).published == 1
    assert dry(settings, path, header_row=2).published == 1
    with pytest.raises(PublishInputError, match="no column for"):
        dry(settings, path, header_row=1)


def test_no_header_found_says_where_it_looked_without_quoting_rows(settings, tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("1403521239,Siobhán\n")
    with pytest.raises(PublishInputError) as caught:
        dry(settings, path)
    assert "no row among the first 20 of l.csv" in str(caught.value)
    assert "Siobh" not in str(caught.value) and "1403521239" not in str(caught.value)


def test_detection_and_sniffing_units(tmp_path):
    (tmp_path / "a").write_bytes("é".encode())
    (tmp_path / "b").write_bytes("é".encode("cp1252"))
    (tmp_path / "c").write_bytes(b"\xef\xbb\xbfx")
    assert [detect_encoding(tmp_path / n) for n in "abc"] == ["utf-8", "windows-1252", "utf-8-sig"]
    assert sniff_delimiter("title\na;b;c\n1;2;3\n") == ";"
    assert sniff_delimiter("a\tb\n1\t2\n") == "\t"
    assert sniff_delimiter("a,b\n1,2\n") == ","


def test_the_sheet_with_the_list_is_found_and_named(settings, tmp_path):
    workbook = Workbook()
    notes = workbook.active
    notes.title = "Notes"
    notes.append(["Read me first"])
    data = workbook.create_sheet("List")
    data.append(["Shielding list, November"])
    data.append(list(ROW))
    data.append(
        [int(ROW["chi_number"]), *list(ROW.values())[1:-2], 7700900456, ROW["effective_date"]]
    )
    path = tmp_path / "l.xlsx"
    workbook.save(path)
    report = dry(settings, path)
    assert report.published == 1 and report.read_as == "sheet 'List' (of 2), header on row 2"
    assert report.tidied[("contact_phone", "leading_zero")] == 1
    with pytest.raises(PublishInputError, match=r"no sheet 'list'; did you mean 'List'"):
        dry(settings, path, sheet="list")
    with pytest.raises(PublishInputError, match=r"l.xlsx sheet 'Notes'"):
        dry(settings, path, sheet="Notes")


# --- template and fields ---


def test_template_and_fields_come_from_the_rules(tmp_path, monkeypatch):
    assert template_header("shielding-list")[0] == "chi_number"
    assert "occurred_at" not in template_header("shielding-list")  # derived for a list
    described = dict((name, (need, text)) for name, need, text in describe_fields(
        "shielding-list", Habits()))  # fmt: skip
    assert described["postcode"][0] == "required" and described["town"][0] == "optional"
    assert "SHIELDING" in described["shielding_status"][1]
    assert described["town"][1].endswith("blank or -, n/a, none mean empty")  # "-" shown
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["publish", "--template", "shielding-list"])
    assert result.exit_code == 0, result.output
    header = (tmp_path / "shielding-list.csv").read_text().splitlines()
    assert header == [",".join(template_header("shielding-list"))]
    again = CliRunner().invoke(main, ["publish", "--template", "shielding-list"])
    assert again.exit_code == 2  # never overwritten
    listed = CliRunner().invoke(main, ["publish", "--fields", "support-request"])
    assert listed.exit_code == 0 and "needs" in listed.output and "required" in listed.output


# --- unknown organisation ids ---


def test_unknown_organisations_are_refused_with_suggestions(settings):
    assert suggest("nhs-lothain", ["nhs-lothian", "nhs-fife"]) == ["nhs-lothian"]
    assert suggest("NHS Lothian", ["nhs-lothian"]) == ["nhs-lothian"]
    assert "did you mean nhs-lothian?" in unknown_message("nhs-lothain", ["nhs-lothian"])
    assert require_known(settings, "nhs-lothian") == "nhs-lothian"
    assert require_known(settings, "community-food-network") == "community-food-network"
    with pytest.raises(UnknownOrganisation) as caught:
        require_known(settings, "nhs-lothain")
    assert caught.value.suggestions[0] == "nhs-lothian"


def test_publish_and_gateway_token_refuse_an_unknown_organisation(settings, tmp_path):
    path = write(tmp_path / "l.csv", [ROW])
    with pytest.raises(PublishInputError, match="did you mean nhs-lothian"):
        publish_file(settings, "nhs-lothain", "shielding-list", path, dry_run=True)
    from accord.core.settings import get_settings

    get_settings.cache_clear()
    env = {"ACCORD_STATE_DIR": str(tmp_path / "state"), "ACCORD_OPA_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(main, ["gateway", "token", "--as", "nhs-lothain"], env=env)
    assert result.exit_code != 0 and "did you mean nhs-lothian" in result.output
    assert not (tmp_path / "state" / "gateway-tokens.json").exists()


def test_a_native_producers_record_reaches_its_rejects_with_every_problem():
    """A partner's own Kafka producer skips the CLI and the gateway: the worker's intake
    applies the same rules and its rejects record carries every problem, as theirs do."""
    from accord.core.serde import AvroSerde
    from accord.core.topics import Topics
    from accord.pipeline.intake import Incoming, Intake, quarantine_record
    from accord.pipeline.intake import Rejected as Refused

    class Registry:  # the registry's id bookkeeping only; the codec is real
        def __init__(self):
            self.texts, self.subjects = {}, {}

        def register(self, subject, text):
            schema_id = next((i for i, t in self.texts.items() if t == text), len(self.texts) + 1)
            self.texts[schema_id] = text
            self.subjects.setdefault(schema_id, set()).add(subject)
            return schema_id

        def schema_by_id(self, schema_id):
            return self.texts[schema_id]

        def subjects_of(self, schema_id):
            return self.subjects.get(schema_id, set())

    settings = Settings()
    topics = Topics(settings)
    serde = AvroSerde(Registry(), REPO / "schemas" / "avro")
    topic = topics.partner("nhs-lothian", "shielding-list")
    typed = Pipeline("nhs-lothian", "shielding-list").process(
        ROW, Location("FILE", "f", "row 2"), b""
    )
    assert isinstance(typed, Accepted)
    # Two problems the Avro types let through: a short CHI and a postcode of no shape.
    record = dict(typed.event, chi_number="1", postcode="x")
    value = serde.encode(Topics.subject(topic), "ShieldingListEntry", record)
    message = Incoming(topic, 0, 7, b"k", value)
    with pytest.raises(Refused) as refused:
        Intake(serde, topics, "s" * 64).check(message)
    problems = refused.value.problems
    assert [p["rule"] for p in problems] == ["chi_length", "postcode_format"]
    quarantined = quarantine_record(
        message, topics, refused.value.code, refused.value.reason, refused.value.field, problems
    )
    rejects = topics.rejects("nhs-lothian")
    encoded = serde.encode(Topics.subject(rejects), "QuarantinedRecord", quarantined)
    _, decoded = serde.decode_as(encoded, Topics.subject(rejects), "QuarantinedRecord")
    assert problems_of_record(decoded) == list(problems)
    assert "x" not in decoded["reason"].split() and "1" not in decoded["reason"].split()
