"""A partner sees every reject, on the real stack (Kafka, registry, OPA, the gateway).

A messy file published as NHS Lothian: every problem of every rejected row reaches
`rejects.nhs-lothian` (field, rule, message), the rejects file beside the input, and
`accord rejects` (signed in as NHS Lothian) reads them back, with --since. A file of
nothing but bad rows exits 3. The gateway's answer lists the same problems as the topic
holds. A dry run asks OPA which rows no active agreement would share.
"""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from click.testing import CliRunner

from accord.cli import main
from accord.core.settings import Settings, get_settings
from accord.core.topics import SHIELDING_LIST, Topics
from accord.ingest.publish import publish_file
from accord.ingest.validation import chi_mod11_check_digit
from accord.synthetic.people import write_csv
from accord.synthetic.records import lothian_people

from .conftest import decoded
from .test_gateway_http import gateway, https_post, issue  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration
LOTHIAN = "nhs-lothian"


def messy(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Two good rows (one with spreadsheet habits), two rows with several problems each."""
    good, habits, bad1, bad2 = (dict(row) for row in rows[:4])
    habits.update(address_line2="N/A", contact_phone="-", shielding_status="Yes")
    bad1.update(chi_number=bad1["chi_number"][:8], given_name="=cmd", postcode="EH9")
    bad2.update(date_of_birth="31/02/1950", shielding_status="perhaps")
    return [good, habits, bad1, bad2]


def run_cli(settings: Settings, args: list[str]):
    """`accord ...` as a partner runs it: this test's topics, the stack's credentials."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, args, env={"ACCORD_TOPIC_PREFIX": settings.topic_prefix})
    finally:
        get_settings.cache_clear()


def test_every_problem_reaches_the_rejects_topic_the_file_and_accord_rejects(
    settings, serde, tmp_path
):
    rows = messy(lothian_people(4))
    path = tmp_path / "list.csv"
    write_csv(rows, path)
    rejects_file = tmp_path / "list.rejects.csv"
    report = publish_file(settings, LOTHIAN, SHIELDING_LIST, path, rejects=rejects_file)
    assert (report.published, report.quarantined) == (2, 2)
    assert report.problem_count == 5  # 3 in the first bad row, 2 in the second

    topic = Topics(settings).rejects(LOTHIAN)
    records = sorted((record for _, record in decoded(settings, serde, topic)),
                     key=lambda r: r["line_number"])  # fmt: skip
    assert [r["line_number"] for r in records] == [4, 5]
    assert [[(p["field"], p["rule"]) for p in r["problems"]] for r in records] == [
        [("chi_number", "chi_length"), ("given_name", "formula_like"),
         ("postcode", "postcode_format")],
        [("date_of_birth", "date_format"), ("shielding_status", "enum")],
    ]  # fmt: skip
    assert all(p["message"] for r in records for p in r["problems"])
    with rejects_file.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [w["accord_rules"] for w in written] == [
        " | ".join(p["rule"] for p in r["problems"]) for r in records
    ]

    result = run_cli(settings, ["rejects", "--as", LOTHIAN, "--json"])
    assert result.exit_code == 0, result.output
    read = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(len(entry["problems"]) for entry in read) == [2, 3]
    assert rows[2]["chi_number"][:8] not in result.output  # never a value
    assert rows[3]["family_name"] not in result.output
    later = run_cli(settings, ["rejects", "--as", LOTHIAN, "--since", "2999-01-01"])
    assert later.exit_code == 0 and "0 rejects" in later.output
    recent = run_cli(settings, ["rejects", "--as", LOTHIAN, "--since", "1h"])
    assert "chi_length" in recent.output and "2 rejects" in recent.output
    mistyped = run_cli(settings, ["rejects", "--as", "nhs-lothain"])
    assert mistyped.exit_code == 2 and "did you mean nhs-lothian" in mistyped.output


def test_a_file_of_only_bad_rows_exits_3_and_its_rejects_are_on_the_topic(
    settings, serde, tmp_path
):
    rows = messy(lothian_people(4))[2:]
    path = tmp_path / "bad.csv"
    write_csv(rows, path)
    result = run_cli(settings, ["publish", "--as", LOTHIAN, "-d", SHIELDING_LIST, str(path)])
    assert result.exit_code == 3, result.output
    assert "nothing was published (exit code 3)" in result.output
    assert (tmp_path / "bad.rejects.csv").is_file()
    records = [r for _, r in decoded(settings, serde, Topics(settings).rejects(LOTHIAN))]
    assert len(records) == 2


def test_the_gateway_answer_lists_every_problem_the_topic_gets(
    settings,
    serde,
    gateway,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    url, tokens = gateway
    token = issue(settings, tokens, "city-of-edinburgh")
    good = {
        "request_id": "R-1",
        "occurred_at": "2026-11-01T10:00:00Z",
        "family_name": "Campbell",
        "date_of_birth": "1945-03-12",
        "council_area": "Edinburgh",  # a synonym
        "contact_phone": "N/A",  # a placeholder
        "needs": "Food parcel; MEDICINE",
        "urgency": "Routine",
        "channel": "Phone",
    }
    bad = dict(good, request_id="=1", urgency="whenever", channel="pigeon")
    response = https_post(
        f"{url}/v1/datasets/support-request/records",
        json=[good, bad],
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["rejects_topic"] == Topics(settings).rejects("city-of-edinburgh")
    errors = body["results"][1]["errors"]
    assert [(e["field"], e["rule"]) for e in errors] == [
        ("request_id", "formula_like"), ("urgency", "enum"), ("channel", "enum"),
    ]  # fmt: skip
    assert all(e["message"] == e["reason"] and e["message"] for e in errors)
    assert {(p["field"], p["rule"], p["count"]) for p in body["problems"]} == {
        ("request_id", "formula_like", 1), ("urgency", "enum", 1), ("channel", "enum", 1),
    }  # fmt: skip
    [(_, record)] = decoded(settings, serde, body["rejects_topic"])
    assert [(p["field"], p["rule"], p["message"]) for p in record["problems"]] == [
        (e["field"], e["rule"], e["message"]) for e in errors
    ]


def orkney_row() -> dict[str, str]:
    """A valid NHS Orkney row: its agreement (DSA-011) is a draft."""
    dob = date(1948, 7, 9)
    for serial in range(100, 999):
        nine = dob.strftime("%d%m%y") + str(serial)
        check = chi_mod11_check_digit(nine)
        if check is not None:
            break
    return {
        "chi_number": nine + str(check),
        "given_name": "Magnus",
        "family_name": "Rendall",
        "date_of_birth": dob.isoformat(),
        "address_line1": "4 Victoria Street",
        "postcode": "KW15 1DN",
        "council_area": "Orkney",  # a synonym of Orkney Islands
        "health_board": "NHS Orkney",
        "clinical_risk_group": "SEVERE_RESPIRATORY",
        "shielding_status": "SHIELDING",
        "effective_date": "2026-11-01",
    }


def test_a_dry_run_says_which_rows_no_active_agreement_would_share(settings, tmp_path):
    lothian = tmp_path / "lothian.csv"
    write_csv(lothian_people(3), lothian)
    shared = publish_file(settings, LOTHIAN, SHIELDING_LIST, lothian, dry_run=True).sharing
    assert shared is not None and shared.note is None
    assert (shared.shared, shared.not_shared) == (3, 0)

    orkney = tmp_path / "orkney.csv"
    with orkney.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(orkney_row()))
        writer.writeheader()
        writer.writerow(orkney_row())
    report = publish_file(settings, "nhs-orkney", SHIELDING_LIST, orkney, dry_run=True)
    assert report.published == 1 and report.sharing is not None
    assert (report.sharing.shared, report.sharing.not_shared) == (0, 1)
    [reason] = report.sharing.reasons
    assert "draft" in reason and "not active" in reason
    assert report.sharing.first_row[reason] == "row 2"
    result = run_cli(
        settings, ["publish", "--as", "nhs-orkney", "-d", SHIELDING_LIST, "--dry-run", str(orkney)]
    )
    assert result.exit_code == 0, result.output
    assert "1 no active agreement would share" in result.output and "draft" in result.output
