"""An opt-out's withdrawals are audited under the agreement each recipient held the case
by, so they appear under that agreement (`accord audit agreement`) and in `who-received`."""

from __future__ import annotations

import asyncio

from accord.core.auditrecords import WITHDRAW
from accord.core.settings import Settings
from accord.pipeline.decision import Gate, agreement_held_under

from .test_gate_checks import AGREEMENTS, KEY, FakePolicy, FakeSerde

OPTED_OUT = {
    "case_key": KEY,
    "status": "CLOSED",
    "closed_reason": "opted out or withdrew consent",
    "source": {
        "org": "nhs-lothian",
        "dataset": "shielding-list",
        "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
        "fields": {},
    },
    "subject": {"opted_out": True},
    "as_of": "2026-11-30T10:00:00.000+00:00",
}


def test_the_agreement_held_under_names_provider_dataset_and_recipient():
    both = dict(
        AGREEMENTS, **{"DSA-020": dict(AGREEMENTS["DSA-010"], id="DSA-020", status="draft")}
    )
    assert agreement_held_under(both, "nhs-lothian", "shielding-list", "city-of-edinburgh") == {
        "agreement_id": "DSA-010",  # the active one before the draft
        "agreement_version": None,
    }
    assert (
        agreement_held_under(AGREEMENTS, "nhs-lothian", "shielding-list", "community-food-network")[
            "agreement_id"
        ]
        == "DSA-015"
    )
    assert (
        agreement_held_under(AGREEMENTS, "nhs-fife", "shielding-list", "city-of-edinburgh") is None
    )
    assert (
        agreement_held_under(AGREEMENTS, "nhs-lothian", "support-request", "city-of-edinburgh")
        is None
    )
    assert agreement_held_under({}, "nhs-lothian", "shielding-list", "fife") is None


def test_an_opt_out_is_audited_under_every_agreement_it_retracts():
    sent = []

    async def send(topic, key, value, headers):
        sent.append((topic, value, dict(headers)))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def set_released(key, holders):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    audits = []

    async def audit(records):
        audits.extend(record for _, record in records)

    gate = Gate(
        Settings(opa_retry_s=0.0),
        FakeSerde(),
        FakePolicy([[]]),
        send,
        released=lambda key: ["city-of-edinburgh", "community-food-network"],
        set_released=set_released,
        audit=audit,
    )
    counts = asyncio.run(gate.process([OPTED_OUT]))
    assert counts["withdrawn"] == 2
    [record] = audits
    items = {i["recipient"]: i for i in record["recipients"]}
    assert {r: (i["outcome"], i["agreement_id"]) for r, i in items.items()} == {
        "city-of-edinburgh": (WITHDRAW, "DSA-010"),
        "community-food-network": (WITHDRAW, "DSA-015"),
    }
    assert items["city-of-edinburgh"]["reasons"] == ["withdrawn: opted out or withdrew consent"]
    # each tombstone names the agreement too, and carries the decision id its audit item has
    tombstones = {topic: headers for topic, value, headers in sent if value is None}
    edinburgh = tombstones["share.city-of-edinburgh.support-list"]
    assert edinburgh["accord-agreement"] == b"DSA-010"
    assert edinburgh["accord-decision-id"].decode() == items["city-of-edinburgh"]["decision_id"]
