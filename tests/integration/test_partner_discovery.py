"""Nothing sits unread: partner topics created while a worker runs (real Kafka, OPA, worker).

A new partner is registered mid-run by an agreement added to a copy of policies/ that an
OPA of the test's own serves (--watch); its topic is then read and its records decided
within seconds. A topic of an organisation no agreement names (a mistyped id) is reported
and never read.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from accord.access import provision
from accord.core.kafka import group_lag, read_topic
from accord.core.topics import SHIELDING_LIST, SUPPORT_REQUEST, Topics
from accord.governance.opa import IsolatedOpa
from accord.ingest.publish import publish_file
from accord.synthetic.people import write_csv
from accord.synthetic.records import lothian_people, requests_for

from .conftest import decoded
from .workload import send_native

pytestmark = pytest.mark.integration
NEW_BOARD = "nhs-test-board"
MISTYPED = "nhs-lothain"
WITHIN_S = 30.0


@pytest.fixture
def policies_copy(stack, tmp_path):
    copy = tmp_path / "policies"
    shutil.copytree(stack.policies_dir, copy)
    return copy


@pytest.fixture
def settings(settings, policies_copy, tmp_path):
    with IsolatedOpa(settings, policies_copy, watch=True, log_file=tmp_path / "opa.log") as opa:
        yield settings.model_copy(update={"opa_url": opa.url})


def register_new_board(policies_dir) -> None:
    """An agreement like NHS Lothian's, with a new board as its provider."""
    text = (policies_dir / "agreements" / "DSA-010.yaml").read_text()
    text = text.replace("DSA-010", "DSA-T01").replace("[nhs-lothian]", f"[{NEW_BOARD}]")
    staged = policies_dir / "agreements" / "DSA-T01.tmp"
    staged.write_text(text)
    staged.replace(policies_dir / "agreements" / "DSA-T01.yaml")


def worker_events(log_path, event: str) -> list[dict]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            out.append(json.loads(line))
    return out


def test_a_new_partner_topic_is_read_within_seconds_and_an_unknown_one_is_reported(
    settings, serde, worker, policies_copy, tmp_path
):
    topics = Topics(settings)
    worker()
    log_path = tmp_path / "worker-0.log"
    deadline = time.monotonic() + 120
    while not worker_events(log_path, "partitions_assigned"):
        assert time.monotonic() < deadline, "the worker never joined"
        time.sleep(0.5)

    register_new_board(policies_copy)
    # The administrator gives the new board its principal, topics and ACLs.
    provision.apply(settings, also=[NEW_BOARD])
    rows = lothian_people(8)
    path = tmp_path / "new-board.csv"
    write_csv(rows, path)
    published = time.monotonic()
    report = publish_file(settings, NEW_BOARD, SHIELDING_LIST, path)
    assert report.published == len(rows)
    org, request = requests_for(lothian_people(2))[0]
    send_native(settings, serde, SUPPORT_REQUEST, "SupportRequest", [(MISTYPED, request)])
    new_topic = topics.partner(NEW_BOARD, SHIELDING_LIST)
    mistyped_topic = topics.partner(MISTYPED, SUPPORT_REQUEST)

    # The new board's records are decided: one audit record per case decided.
    decided: set[str] = set()
    while time.monotonic() - published < WITHIN_S:
        decided = {
            record["source_event_id"]
            for _, record in decoded(settings, serde, topics.audit)
            if record and record["source_org"] == NEW_BOARD
        }
        if len(decided) == len(rows):
            break
        time.sleep(1.0)
    took = time.monotonic() - published
    print(f"new partner topic: {len(decided)} of {len(rows)} records decided in {took:.1f}s")
    assert len(decided) == len(rows), f"only {len(decided)} of {len(rows)} decided in {took:.0f}s"
    assert group_lag(settings, settings.worker_group, [new_topic]) == 0
    assert any(
        new_topic in e["topics"] for e in worker_events(log_path, "partner_topics_subscribed")
    )

    # The mistyped organisation's topic is reported by name and never read.
    deadline = time.monotonic() + 20
    while not worker_events(log_path, "unknown_partner_topic"):
        assert time.monotonic() < deadline, "the unknown partner topic was not reported"
        time.sleep(0.5)
    warnings = worker_events(log_path, "unknown_partner_topic")
    assert [w["topic"] for w in warnings] == [mistyped_topic]
    assert warnings[0]["level"] == "warning"
    assert group_lag(settings, settings.worker_group, [mistyped_topic]) == 1
    audit = [r for _, r in decoded(settings, serde, topics.audit) if r]
    assert not [r for r in audit if r["source_org"] == MISTYPED]
    quarantined = list(read_topic(settings, topics.quarantine, idle_timeout_s=1))
    assert not [m for m in quarantined if MISTYPED.encode() in (m.value or b"")]
    # No request reached a case: the mistyped record matched no one's list.
    assert not any(
        request["request_id"].encode() in (m.value or b"")
        for m in read_topic(settings, topics.internal("person-events"))
    )
