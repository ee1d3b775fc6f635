"""The review workflow without Kafka: decisions through the identity and join stages
(`pipeline.stages`), the distinct-pairs rule, and the review engine's pure parts
(`matching.review`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accord.core.topics import CASES, IDENTITY, MATCH_REVIEW, PERSON_EVENTS, REQUEST_EVENTS
from accord.matching import review as engine
from accord.pipeline import cases as case_rules
from accord.pipeline import identity, stages
from accord.pipeline.intake import Incoming

SECRET = "s"
LISTED = "c" * 64
ANN = {
    "given_name": "Margaret",
    "family_name": "MacLeod",
    "date_of_birth": "1950-03-14",
    "postcode": "EH1 1AA",
    "address_line1": "12 High Street",
}
RULES = case_rules.load_priority_rules()


def entry() -> dict:
    return {
        "kind": "entry",
        "dataset": "shielding-list",
        "event_id": "e-list",
        "occurred_at": "2020-06-01T00:00:00.000+00:00",
        "source_org": "nhs-lothian",
        "person_key": LISTED,
        "block_key": "B1",
        "request_key": None,
        "match_method": "chi",
        "data": {**ANN, "shielding_status": "SHIELDING", "council_area": "City of Edinburgh"},
    }


def request(event_id="e-req", request_key="R1", **changes) -> dict:
    return {
        "kind": "request",
        "dataset": "support-request",
        "event_id": event_id,
        "occurred_at": "2020-06-02T00:00:00.000+00:00",
        "source_org": "city-of-edinburgh",
        "person_key": None,
        "block_key": "B1",
        "request_key": request_key,
        "match_method": None,
        # Same birthday and surname, an initial and no postcode: not sure enough.
        "data": {
            **ANN,
            "given_name": "M",
            "postcode": "",
            "request_id": request_key,
            "needs": ["FOOD"],
            "urgency": "HIGH",
            "council_area": "City of Edinburgh",
            **changes,
        },
    }


class Hub:
    """The stages run to quiescence over in-memory tables, as the worker runs them."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, list] = {}
        self.cases: dict[bytes, dict] = {}
        self.reviews: dict[str, dict | None] = {}
        self.views: dict[str, dict] = {}
        self.refused: list[tuple[str, str, str]] = []
        self.history: list[tuple[str, dict]] = []

    def run(self, records: list[tuple[str, bytes, dict | None]]) -> None:
        queue = list(records)
        while queue:
            topic, key, value = queue.pop(0)
            if topic == IDENTITY:
                out = stages.match([(key, value)], self.blocks.get, SECRET)
                self.blocks.update(out.state)
            elif topic == PERSON_EVENTS:
                out = stages.join([(key, value)], self.cases.get, RULES)
                self.cases.update(out.state)
            elif topic == MATCH_REVIEW:
                self.reviews[key.decode()] = value
                continue
            elif topic == CASES:
                self.views[key.decode()] = value
                self.history.append((key.decode(), value))
                continue
            else:
                assert topic == REQUEST_EVENTS
                continue
            self.refused += out.refused
            queue += out.records

    def publish(self, *envelopes: dict) -> None:
        checked = [
            (Incoming("partner.x.y.v1", 0, i, b"k", b"v"), e) for i, e in enumerate(envelopes)
        ]
        out = stages.route_checked(checked, [], {}, SECRET)
        self.run(out.records)

    def decide(self, record: dict) -> None:
        self.run(stages.route_reviews([(b"k", record)]).records)

    def pending(self) -> list[engine.Review]:
        return [engine.Review.from_item(k, v) for k, v in self.reviews.items() if v]


def queued_pair() -> tuple[Hub, engine.Review]:
    hub = Hub()
    hub.publish(entry())
    hub.publish(request())
    (item,) = hub.pending()
    return hub, item


def decision(action, item, reason="same person on both records", **keys):
    return engine.decision(
        action,
        keys.get("first", item.review_id),
        keys.get("second", item.candidate_key),
        "accord-reviewer",
        review=item,
        reason=reason,
        now=datetime(2020, 6, 3, tzinfo=UTC),
        decision_id="d0000000-0000-4000-8000-000000000001",
    )


def test_an_uncertain_pair_is_queued_with_both_records_and_its_block():
    hub, item = queued_pair()
    assert item.candidate_key == LISTED and item.block_key == "B1"
    assert item.records["queued"]["given_name"] == "M"
    assert item.records["candidate"]["given_name"] == "Margaret"
    assert set(item.records["queued"]) == set(identity.IDENTITY_FIELDS)  # nothing more
    assert hub.views[item.review_id]["status"] == "OPEN"  # a case of its own meanwhile


def test_a_confirmed_pair_is_merged_and_its_review_settled():
    hub, item = queued_pair()
    hub.decide(decision("CONFIRM", item))
    assert hub.views[item.review_id]["status"] == "CLOSED"
    reason = hub.views[item.review_id]["closed_reason"]
    assert reason.startswith(case_rules.MERGED_REASON) and "accord-reviewer" in reason
    assert "FOOD" in hub.views[LISTED]["needs"]
    assert hub.reviews[item.review_id] is None  # removed from the queue
    block = {p["person_key"]: p for p in hub.blocks[b"B1"]}
    assert block[item.review_id]["merged_into"] == LISTED
    # Read again (at least once): nothing changes, the merge is asked for once more.
    cases_before = dict(hub.cases)
    hub.decide(decision("CONFIRM", item))
    assert hub.cases == cases_before and hub.refused == []


def test_a_rejected_pair_is_two_people_and_never_proposed_or_merged_again():
    hub, item = queued_pair()
    hub.decide(decision("REJECT", item, reason="different people: twins"))
    block = {p["person_key"]: p for p in hub.blocks[b"B1"]}
    assert block[item.review_id]["distinct"] == [LISTED]
    assert block[LISTED]["distinct"] == [item.review_id]
    assert hub.reviews[item.review_id] is None
    assert hub.views[item.review_id]["status"] == "OPEN"  # still their own case
    # The listed person's next record matches the queued one exactly: not merged.
    hub.publish({**entry(), "event_id": "e-list-2", "data": {**entry()["data"], "given_name": "M"}})
    block = {p["person_key"]: p for p in hub.blocks[b"B1"]}
    assert not block[item.review_id].get("merged_into")
    # ... and a confirmation after a rejection is refused, not applied.
    hub.decide(decision("CONFIRM", item))
    assert [r[2] for r in hub.refused] == ["rejected_before"]
    assert hub.views[item.review_id]["status"] == "OPEN"


def test_a_split_gives_each_person_their_own_case_back_and_withdraws_the_merged_one():
    hub, item = queued_pair()
    hub.decide(decision("CONFIRM", item))
    # An outcome's request arrives after the merge: forwarded to the listed person.
    hub.publish(request(event_id="e-req-2"))
    assert "FOOD" in hub.views[LISTED]["needs"]
    split = engine.decision(
        "SPLIT",
        LISTED,
        item.review_id,
        "accord-reviewer",
        reason="wrong merge: different people",
        now=datetime(2020, 6, 4, tzinfo=UTC),
        decision_id="d0000000-0000-4000-8000-000000000002",
    )
    hub.history.clear()
    hub.decide(split)
    steps = [view for key, view in hub.history if key == LISTED]
    # Withdrawn at every recipient first, then decided again on its own records.
    assert [s["status"] for s in steps] == ["CLOSED", "OPEN"]
    assert "split from person" in steps[-2]["closed_reason"]
    assert "wrong merge" in steps[-2]["closed_reason"]
    assert hub.views[LISTED]["needs"] == ["WELFARE_CHECK"]  # only their own
    assert hub.views[item.review_id]["status"] == "OPEN"
    assert hub.views[item.review_id]["needs"] == ["FOOD"]
    block = {p["person_key"]: p for p in hub.blocks[b"B1"]}
    assert "merged_into" not in block[item.review_id]
    assert block[item.review_id]["distinct"] == [LISTED]
    # The merged person's state forgets the merge; the listed one what came from them.
    assert "merged_into" not in hub.cases[item.review_id.encode()]
    assert item.review_id not in hub.cases[LISTED.encode()].get("merged_from", {})
    assert hub.refused == []  # the merged side waited for its target's unmerge


def test_a_split_of_people_never_merged_changes_no_case():
    hub, item = queued_pair()
    before = dict(hub.cases)
    hub.decide(
        engine.decision("SPLIT", LISTED, item.review_id, "accord-reviewer", reason="checking")
    )
    assert hub.cases == before
    assert {r[2] for r in hub.refused} == {"not_merged"}


def test_a_consent_a_merged_person_replaced_comes_back_on_a_split():
    state = case_rules.new_state(LISTED)
    own = {
        "occurred_at": "2020-06-01T00:00:00.000+00:00",
        "event_id": "c1",
        "change": "OPT_OUT",
        "scope": "ALL_SHARING",
    }
    state["consents"] = {"city-of-edinburgh": own}
    moved = {
        "kind": "consent",
        "event_id": "c2",
        "occurred_at": "2020-06-02T00:00:00.000+00:00",
        "source_org": "city-of-edinburgh",
        "data": {"change": "OPT_IN", "scope": "ALL_SHARING"},
    }
    case_rules.moved_in(state, "P", moved)
    state = case_rules.apply_event(state, moved)
    kept, returned, _ = case_rules.split_off(state, "P")
    assert kept["consents"]["city-of-edinburgh"]["event_id"] == "c1"  # the opt-out holds
    assert [e["event_id"] for e in returned] == ["c2"]


@pytest.mark.parametrize(
    ("reason", "required", "ok"),
    [
        ("different people: twins", True, True),
        ("", True, False),
        (None, False, True),
        ("CHI 0101501234 differs", True, False),
        ("lives at EH1 1AA", True, False),
        ("born 14/03/1950", True, False),
        ("mail me at a@b.org", True, False),
        ("x" * 301, True, False),
    ],
)
def test_a_reason_is_required_where_it_must_be_and_holds_no_personal_data(reason, required, ok):
    if ok:
        engine.check_reason(reason, required)
    else:
        with pytest.raises(engine.ReviewError):
            engine.check_reason(reason, required)


def test_a_review_is_found_by_the_start_of_its_id_and_never_by_a_guess():
    reviews = [
        engine.Review.from_item(k, {"candidate_key": LISTED})
        for k in ("abcdef01" + "0" * 56, "abcdef02" + "0" * 56)
    ]
    assert engine.find(reviews, "ABCDEF01").review_id.startswith("abcdef01")
    for wanted in ("abc", "abcdef", "ffffff"):
        with pytest.raises(engine.ReviewError):
            engine.find(reviews, wanted)


def test_side_by_side_shows_the_compared_fields_and_the_evidence_only():
    hub, item = queued_pair()
    rows = engine.side_by_side(item)
    assert [r[0] for r in rows[:5]] == [
        "given name",
        "family name",
        "date of birth",
        "postcode",
        "address",
    ]
    assert rows[0][1:3] == ("M", "Margaret") and rows[3][1] == "-"
    assert any(r[3] for r in rows[:3])  # the matcher's evidence beside the fields


def test_a_split_names_two_people_or_the_confirmation_it_undoes():
    past = [
        {
            "action": "CONFIRM",
            "decision_id": "1234567890ab",
            "person_key": "p",
            "other_person_key": "q",
        }
    ]
    assert engine.split_pair(past, None, None, "1234567") == ("p", "q")
    assert engine.split_pair([], "A" * 64, "b" * 64, None) == ("a" * 64, "b" * 64)
    for args in ((past, None, None, "999999"), ([], "Margaret", "MacLeod", None)):
        with pytest.raises(engine.ReviewError):
            engine.split_pair(*args)
    with pytest.raises(engine.ReviewError):
        engine.decision("SPLIT", "a" * 64, "a" * 64, "r", reason="same key twice")


def test_an_opted_out_persons_fields_leave_the_review_queue_too():
    hub, item = queued_pair()
    hub.run([(IDENTITY, b"B1", {"kind": "erase", "person_key": LISTED})])
    assert hub.reviews[item.review_id] is None
    block = {p["person_key"]: p for p in hub.blocks[b"B1"]}
    assert all(m.get("review") is None for m in block[item.review_id]["resolved"].values())
    assert block[LISTED]["erased"] and block[LISTED]["given_name"] is None
    hub.decide(decision("CONFIRM", item))  # a decision that comes anyway changes nothing
    assert [r[2] for r in hub.refused] == ["erased"]


def _decided(action: str, decision_id: str, first: str, second: str, minute: int) -> dict:
    return {
        "action": action,
        "decision_id": decision_id,
        "person_key": first,
        "other_person_key": second,
        "decided_at": datetime(2026, 12, 2, 12, minute, tzinfo=UTC),
    }


def test_the_merges_that_stand_are_the_confirmations_no_later_split_undid():
    past = [
        _decided("CONFIRM", "c1-aaaaaaaa", "p", "q", 0),
        _decided("CONFIRM", "c2-bbbbbbbb", "r", "s", 1),
        _decided("REJECT", "r1-cccccccc", "t", "u", 2),
        _decided("SPLIT", "s1-dddddddd", "q", "p", 3),  # either order of the two people
        _decided("SPLIT", "s0-eeeeeeee", "r", "s", 0),  # before the confirmation: not undone
    ]
    assert [m["decision_id"] for m in engine.merges(past)] == ["c2-bbbbbbbb"]
    assert engine.undone_by(past, past[0])["decision_id"] == "s1-dddddddd"
    assert engine.undone_by(past, past[1]) is None
    # A confirmation split already is refused by name, not split twice.
    with pytest.raises(engine.ReviewError, match="undone already, by split s1-dddddddd"):
        engine.split_pair(past, None, None, "c1-aaa")
    assert engine.split_pair(past, None, None, "c2-bbb") == ("r", "s")
    assert engine.merges([]) == []


def test_kafka_away_is_an_infrastructure_error_of_the_engine(monkeypatch):
    from kafka.errors import KafkaTimeoutError

    from accord.core.errors import InfrastructureError
    from accord.core.settings import Settings

    def no_broker(*args, **kwargs):
        raise KafkaTimeoutError("no broker")  # what a consumer raises with none reachable
        yield  # a generator, as read_topic is

    monkeypatch.setattr(engine, "read_topic", no_broker)
    with pytest.raises(InfrastructureError, match="Kafka unavailable while reading"):
        engine.pending(Settings(principal="accord-reviewer"))
