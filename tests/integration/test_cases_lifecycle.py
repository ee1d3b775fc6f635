"""Case lifecycle on the real stack: matching without CHI, review instead of merging,
opt-outs and suspended agreements tombstoning what was shared, provenance headers, and
the coordinator's view from the recipient topic."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest

from accord.core.kafka import read_topic
from accord.core.pseudonym import person_key
from accord.core.scotland import org_id
from accord.core.topics import CONSENT_CHANGE, SUPPORT_REQUEST, Topics
from accord.stack import processes
from accord.synthetic.records import START, consent_change, support_request

from .conftest import audit_decisions, decoded, wait_for
from .test_governance_suspension import policies_copy, suspend, watched_opa  # noqa: F401
from .workload import publish_workload, send_native

pytestmark = pytest.mark.integration
EDINBURGH = "City of Edinburgh"


def share_view(settings, serde, council=EDINBURGH) -> dict[str, dict]:
    view: dict[str, dict] = {}
    for key, case in decoded(settings, serde, Topics(settings).share(org_id(council))):
        if case is None:
            view.pop(key.decode(), None)
        else:
            view[key.decode()] = case
    return view


PERSONAL_FIELDS = (
    "chi_number",
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "postcode",
)


def latest_json(settings, topic: str, key: str) -> tuple[dict | None, str]:
    """The latest JSON record under `key` in one of the hub's own topics, and its text."""
    text = None
    for message in read_topic(settings, topic, idle_timeout_s=1.0):
        if message.key == key.encode():
            text = None if message.value is None else message.value.decode()
    return (None, "") if text is None else (json.loads(text), text)


def wait_latest(settings, topic: str, key: str, predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value, text = latest_json(settings, topic, key)
        if value is not None and predicate(value):
            return value, text
        assert time.monotonic() < deadline, f"{topic}: no matching record for the case"
        time.sleep(0.5)


def key_of(settings, row) -> str:
    return person_key(settings.require_pseudonym_key(), row["chi_number"])


def test_requests_without_chi_join_the_right_person_or_go_to_review(
    settings, serde, worker, tmp_path
):
    sent = publish_workload(settings, serde, tmp_path, 24)
    edinburgh = [row for row in sent["people"] if row["council_area"] == EDINBURGH]
    typo, twin = edinburgh[1], edinburgh[2]
    # Same person, mistyped surname and a short address form: a match.
    web_form = {"at": START + timedelta(days=2), "with_chi": False, "channel": "WEB_FORM"}
    matched = support_request(
        typo,
        "WEB-1",
        **web_form,
        needs=["FINANCIAL"],
        family_name=typo["family_name"].replace("Family", "Famly"),
        address_line1=typo["address_line1"].replace("Street", "St"),
    )
    # A different given name, same birthday and address: could be a twin, never merged.
    other = support_request(twin, "WEB-2", **web_form, needs=["FINANCIAL"], given_name="Morag")
    send_native(
        settings,
        serde,
        SUPPORT_REQUEST,
        "SupportRequest",
        [(request["source_org"], request) for request in (matched, other)],
    )
    worker()
    processes.wait_until_caught_up(settings)
    view = share_view(settings, serde)
    case = view[key_of(settings, typo)]
    assert "FINANCIAL" in case["needs"] and case["match_method"] == "probabilistic"
    twin_case = view[key_of(settings, twin)]
    assert "FINANCIAL" not in twin_case["needs"]  # not merged into the listed person
    # The requester gets its own request back as a separate (provisional) case.
    assert any(c["agreement_id"] == "own-data" and "FINANCIAL" in c["needs"] for c in view.values())


def test_an_opt_out_tombstones_what_was_shared_and_is_audited(settings, serde, worker, tmp_path):
    sent = publish_workload(settings, serde, tmp_path, 8)
    row = next(r for r in sent["people"] if r["council_area"] == EDINBURGH)
    worker()
    processes.wait_until_caught_up(settings)
    key = key_of(settings, row)
    assert key in share_view(settings, serde)
    personal = [row[name] for name in PERSONAL_FIELDS if row.get(name)]
    cases_topic = Topics(settings).internal("cases")
    state_topic = f"{settings.worker_group}-cases-changelog"
    _, open_text = latest_json(settings, cases_topic, key)
    assert personal and all(datum in open_text for datum in personal)  # held while open
    opt_out = consent_change(row, "nhs-lothian", "OPT_OUT", at=START + timedelta(days=5))
    send_native(settings, serde, CONSENT_CHANGE, "ConsentChange", [("nhs-lothian", opt_out)])
    wait_for(
        settings,
        serde,
        Topics(settings).share(org_id(EDINBURGH)),
        lambda records: key.encode() in [k for k, v in records if v is None],
    )
    assert key not in share_view(settings, serde)
    audit = [d for d in audit_decisions(settings, serde) if d["subject_key"] == key]
    withdrawals = [d for d in audit if "withdrawn: opted out" in " ".join(d["reasons"])]
    # each audited under the agreement its recipient held the case by (the council's
    # DSA-010; the food partner's DSA-015 when the person had a request), never none
    named = {(d["recipient"], d["agreement_id"], d["outcome"]) for d in withdrawals}
    assert (org_id(EDINBURGH), "DSA-010", "WITHDRAW") in named
    assert named <= {
        (org_id(EDINBURGH), "DSA-010", "WITHDRAW"),
        ("community-food-network", "DSA-015", "WITHDRAW"),
    }
    # Storage limitation: what hub.cases and the worker's state keep of the closed case
    # identifies and contacts no one.
    view, text = wait_latest(settings, cases_topic, key, lambda v: v["status"] == "CLOSED")
    assert view["subject"] == {"opted_out": True}
    assert [datum for datum in personal if datum in text] == []
    state, text = wait_latest(settings, state_topic, key, lambda v: bool(v.get("stripped")))
    assert state["consents"]["nhs-lothian"]["change"] == "OPT_OUT"
    assert [datum for datum in personal if datum in text] == []
    # ... and the matching block that knew them no longer holds who they are.
    identities = f"{settings.worker_group}-identities-changelog"
    deadline = time.monotonic() + 30
    while True:
        blocks: dict[bytes, list] = {}
        for message in read_topic(settings, identities, idle_timeout_s=1.0):
            blocks[message.key] = json.loads(message.value) if message.value else []
        held = [p for people in blocks.values() for p in people if p["person_key"] == key]
        if held and all(p.get("erased") for p in held) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert held and all(p.get("erased") for p in held)
    names = [row[name] for name in ("given_name", "family_name", "postcode") if row.get(name)]
    assert [datum for datum in names if datum in json.dumps(held)] == []


def test_shared_records_carry_their_decision_and_policy_revision_in_headers(
    settings, serde, worker, tmp_path
):
    publish_workload(settings, serde, tmp_path, 4)
    worker()
    processes.wait_until_caught_up(settings)
    messages = list(read_topic(settings, Topics(settings).share(org_id(EDINBURGH))))
    assert messages
    for message in messages:
        headers = dict(message.headers)
        case = serde.decode(message.value)[1]
        assert headers["accord-decision-id"].decode() == str(case["decision_id"])
        assert headers["accord-policy-revision"].decode() == case["policy_revision"]
        assert headers["accord-agreement"].decode() == case["agreement_id"]


@pytest.fixture
def watched_settings(settings, watched_opa):  # noqa: F811
    return settings.model_copy(update={"opa_url": watched_opa.url})


def test_suspending_an_agreement_tombstones_every_case_shared_under_it(
    watched_settings,
    serde,
    tmp_path,
    policies_copy,  # noqa: F811
):
    from .conftest import workers

    settings = watched_settings
    publish_workload(settings, serde, tmp_path, 24)
    with workers(settings, tmp_path) as start:
        start()
        processes.wait_until_caught_up(settings)
        assert len(share_view(settings, serde)) == 6
        changed_at = suspend(policies_copy, "DSA-010")
        deadline = time.monotonic() + 30
        while share_view(settings, serde) and time.monotonic() < deadline:
            time.sleep(0.5)
        emptied_after = time.time() - changed_at
    assert share_view(settings, serde) == {}, "cases shared under a suspended agreement remain"
    print(
        f"\nsuspension sweep: Edinburgh's list empty {emptied_after:.1f} s after the change",
        file=sys.stderr,
    )
    audit = audit_decisions(settings, serde)
    assert any(r.startswith("withdrawn:") for d in audit for r in d["reasons"])


def test_accord_cases_prints_and_exports_the_councils_list(settings, serde, worker, tmp_path):
    publish_workload(settings, serde, tmp_path, 16)
    worker()
    processes.wait_until_caught_up(settings)
    export = tmp_path / "edinburgh.csv"
    result = subprocess.run(
        [sys.executable, "-m", "accord", "cases", "--council", EDINBURGH, "--csv", str(export)],
        env=processes.worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "City of Edinburgh: 4 open cases" in result.stdout
    rows = list(csv.DictReader(export.open()))
    assert len(rows) == 4 and rows[0]["priority"] == "urgent"
    assert all(r["postcode"] == "EH1 1AA" for r in rows)
    assert str(uuid.UUID(int=0)) not in result.stdout
