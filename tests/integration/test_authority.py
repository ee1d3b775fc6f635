"""Authority, who may assert what: the attacks of issue 11 replayed on the real stack.

Each partner writes Avro straight to its own topic, signed in as itself (a partner's
own system may skip the gateway and the CLI), and one real `accord worker` decides them
against the stack's OPA, which serves the authority rules beside the agreements:

- a charity's OPT_IN a minute after NHS Lothian's OPT_OUT, with no CHI (it would have
  matched probabilistically), and a council's OPT_IN after it: the case stays closed and
  withheld; NHS Lothian's own later OPT_IN re-opens it;
- another council's DECLINED outcome naming the City of Edinburgh's request: to that
  council's rejects, Edinburgh's case stays open and shared;
- a charity's shielding-list row for a listed person: to the charity's rejects, the
  board's record as shared is unchanged;
- after them good records are still decided and shared: a new person on the board's
  list, and the food network's outcome for an Edinburgh request it was referred.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from accord.core.kafka import acknowledged_producer, connection, ensure_topics
from accord.core.pseudonym import person_key
from accord.core.topics import CONSENT_CHANGE, SHIELDING_LIST, SUPPORT_OUTCOME, Topics
from accord.stack import processes
from accord.synthetic.records import START, consent_change, lothian_people, shielding_entry
from accord.synthetic.records import support_outcome as outcome_for
from accord.synthetic.records import support_request as request_for

from .conftest import decoded, wait_for

pytestmark = pytest.mark.integration
LOTHIAN = "nhs-lothian"
EDINBURGH = "city-of-edinburgh"
FIFE = "fife"
CHARITY = "community-food-network"
RECORDS = {
    SHIELDING_LIST: "ShieldingListEntry",
    CONSENT_CHANGE: "ConsentChange",
    SUPPORT_OUTCOME: "SupportOutcome",
    "support-request": "SupportRequest",
}


def send_as(settings, serde, org: str, dataset: str, events: list[dict]) -> None:
    """As `org`'s own system would: signed in as itself, straight to its own topic."""
    topic = Topics(settings).partner(org, dataset)
    ensure_topics(settings, {topic: None}, settings.partner_topic_partitions)
    producer = acknowledged_producer(connection(settings, org))
    try:
        for event in events:
            value = serde.encode(Topics.subject(topic), RECORDS[dataset], event)
            producer.send(topic, key=event["event_id"].encode(), value=value).get(timeout=30)
    finally:
        producer.close()


def edinburgh_list(settings, serde) -> dict[str, dict]:
    view: dict[str, dict] = {}
    for key, case in decoded(settings, serde, Topics(settings).share(EDINBURGH)):
        if case is None:
            view.pop(key.decode(), None)
        else:
            view[key.decode()] = case
    return view


def wait_list(settings, serde, predicate, timeout_s: float = 60.0) -> dict[str, dict]:
    """Edinburgh's list once `predicate` holds for it."""
    deadline = time.monotonic() + timeout_s
    while not predicate(view := edinburgh_list(settings, serde)):
        assert time.monotonic() < deadline, f"Edinburgh's list not as expected: {len(view)} cases"
        time.sleep(1.0)
    return view


def test_partners_without_authority_change_no_case_and_good_records_still_flow(
    settings, serde, worker
):
    topics = Topics(settings)
    edinburgh = [row for row in lothian_people(16) if row["council_area"] == "City of Edinburgh"]
    opted, requester, listed, newcomer = edinburgh[:4]
    key = {
        name: person_key(settings.require_pseudonym_key(), row["chi_number"])
        for name, row in (
            ("opted", opted),
            ("requester", requester),
            ("listed", listed),
            ("newcomer", newcomer),
        )
    }
    send_as(
        settings,
        serde,
        LOTHIAN,
        SHIELDING_LIST,
        [shielding_entry(r) for r in (opted, requester, listed)],
    )
    send_as(
        settings,
        serde,
        EDINBURGH,
        "support-request",
        [request_for(requester, "EDI-1", at=START + timedelta(days=1), org=EDINBURGH)],
    )
    worker()
    before = wait_list(
        settings,
        serde,
        lambda v: (
            {key["opted"], key["listed"], key["requester"]} <= set(v)
            and "FOOD" in v[key["requester"]]["needs"]
        ),
        timeout_s=120,
    )

    # The attacks, each from a partner writing only to its own topic.
    opt_out_at = START + timedelta(days=5)
    send_as(
        settings,
        serde,
        LOTHIAN,
        CONSENT_CHANGE,
        [consent_change(opted, LOTHIAN, "OPT_OUT", at=opt_out_at)],
    )
    charity_opt_in = consent_change(
        opted, CHARITY, "OPT_IN", at=opt_out_at + timedelta(minutes=1), with_chi=False
    )
    send_as(settings, serde, CHARITY, CONSENT_CHANGE, [charity_opt_in])
    council_opt_in = consent_change(
        opted, EDINBURGH, "OPT_IN", at=opt_out_at + timedelta(minutes=2)
    )
    send_as(settings, serde, EDINBURGH, CONSENT_CHANGE, [council_opt_in])
    declined = outcome_for(
        FIFE, "EDI-1", at=START + timedelta(days=3), outcome="DECLINED", request_org=EDINBURGH
    )
    send_as(settings, serde, FIFE, SUPPORT_OUTCOME, [declined])
    forged = shielding_entry(
        listed, CHARITY, address_line1="1 Elsewhere Road", shielding_status="NOT_SHIELDING"
    )
    send_as(settings, serde, CHARITY, SHIELDING_LIST, [forged])

    charity_rejects = wait_for(
        settings, serde, topics.rejects(CHARITY), lambda r: len(r) >= 2, timeout_s=60
    )
    fife_rejects = wait_for(settings, serde, topics.rejects(FIFE), lambda r: len(r) >= 1)
    processes.wait_until_caught_up(settings)
    after = edinburgh_list(settings, serde)
    assert key["opted"] not in after  # withheld: the board's opt-out holds
    assert after[key["requester"]]["needs"] == before[key["requester"]]["needs"]
    assert after[key["requester"]]["latest_outcome"] is None  # the DECLINED never applied
    assert after[key["listed"]] == before[key["listed"]]  # the board's record, unchanged
    refused = {r["location"].split("/")[0]: r for _, r in charity_rejects + fife_rejects}
    expected = {
        topics.partner(CHARITY, CONSENT_CHANGE): ("not_a_publisher", "source_org"),
        topics.partner(CHARITY, SHIELDING_LIST): ("not_a_publisher", "source_org"),
        topics.partner(FIFE, SUPPORT_OUTCOME): ("not_request_owner", "request_org"),
    }
    assert {t: (r["reason_code"], r["field"]) for t, r in refused.items()} == expected
    assert len(charity_rejects) == 2 and len(fife_rejects) == 1
    assert (
        "fife may not report outcomes of city-of-edinburgh's requests"
        in (refused[topics.partner(FIFE, SUPPORT_OUTCOME)]["reason"])
    )
    for record in refused.values():  # no personal data in a reason
        for row in (opted, listed):
            for datum in (row["chi_number"], row["family_name"], row["postcode"]):
                assert datum not in record["reason"]
    # Nothing of the refused records reached a case or an audit record.
    refused_ids = {charity_opt_in["event_id"], declined["event_id"], forged["event_id"]}
    audit = [r for _, r in decoded(settings, serde, topics.audit) if r]
    assert not [r for r in audit if r["source_event_id"] in refused_ids]
    assert not [r for r in audit if r["source_org"] in (CHARITY, FIFE)]

    # Good records after the attacks: the board's own opt-in re-opens the case, a new
    # person is shared, and the food network's outcome for a referred request applies.
    send_as(
        settings,
        serde,
        LOTHIAN,
        CONSENT_CHANGE,
        [consent_change(opted, LOTHIAN, "OPT_IN", at=opt_out_at + timedelta(days=1))],
    )
    send_as(settings, serde, LOTHIAN, SHIELDING_LIST, [shielding_entry(newcomer)])
    send_as(
        settings,
        serde,
        CHARITY,
        SUPPORT_OUTCOME,
        [outcome_for(CHARITY, "EDI-1", at=START + timedelta(days=3), request_org=EDINBURGH)],
    )
    final = wait_list(
        settings,
        serde,
        lambda v: (
            {key["opted"], key["newcomer"]} <= set(v)
            and v.get(key["requester"], {}).get("latest_outcome") == "DELIVERED"
        ),
    )
    assert final[key["requester"]]["needs"] == ["MEDICINE"]  # FOOD met, the rest still open
    assert final[key["listed"]] == before[key["listed"]]
    assert len(decoded(settings, serde, topics.rejects(CHARITY))) == 2  # nothing more refused


def test_accord_publish_refuses_a_dataset_its_publisher_has_no_authority_for(settings, tmp_path):
    from accord.ingest.publish import publish_file
    from accord.ingest.readers import PublishInputError
    from accord.synthetic.people import write_csv

    path = tmp_path / "list.csv"
    write_csv(lothian_people(2), path)
    with pytest.raises(PublishInputError) as refused:
        publish_file(settings, CHARITY, SHIELDING_LIST, path)
    assert str(refused.value) == (
        "community-food-network has no authority to publish shielding-list: the authority "
        "rules (policies/authority/authority.yaml) and the agreements do not name it as a "
        "publisher of that dataset. It may publish: support-outcome."
    )
    assert decoded(settings, None, Topics(settings).partner(CHARITY, SHIELDING_LIST)) == []
    assert publish_file(settings, LOTHIAN, SHIELDING_LIST, path).published == 2
