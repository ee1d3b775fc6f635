"""The first governed flow on the real Kafka, schema registry and OPA."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import fastavro
import pytest

from accord.core.auditrecords import recipient_decisions
from accord.core.credentials import WORKER
from accord.core.kafka import acknowledged_producer, connection, group_lag
from accord.core.pseudonym import person_key
from accord.core.serde import frame, unframe
from accord.core.topics import Topics
from accord.ingest.publish import publish_file
from accord.stack import local, processes
from accord.synthetic.people import chi_for, write_csv

from .conftest import admin_http, decoded, registry_session, wait_for

pytestmark = pytest.mark.integration
LOTHIAN = "nhs-lothian"
EDINBURGH = "city-of-edinburgh"
ALLOWED_FIELDS = {
    "given_name",
    "family_name",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "council_area",
    "contact_phone",
    "shielding_status",
}


def person(serial: int, council: str = "City of Edinburgh", **overrides: str) -> dict[str, str]:
    dob = date(1950, 1, 1 + serial % 28)
    chi = None
    while chi is None:
        chi = chi_for(dob, serial)
        serial += 1
    row = {
        "chi_number": chi,
        "given_name": "Ann",
        "family_name": f"Kerr{serial}",
        "date_of_birth": dob.isoformat(),
        "address_line1": f"{serial} High Street",
        "address_line2": "",
        "town": "Edinburgh",
        "postcode": "EH1 1AA",
        "council_area": council,
        "health_board": "NHS Lothian",
        "clinical_risk_group": "SPECIFIC_CANCERS",
        "shielding_status": "SHIELDING",
        "contact_phone": "07700 900123",
        "effective_date": "2020-06-01",
    }
    row.update(overrides)
    return row


def publish(settings, tmp_path: Path, rows: list[dict[str, str]], org: str = LOTHIAN):
    path = tmp_path / f"{org}-{uuid.uuid4().hex[:6]}.csv"
    write_csv(rows, path)
    return publish_file(settings, org, "shielding-list", path)


def key_of(settings, row) -> bytes:
    return person_key(settings.require_pseudonym_key(), row["chi_number"]).encode()


def test_stack_status_reports_every_component_running(stack):
    rows = local.status(stack)
    assert [(name, state) for name, state, _, _ in rows] == [
        ("kafka", "running"),
        ("opa", "running"),
        ("registry", "running"),
        ("console", "running"),
    ]


def test_a_resident_reaches_their_council_with_only_the_agreed_fields(
    settings, serde, worker, tmp_path
):
    row = person(1)
    report = publish(settings, tmp_path, [row])
    assert (report.published, report.quarantined) == (1, 0)
    worker()
    share = Topics(settings).share(EDINBURGH)
    records = wait_for(settings, serde, share, lambda r: len(r) >= 1)
    key, case = records[0]
    assert key == key_of(settings, row) and row["chi_number"].encode() not in key
    released = {name for name, value in case.items() if value is not None} & (
        ALLOWED_FIELDS | {"chi_number", "date_of_birth", "clinical_risk_group"}
    )
    assert released <= ALLOWED_FIELDS
    assert case["date_of_birth"] is None and "clinical_risk_group" not in case
    assert (case["given_name"], case["postcode"], case["contact_phone"]) == (
        "Ann",
        "EH1 1AA",
        "+447700900123",
    )
    assert case["agreement_id"] == "DSA-010" and case["is_shielding"] is True

    # A standard consumer decodes it with the schema the registry holds for its id.
    message = next(iter(decoded_raw(settings, share)))
    schema_id, body = unframe(message)
    schema = (
        registry_session(settings, WORKER)
        .get(f"{settings.schema_registry_url}/schemas/ids/{schema_id}", timeout=5)
        .json()["schema"]
    )
    plain = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(json.loads(schema)))
    assert plain["case_key"] == key.decode()


def decoded_raw(settings, topic):
    from accord.core.kafka import read_topic

    return [m.value for m in read_topic(settings, topic, idle_timeout_s=1.0)]


def test_a_resident_of_another_council_is_not_shared_and_the_deny_is_audited(
    settings, serde, worker, tmp_path
):
    here, elsewhere = (
        person(2),
        person(3, council="Midlothian", town="Dalkeith", postcode="EH22 1AA"),
    )
    publish(settings, tmp_path, [here, elsewhere])
    worker()
    audit = wait_for(
        settings,
        serde,
        Topics(settings).audit,
        lambda r: (
            {d["subject_key"] for _, d in r}
            >= {key_of(settings, here).decode(), key_of(settings, elsewhere).decode()}
        ),
    )
    # One audit record for the person's case, naming every recipient's outcome.
    (record,) = [r for _, r in audit if r["subject_key"] == key_of(settings, elsewhere).decode()]
    assert len(record["recipients"]) > 1
    denied = [d for d in recipient_decisions(record) if d["recipient"] == EDINBURGH]
    assert len(denied) == 1 and denied[0]["allow"] is False
    assert denied[0]["fields_released"] == [] and "clause 4.1" in " ".join(denied[0]["reasons"])
    assert denied[0]["agreement_id"] == "DSA-010" and denied[0]["policy_revision"]
    audit_text = repr(audit)
    assert elsewhere["chi_number"] not in audit_text and elsewhere["family_name"] not in audit_text

    shared = decoded(settings, serde, Topics(settings).share(EDINBURGH))
    assert [k for k, _ in shared] == [key_of(settings, here)]
    midlothian = decoded(settings, serde, Topics(settings).share("midlothian"))
    assert [k for k, _ in midlothian] == [key_of(settings, elsewhere)]


def test_an_invalid_chi_goes_to_quarantine_with_its_line_and_reason(settings, serde, tmp_path):
    good = person(4)
    bad = dict(
        person(5), chi_number=good["chi_number"][:9] + str((int(good["chi_number"][9]) + 1) % 10)
    )
    report = publish(settings, tmp_path, [good, bad])
    assert (report.published, report.quarantined) == (1, 1)
    [(key, entry)] = decoded(settings, serde, Topics(settings).rejects(LOTHIAN))
    assert entry["line_number"] == 3 and entry["origin"] == "FILE"
    assert entry["field"] == "chi_number" and entry["reason_code"] in {
        "chi_check_digit",
        "chi_dob_mismatch",
    }
    assert bad["family_name"].encode() in entry["original"]
    assert bad["chi_number"] not in entry["reason"]  # the reason never echoes the identifier
    assert bad["chi_number"].encode() not in key


def test_garbage_and_impersonation_on_a_partner_topic_are_quarantined_not_fatal(
    settings, serde, worker, tmp_path
):
    topics = Topics(settings)
    topic = topics.partner(LOTHIAN, "shielding-list")
    publish(settings, tmp_path, [person(6)])  # creates the topic and one good record
    # A record that claims to be NHS Fife's, sent to NHS Lothian's topic.
    fake = dict(
        event_id=str(uuid.uuid4()),
        occurred_at=datetime(2020, 6, 1, tzinfo=UTC),
        source_org="nhs-fife",
        schema_version=1,
        chi_number=person(7)["chi_number"],
        given_name="Eve",
        family_name="Fake",
        date_of_birth=date(1950, 1, 8),
        address_line1="1 Road",
        address_line2=None,
        town=None,
        postcode="KY1 1AA",
        council_area="Fife",
        health_board="NHS Fife",
        clinical_risk_group="UNKNOWN",
        shielding_status="SHIELDING",
        contact_phone=None,
        effective_date=date(2020, 6, 1),
    )
    good = serde.encode(Topics.subject(topic), "ShieldingListEntry", dict(fake, source_org=LOTHIAN))
    bad_inputs = [
        b"\x00garbage that is not avro",  # a header, then nonsense
        b"\x01" + good[1:],  # wrong magic byte
        frame(2**31 - 7, good[5:]),  # a schema id the registry never issued
        good[:20],  # truncated frame
        good[:5] + bytes(reversed(good[5:])),  # corrupted body
        b"",  # empty value
    ]
    producer = acknowledged_producer(connection(settings, LOTHIAN))  # the partner itself
    for n, value in enumerate(bad_inputs):
        producer.send(topic, key=f"bad-{n}".encode(), value=value).get(timeout=30)
    impersonation = serde.encode(Topics.subject(topic), "ShieldingListEntry", fake)
    producer.send(topic, key=b"y", value=impersonation).get(timeout=30)
    producer.close()
    worker()
    entries = wait_for(
        settings, serde, topics.rejects(LOTHIAN), lambda r: len(r) >= len(bad_inputs) + 1
    )
    codes = sorted(e["reason_code"] for _, e in entries)
    # A header whose schema id the registry never issued (the garbage's "garb" included).
    unknown = ["unknown_schema"] * 2
    assert codes == ["undecodable"] * (len(bad_inputs) - 2) + unknown + ["wrong_publisher"]
    assert {e["original"] for _, e in entries} >= set(bad_inputs)
    assert all(e["origin"] == "KAFKA" and e["location"].startswith(topic) for _, e in entries)
    # The worker carried on: the good record was shared.
    wait_for(settings, serde, topics.share(EDINBURGH), lambda r: len(r) == 1)


def test_with_opa_stopped_nothing_is_shared_and_after_restart_everything_is_shared_once(
    settings, serde, worker, tmp_path, stack
):
    rows = [person(10 + i) for i in range(20)]
    local.down(stack, lambda _: None, only=["opa"])
    try:
        publish(settings, tmp_path, rows)
        worker()
        topics = Topics(settings)
        # The intake asks OPA who may assert what before anything moves on, so with OPA
        # away the records wait on the partner topic: held, neither passed nor rejected.
        intake_input = [topics.partner(LOTHIAN, "shielding-list")]
        gate_input = [topics.internal("person-events")]  # cases are decided as they join
        time.sleep(12)  # time enough to have shared, had it been allowed to
        assert decoded(settings, serde, topics.share(EDINBURGH)) == []
        assert decoded(settings, serde, topics.audit) == []
        assert decoded(settings, serde, topics.rejects(LOTHIAN)) == []
        assert group_lag(settings, settings.worker_group, intake_input) == 20  # none acknowledged
    finally:
        local.up(stack, lambda _: None, only=["opa"])
    shared = wait_for(
        settings, serde, topics.share(EDINBURGH), lambda r: len({k for k, _ in r}) == 20
    )
    assert {k for k, _ in shared} == {key_of(settings, r) for r in rows}
    deadline = time.monotonic() + 30
    held = intake_input + gate_input
    while group_lag(settings, settings.worker_group, held) and time.monotonic() < deadline:
        time.sleep(1)
    assert group_lag(settings, settings.worker_group, held) == 0
    # Exactly once in the compacted view: one case per person.
    latest = {k: c for k, c in decoded(settings, serde, topics.share(EDINBURGH))}
    assert len(latest) == 20


def test_the_registry_keeps_schemas_across_a_restart(stack):
    subject = f"t{uuid.uuid4().hex[:8]}-value"
    schema = json.dumps(
        {
            "type": "record",
            "name": "Probe",
            "doc": "d",
            "fields": [{"name": "n", "type": "int", "doc": "d"}],
        }
    )
    url = stack.schema_registry_url
    created = admin_http().post(
        f"{url}/subjects/{subject}/versions", json={"schema": schema}, timeout=10
    )
    assert created.status_code == 200
    schema_id = created.json()["id"]
    local.down(stack, lambda _: None, only=["registry"])
    local.up(stack, lambda _: None, only=["registry"])
    assert admin_http().get(f"{url}/subjects/{subject}/versions", timeout=5).json() == [1]
    assert (
        json.loads(admin_http().get(f"{url}/schemas/ids/{schema_id}", timeout=5).json()["schema"])[
            "name"
        ]
        == "Probe"
    )
    missing = admin_http().get(f"{url}/subjects/nope-{subject}/versions", timeout=5)
    assert missing.status_code == 404 and missing.json()["error_code"] == 40401


def test_publish_cli_prints_a_summary_and_exits_zero_with_bad_rows(settings, tmp_path):
    path = tmp_path / "board.csv"
    write_csv([person(40), dict(person(41), postcode="NOT A CODE")], path)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "publish",
            "--as",
            LOTHIAN,
            "--dataset",
            "shielding-list",
            str(path),
        ],
        env=processes.worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "published         1" in result.stdout and "rejected          1" in result.stdout
    assert "postcode_format" in result.stdout
