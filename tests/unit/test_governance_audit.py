"""The audit index's rows and queries, on an in-memory table (no Kafka)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accord.governance import audit_index
from accord.governance.commands import parse_since

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def decision(subject: str, recipient: str, allow: bool, minutes: int, **extra) -> dict:
    record = {
        "decision_id": str(uuid.uuid4()),
        "decided_at": T0 + timedelta(minutes=minutes),
        "source_org": "nhs-lothian",
        "dataset": "shielding-list",
        "recipient": recipient,
        "purpose": "shielding-support",
        "agreement_id": "DSA-010",
        "agreement_version": 2,
        "allow": allow,
        "fields_released": ["postcode", "given_name"] if allow else [],
        "obligations": ["pseudonymise:subject_key"] if allow else [],
        "reasons": ["shared"] if allow else ["denied: person lives elsewhere, clause 4.1"],
        "clauses": ["2.1"] if allow else ["4.1"],
        "principles": ["lawfulness"] if allow else ["data minimisation"],
        "policy_revision": "r1",
        "subject_key": subject,
    }
    record.update(extra)
    return record


@pytest.fixture
def db(tmp_path):
    connection = audit_index.connect(tmp_path / "audit.sqlite3")
    rows = [
        decision("alice", "city-of-edinburgh", True, 0),
        decision("alice", "city-of-edinburgh", True, 5),
        decision("alice", "west-lothian", False, 0),
        decision("bob", "west-lothian", True, 10, fields_released=["given_name"]),
        decision("bob", "city-of-edinburgh", False, 10),
        decision(
            "carol",
            "city-of-edinburgh",
            False,
            60 * 24 * 40,
            clauses=["2.1", "4.1"],
            principles=["purpose limitation", "data minimisation"],
        ),
    ]
    with connection:
        connection.executemany(audit_index.INSERT, [audit_index.row_of(r) for r in rows])
    yield connection
    connection.close()


def test_row_keeps_times_in_millis_and_lists_joined():
    record = decision("alice", "x", True, 0)
    row = audit_index.row_of(record)
    assert row[1] == int(T0.timestamp() * 1000)
    assert audit_index.split(row[9]) == ["given_name", "postcode"]
    assert audit_index.row_of({**record, "decided_at": 1234})[1] == 1234
    assert audit_index.split("") == []


def test_same_decision_id_is_stored_once(db):
    record = decision("dave", "x", True, 0)
    with db:
        db.executemany(audit_index.INSERT, [audit_index.row_of(record)] * 3)
    assert db.execute("SELECT COUNT(*) FROM decisions WHERE subject_key='dave'").fetchone() == (1,)


def test_who_received_groups_releases_and_counts_denials(db):
    receipts, denied = audit_index.who_received(db, "alice")
    assert len(receipts) == 1
    r = receipts[0]
    assert (r.recipient, r.agreement_id, r.agreement_version) == ("city-of-edinburgh", "DSA-010", 2)
    assert r.fields == ["given_name", "postcode"]
    assert (r.first_at, r.last_at, r.times) == (T0, T0 + timedelta(minutes=5), 2)
    assert denied == {"west-lothian": 1}
    assert audit_index.who_received(db, "nobody") == ([], {})


def test_agreement_report_counts_by_recipient_field_and_reason(db):
    report = audit_index.agreement_report(db, "DSA-010", T0)
    assert report.allowed == {"city-of-edinburgh": 2, "west-lothian": 1}
    assert report.denied == {"west-lothian": 1, "city-of-edinburgh": 2}
    assert report.fields[("city-of-edinburgh", "postcode")] == 2
    assert report.fields[("west-lothian", "given_name")] == 1
    assert ("west-lothian", "postcode") not in report.fields
    assert report.reasons == {"denied: person lives elsewhere, clause 4.1": 3}
    assert report.people == 2
    assert report.clauses == {"4.1": 3, "2.1": 1}
    assert report.principles == {"data minimisation": 3, "purpose limitation": 1}
    later = audit_index.agreement_report(db, "DSA-010", T0 + timedelta(days=1))
    assert later.denied == {"city-of-edinburgh": 1} and not later.allowed


def test_an_index_built_before_clauses_and_principles_gains_them(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE decisions (decision_id TEXT PRIMARY KEY, decided_at INTEGER NOT NULL, "
        "source_org TEXT, dataset TEXT, recipient TEXT, purpose TEXT, agreement_id TEXT, "
        "agreement_version INTEGER, allow INTEGER NOT NULL, fields_released TEXT NOT NULL, "
        "obligations TEXT NOT NULL, reasons TEXT NOT NULL, policy_revision TEXT, "
        "subject_key TEXT NOT NULL);"
        "INSERT INTO decisions VALUES ('d0', 0, 'o', 'd', 'r', 'p', 'DSA-010', 2, 0, '', '', "
        "'denied', 'r1', 'erin');"
    )
    old.commit()
    old.close()
    db = audit_index.connect(path)
    try:
        with db:  # an old record (no clauses) and a new one side by side
            db.execute(audit_index.INSERT, audit_index.row_of(decision("erin", "x", False, 1)))
        report = audit_index.agreement_report(db, "DSA-010", datetime(1970, 1, 1, tzinfo=UTC))
        assert report.denied == {"r": 1, "x": 1}
        assert report.clauses == {"4.1": 1}
    finally:
        db.close()


def test_plain_schema_drops_logical_types_only():
    schema = {
        "type": "record",
        "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    assert audit_index._plain(schema)["fields"][0]["type"] == {"type": "long"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T00:00:00Z", T0),
        ("2026-11-01", T0),
        ("2026-11-01T01:00:00+01:00", T0),
    ],
)
def test_parse_since_absolute(text, expected):
    assert parse_since(text) == expected


def test_parse_since_relative_and_bad():
    import click

    assert abs((datetime.now(UTC) - parse_since("24h")) - timedelta(hours=24)) < timedelta(
        seconds=5
    )
    assert parse_since(None) is None
    with pytest.raises(click.BadParameter):
        parse_since("last tuesday")


# --- who-received: the CHI never on the command line ---

VALID_CHI = "1403521239"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--chi", VALID_CHI], "", "--chi is not accepted"),
        (["--chi", "1234567890"], "", "--chi is not accepted"),
        ([], "1403521230\n", "not a valid CHI number: CHI number's check digit is wrong"),
        ([], "1234567890\n", "not a valid CHI number: The first six digits"),
        ([], "14035212\n", "not a valid CHI number: CHI number must have exactly 10 digits"),
        ([], "\n", "not a valid CHI number: CHI number is required"),
        ([], "", "not a valid CHI number: CHI number is required"),
        ([], "9" * 100 + "\n", "not a valid CHI number: over 64 characters"),
    ],
)
def test_who_received_refuses_without_echoing(args, stdin, message):
    from click.testing import CliRunner

    from accord.cli import main

    result = CliRunner().invoke(main, ["audit", "who-received", *args], input=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.output
    given = (args[1] if args else stdin).strip()
    if given:
        assert given not in result.output


def test_who_received_reads_stdin_when_not_a_terminal():
    import io

    from accord.governance.commands import read_chi

    stream = io.StringIO(f"{VALID_CHI}\nthe rest is not read\n")
    assert read_chi(stream, interactive=False) == f"{VALID_CHI}\n"
    long_line = io.StringIO("1" * 10_000)
    assert len(read_chi(long_line, interactive=False)) == 65  # bounded, not read whole


def test_who_received_prompts_with_hidden_input_on_a_terminal(monkeypatch):
    import io

    import click

    from accord.governance import commands

    asked = {}

    def prompt(text, **kwargs):
        asked.update(kwargs, text=text)
        return VALID_CHI

    monkeypatch.setattr(click, "prompt", prompt)
    assert commands.read_chi(io.StringIO("ignored"), interactive=True) == VALID_CHI
    assert asked["hide_input"] is True and asked["err"] is True


def test_who_received_names_the_agreement_or_says_own_data():
    from collections import Counter
    from datetime import UTC, datetime

    from accord.governance.audit_index import Receipt, receipt_lines

    at = datetime(2026, 12, 2, 7, 54, 33, tzinfo=UTC)
    lines = receipt_lines(
        "52a16d6daee694f7" * 4,
        [
            Receipt("city-of-edinburgh", "", None, ["needs"], at, at, 1),
            Receipt("city-of-edinburgh", "DSA-010", 2, ["needs"], at, at, 2),
        ],
        Counter(),
    )
    assert "city-of-edinburgh            own data  2026-12-02 07:54:33Z" in lines[1]
    assert "DSA-010 v2" in lines[2] and "vNone" not in "\n".join(lines)
