"""`accord publish` against the real Kafka and registry: CSV, JSON Lines and .xlsx with a
partner's column mapping, the other datasets, quarantine coordinates, exit codes."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook

from accord.core.kafka import read_topic
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.ingest.validation import COLUMNS
from accord.stack import processes
from accord.synthetic.people import generate_shielding_list_with_labels, write_csv

from .conftest import decoded

pytestmark = pytest.mark.integration

# partners/nhs-lothian.yaml maps these export names to the dataset's fields.
LOTHIAN_NAMES = {
    "chi_number": "CHI No", "given_name": "Forename", "family_name": "Surname",
    "date_of_birth": "DOB", "address_line1": "Address 1", "address_line2": "Address 2",
    "town": "Post Town", "postcode": "Post Code", "council_area": "Council",
    "health_board": "Board", "clinical_risk_group": "Risk Group", "shielding_status": "Status",
    "contact_phone": "Phone", "effective_date": "Effective",
}  # fmt: skip


# The City of Edinburgh's helpline export, in the names partners/city-of-edinburgh.yaml maps.
HELPLINE_EXPORT = [
    ["Case Ref", "Logged At", "CHI", "Last Name", "Post Code", "Tel", "Lives Alone?",
     "Support Needed", "Priority", "Source"],
    ["EDI-1", "01/04/2020 10:15", "1403521239", "Ó Briain", "eh9 1hb", "0131 496 0000", "Y",
     "food; medicine", "Immediate", "Helpline"],
    ["EDI-2", "2020-04-01T11:00:00Z", "", "Kerr", "EH1 1AA", "", "", "welfare check",
     "routine", "web form"],
    ["EDI-3", "2020-04-01T11:00:00Z", "", "", "", "", "", "food", "routine", "web form"],
]  # fmt: skip


def accord(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        env=processes.worker_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_csv_jsonl_and_xlsx_publish_the_same_events_once_each(
    settings: Settings, serde, tmp_path: Path
) -> None:
    rows, labels = generate_shielding_list_with_labels(60, bad_rows=7, seed=11)
    valid = [row for row, label in zip(rows, labels, strict=True) if label is None]
    bad_lines = sorted(index + 2 for index, label in enumerate(labels) if label)

    csv_path = tmp_path / "lothian.csv"
    write_csv(rows, csv_path)
    jsonl_path = tmp_path / "lothian.jsonl"
    jsonl_path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    xlsx_path = tmp_path / "lothian-export.xlsx"  # the board's own column names
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append([LOTHIAN_NAMES[column] for column in COLUMNS] + ["GP Practice"])
    for row in rows:
        sheet.append([row[column] for column in COLUMNS] + ["Marchmont"])
    workbook.save(xlsx_path)

    for path in (csv_path, jsonl_path, xlsx_path):
        result = accord(
            settings, "publish", "--as", "nhs-lothian", "-d", "shielding-list", str(path)
        )
        assert result.returncode == 0, result.stderr
        assert f"published   {len(valid):>7}" in result.stdout
        assert f"rejected    {len(rows) - len(valid):>7}" in result.stdout
        assert "chi_number" not in result.stdout or "row " in result.stdout
        for row in valid[:5]:
            assert row["chi_number"] not in result.stdout + result.stderr
    assert "columns ignored" in result.stdout and "GP Practice" in result.stdout

    topics = Topics(settings)
    published = decoded(settings, serde, topics.partner("nhs-lothian", "shielding-list"))
    assert len(published) == 3 * len(valid)  # three files, every valid row each time
    event_ids = {str(record["event_id"]) for _, record in published}
    assert len(event_ids) == len(valid)  # ... and the same event, whichever the format
    # Keyed by event id: a partner needs none of the hub's secrets to publish.
    assert {key for key, _ in published} == {event_id.encode() for event_id in event_ids}
    assert {record["source_org"] for _, record in published} == {"nhs-lothian"}

    quarantined = [record for _, record in decoded(settings, serde, topics.rejects("nhs-lothian"))]
    assert len(quarantined) == 3 * len(bad_lines)
    by_file: dict[str, list[int]] = {}
    for record in quarantined:
        assert record["origin"] == "FILE" and record["dataset"] == "shielding-list"
        assert record["reason"] and record["reason_code"] and record["original"]
        # "lothian.csv line 4"; a workbook's names its sheet: "x.xlsx sheet 'Sheet' row 4"
        name = record["location"].split(" line ")[0].split(" sheet ")[0]
        by_file.setdefault(name, []).append(record["line_number"])
        if name.endswith(".xlsx"):
            assert " sheet 'Sheet' row " in record["location"]
    assert sorted(by_file["lothian.csv"]) == bad_lines
    assert sorted(by_file["lothian.jsonl"]) == [line - 1 for line in bad_lines]
    assert sorted(by_file["lothian-export.xlsx"]) == bad_lines


def test_dry_run_sends_nothing(settings: Settings, tmp_path: Path) -> None:
    rows, _ = generate_shielding_list_with_labels(20, bad_rows=2, seed=3)
    path = tmp_path / "list.csv"
    write_csv(rows, path)
    result = accord(
        settings, "publish", "--as", "nhs-fife", "-d", "shielding-list", "--dry-run", str(path)
    )
    assert result.returncode == 0, result.stderr
    assert "would be published" in result.stdout
    topic = Topics(settings).partner("nhs-fife", "shielding-list")
    assert list(read_topic(settings, topic, idle_timeout_s=0.5)) == []


def test_requests_and_outcomes_from_a_council_export(
    settings: Settings, serde, tmp_path: Path
) -> None:
    requests = tmp_path / "helpline.csv"
    with requests.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(HELPLINE_EXPORT)
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text(
        json.dumps({"Case Ref": "EDI-2", "Completed At": "2020-04-02 09:00", "Result": "delivered"})
        + "\n"
        + json.dumps(
            {
                "Case Ref": "EDI-9",
                "Completed At": "2020-04-02 09:00",
                "Result": "lost",
                "source_org": "fife",
            }
        )  # fmt: skip
        + "\n",
        encoding="utf-8",
    )
    for dataset, path in (("support-request", requests), ("support-outcome", outcomes)):
        result = accord(settings, "publish", "--as", "city-of-edinburgh", "-d", dataset, str(path))
        assert result.returncode == 0, result.stderr

    topics = Topics(settings)
    published = decoded(settings, serde, topics.partner("city-of-edinburgh", "support-request"))
    by_id = {record["request_id"]: (key, record) for key, record in published}
    assert set(by_id) == {"EDI-1", "EDI-2"}
    key, first = by_id["EDI-1"]
    assert key == str(first["event_id"]).encode() and b"1403521239" not in key
    assert (first["postcode"], first["contact_phone"], first["lives_alone"]) == (
        "EH9 1HB",
        "+441314960000",
        True,
    )
    assert first["needs"] == ["FOOD", "MEDICINE"] and first["urgency"] == "IMMEDIATE"
    outcome_topic = topics.partner("city-of-edinburgh", "support-outcome")
    [(outcome_key, outcome)] = decoded(settings, serde, outcome_topic)
    assert outcome_key == str(outcome["event_id"]).encode()
    assert outcome["outcome"] == "DELIVERED"

    quarantined = {
        record["reason_code"]: record
        for _, record in decoded(settings, serde, topics.rejects("city-of-edinburgh"))
    }
    assert set(quarantined) == {"identity_missing", "source_org_mismatch"}
    assert quarantined["identity_missing"]["location"] == "helpline.csv line 4"
    assert quarantined["source_org_mismatch"]["line_number"] == 2


def test_usage_errors_exit_2_and_infrastructure_failure_exits_1(
    settings: Settings, tmp_path: Path
) -> None:
    rows, _ = generate_shielding_list_with_labels(3, bad_rows=0)
    path = tmp_path / "list.csv"
    write_csv(rows, path)
    unknown = accord(settings, "publish", "--as", "nhs-fife", "-d", "weather", str(path))
    assert unknown.returncode == 2 and "unknown dataset" in unknown.stderr
    missing = accord(settings, "publish", "--as", "nhs-fife", "-d", "shielding-list", "nope.csv")
    assert missing.returncode == 2 and "no such file" in missing.stderr

    no_registry = settings.model_copy(
        update={"schema_registry_url": f"http://127.0.0.1:{free_port()}"}
    )
    failed = accord(no_registry, "publish", "--as", "nhs-fife", "-d", "shielding-list", str(path))
    assert failed.returncode == 1
    assert "schema registry" in failed.stderr and "unreachable" in failed.stderr


def test_an_over_long_line_an_invisible_name_and_an_xlsx_bomb(
    settings: Settings, serde, tmp_path: Path
) -> None:
    """Bounded reads on the real stack: a 3 MiB line and a name with a bidi override reach
    the organisation's rejects with their line numbers and reasons (not the line whole), the
    good rows are published; a zip bomb is refused unread with exit 2."""
    import zipfile

    rows, labels = generate_shielding_list_with_labels(6, bad_rows=0, seed=5)
    path = tmp_path / "long.csv"
    write_csv(rows, path)
    lines = path.read_bytes().splitlines(keepends=True)
    hostile = dict(rows[1], family_name=rows[1]["family_name"] + "\u202e")
    with open(path, "wb") as handle:
        handle.write(lines[0] + lines[1])  # header, row on line 2
        handle.write(b"x," + b"y" * (3 * 1024 * 1024) + b"\n")  # line 3
        handle.write(",".join(hostile[column] for column in COLUMNS).encode() + b"\n")  # 4
        handle.writelines(lines[3:])  # lines 5.. : rows 2..5
    result = accord(settings, "publish", "--as", "nhs-lothian", "-d", "shielding-list", str(path))
    assert result.returncode == 0, result.stderr
    assert "published         5" in result.stdout and "rejected          2" in result.stdout

    topics = Topics(settings)
    rejected = {
        record["line_number"]: record
        for _, record in decoded(settings, serde, topics.rejects("nhs-lothian"))
    }
    assert sorted(rejected) == [3, 4]
    assert rejected[3]["reason_code"] == "row_too_large"
    assert "line 3" in rejected[3]["reason"] and len(rejected[3]["original"]) <= 256 * 1024
    assert rejected[4]["reason_code"] == "invisible_characters"
    assert rejected[4]["field"] == "family_name"
    assert hostile["family_name"] not in rejected[4]["reason"]
    assert len(decoded(settings, serde, topics.partner("nhs-lothian", "shielding-list"))) == 5

    bomb = tmp_path / "bomb.xlsx"
    workbook = Workbook()
    workbook.active.append(list(COLUMNS))
    workbook.save(bomb)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", b"\0" * (64 * 1024 * 1024))
    result = accord(settings, "publish", "--as", "nhs-lothian", "-d", "shielding-list", str(bomb))
    assert result.returncode == 2
    assert "bomb.xlsx would inflate" in result.stderr and "limit of 100:1" in result.stderr
    assert len(decoded(settings, serde, topics.partner("nhs-lothian", "shielding-list"))) == 5
