"""Storage limitation: hub.cases records a closed case without personal data; the worker's
table cuts down finished requests and, on an opt-out, every record; what is kept never
depends on the order the records arrived in; cases are decided, replayed and reopened as
before."""

from __future__ import annotations

import copy
import itertools
import json

import pytest

from accord.pipeline import cases
from accord.pipeline.decision import derive_decision_id

RULES = cases.load_priority_rules()
PERSONAL = (
    "1403521239",
    "Siobhán",
    "Ó Briain",
    "1952-03-14",
    "Flat 3F2",
    "12 Marchmont Road",
    "EH9 1HB",
    "+447700900456",
    "SEVERE_RESPIRATORY",
    "Kerr",
    "5 Leith Walk",
    "EH6 8PZ",
    "+447700900123",
)


def entry(status="SHIELDING", at="2020-06-01T00:00:00.000+00:00", event_id="e1"):
    return {
        "kind": "entry",
        "event_id": event_id,
        "occurred_at": at,
        "source_org": "nhs-lothian",
        "match_method": "chi",
        "data": {
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
            "shielding_status": status,
            "contact_phone": "+447700900456",
        },
    }


def request(needs, key="rq1", at="2020-06-02T00:00:00.000+00:00", alone=True, **person):
    return {
        "kind": "request",
        "event_id": f"ev-{key}",
        "occurred_at": at,
        "request_key": key,
        "source_org": "city-of-edinburgh",
        "match_method": "chi",
        "data": {
            "request_id": key,
            "needs": needs,
            "urgency": "IMMEDIATE",
            "lives_alone": alone,
            "given_name": "Siobhán",
            "family_name": "Ó Briain",
            "date_of_birth": "1952-03-14",
            "address_line1": "Flat 3F2",
            "postcode": "EH9 1HB",
            "council_area": "City of Edinburgh",
            "contact_phone": "+447700900456",
            **person,
        },
    }


def outcome(kind, key="rq1", at="2020-06-03T00:00:00.000+00:00", event_id="o1", need=None):
    return {
        "kind": "outcome",
        "event_id": event_id,
        "occurred_at": at,
        "request_key": key,
        "source_org": "city-of-edinburgh",
        "data": {"outcome": kind, "need": need},
    }


def consent(change, at="2020-06-04T00:00:00.000+00:00"):
    return {
        "kind": "consent",
        "event_id": f"c-{change}-{at}",
        "occurred_at": at,
        "source_org": "nhs-lothian",
        "data": {"change": change, "scope": "ALL_SHARING"},
    }


def stored(*events, state=None):
    """The state as the worker stores it: folded one event at a time, each stored state
    passed through retained_state (as join_batch does)."""
    state = state if state is not None else cases.new_state("pk")
    for event in events:
        state = cases.retained_state(cases.apply_event(copy.deepcopy(state), event))
    return state


def fold(*events):
    state = cases.new_state("pk")
    for event in events:
        state = cases.apply_event(state, event)
    return state


def holds_personal_data(value) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return [datum for datum in PERSONAL if datum in text]


SEQUENCES = {
    "opted out": ([entry(), request(["FOOD"]), consent("OPT_OUT")], True),
    "withdrew consent": ([entry(), consent("WITHDRAW_CONSENT")], True),
    "needs met": ([request(["FOOD"]), outcome("NEEDS_MET")], True),
    "declined": ([entry(), request(["FOOD"]), outcome("DECLINED")], True),
    "stopped shielding": ([entry(status="NOT_SHIELDING")], True),
    "welfare check owed": ([entry()], False),
    "need open": (
        [entry(), request(["FOOD", "MEDICINE"]), outcome("DELIVERED", need="FOOD")],
        False,
    ),
    "opted back in": (
        [
            entry(),
            request(["FOOD"]),
            consent("OPT_OUT"),
            consent("OPT_IN", "2020-06-05T00:00:00.000+00:00"),
        ],
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_a_closed_case_is_recorded_without_personal_data_an_open_one_whole(name):
    events, closed = SEQUENCES[name]
    state = fold(*events)
    assert cases.is_closed(state) is closed
    kept = cases.retained_state(copy.deepcopy(state))
    view = cases.recorded_view(kept, RULES)
    if closed:
        assert holds_personal_data(view) == []
        assert set(view["source"]["fields"]) <= set(cases.LIFECYCLE_FIELDS)
        assert view["status"] == "CLOSED"
    else:
        assert holds_personal_data(view) != []


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_the_table_keeps_the_boards_entry_until_an_opt_out_and_no_finished_request(name):
    events, _ = SEQUENCES[name]
    state = fold(*events)
    kept = cases.retained_state(copy.deepcopy(state))
    finished = cases.finished_requests(state)
    for request in kept["requests"].values():
        if request["event_id"] in finished or cases.opted_out(state):
            assert holds_personal_data(request) == []
        else:
            assert request == state["requests"][request["request_id"]]
    if kept["entry"] is not None:
        if cases.opted_out(state):
            assert holds_personal_data(kept["entry"]) == []
        else:
            assert kept["entry"] == state["entry"]  # the board's latest record, whole


def test_an_opted_out_person_keeps_no_personal_data_in_the_table():
    for name in ("opted out", "withdrew consent"):
        assert holds_personal_data(stored(*SEQUENCES[name][0])) == []


# Records about one person as partners send them; any order is possible across topics.
PERSON_RECORDS = [
    entry(),
    request(["FOOD"]),
    request(["MEDICINE"], key="rq2", at="2020-06-02T06:00:00.000+00:00"),
    outcome("NEEDS_MET"),
    entry(status="NOT_SHIELDING", at="2020-06-05T00:00:00.000+00:00", event_id="e2"),
    outcome("DELIVERED", key="rq2", event_id="o2", need="MEDICINE"),
]


@pytest.mark.parametrize(
    "records",
    [
        PERSON_RECORDS,
        [*PERSON_RECORDS[:4], consent("OPT_OUT")],
        PERSON_RECORDS[:4],
        [
            entry(),
            {**entry(at="2020-06-03T00:00:00.000+00:00", event_id="e3"), "source_org": "nhs-fife"},
            request(["FOOD"]),
            {**consent("OPT_IN", "2020-06-06T00:00:00.000+00:00"), "source_org": "nhs-fife"},
            {**consent("OPT_OUT"), "source_org": "city-of-edinburgh"},
        ],
    ],
    ids=["lifecycle", "opt-out", "closed then more", "two boards, two controllers"],
)
def test_every_arrival_order_stores_and_records_the_same_case(records):
    """A crash replays records and Kafka interleaves partner topics at will: the stored
    state and the case must be a function of the records, never of their order."""
    first = None
    for order in itertools.permutations(records):
        state = stored(*order)
        result = (state, cases.recorded_view(state, RULES))
        if first is None:
            first = result
        assert result == first, [e["event_id"] for e in order]


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_stripping_changes_no_decision(name):
    """The view of a stripped state is the same case: status, reason, needs, priority,
    restricted views, provenance and the decision ids, without the personal fields."""
    events, _ = SEQUENCES[name]
    state = fold(*events)
    whole, kept = (
        cases.build_case(state, RULES),
        cases.build_case(cases.retained_state(state), RULES),
    )
    for view in (whole, kept):
        view["source"] = {k: v for k, v in view["source"].items() if k != "fields"}
    assert kept == whole
    assert derive_decision_id(kept, "city-of-edinburgh", "r1", "DSA-010") == derive_decision_id(
        whole, "city-of-edinburgh", "r1", "DSA-010"
    )


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_replaying_after_stripping_yields_the_same_state(name):
    """At-least-once: a batch read again after a crash re-applies events to the stored
    (stripped) state; the stored state and the case come out the same."""
    events, _ = SEQUENCES[name]
    once = stored(*events)
    for prefix in range(len(events) + 1):
        again = stored(*events[:prefix], state=once)
        assert again == once
        assert cases.build_case(again, RULES) == cases.build_case(once, RULES)


def test_strip_source_fields_does_not_change_its_input():
    state = fold(entry(), request(["FOOD"]), consent("OPT_OUT"))
    before = copy.deepcopy(state)
    cases.strip_source_fields(state)
    assert state == before


def test_a_case_closed_for_want_of_a_need_reopens_on_the_boards_record():
    closed = stored(entry(status="NOT_SHIELDING"), request(["FOOD"]), outcome("NEEDS_MET"))
    assert cases.recorded_view(closed, RULES)["status"] == "CLOSED"
    assert closed["stripped"] == ["ev-rq1"]  # the finished request; the board's record stays
    later = request(["MEDICINE"], key="rq2", at="2020-07-01T00:00:00.000+00:00")
    view = cases.build_case(stored(later, state=closed), RULES)
    assert view["status"] == "OPEN" and view["needs"] == ["MEDICINE"]
    assert view["source"]["dataset"] == "shielding-list"  # as if the request had come first
    assert view["source"]["fields"]["chi_number"] == "1403521239"


def test_a_case_reopened_after_an_opt_out_is_decided_on_the_new_request():
    closed = stored(entry(), request(["FOOD"]), consent("OPT_OUT"))
    assert closed["entry"]["stripped"] and holds_personal_data(closed) == []
    assert closed["stripped"] == ["e1", "ev-rq1"]
    opted_in = consent("OPT_IN", "2020-06-05T00:00:00.000+00:00")
    later = request(
        ["MEDICINE"],
        key="rq2",
        at="2020-07-01T00:00:00.000+00:00",
        family_name="Kerr",
        address_line1="5 Leith Walk",
        postcode="EH6 8PZ",
        contact_phone="+447700900123",
    )
    reopened = stored(opted_in, later, state=closed)
    view = cases.build_case(reopened, RULES)
    assert view["status"] == "OPEN" and "MEDICINE" in view["needs"]
    assert view["source"]["dataset"] == "support-request"
    assert view["source"]["event_id"] == "ev-rq2"
    assert view["source"]["fields"]["family_name"] == "Kerr"
    assert "1403521239" not in json.dumps(reopened)  # the board's record stays stripped
    # The same record read again (at-least-once) stays cut down; the board publishing a
    # new record makes it the source again, whole.
    assert stored(entry(), state=reopened) == reopened
    republished = stored(entry(at="2020-07-02T00:00:00.000+00:00", event_id="e2"), state=reopened)
    view = cases.build_case(republished, RULES)
    assert view["source"]["dataset"] == "shielding-list"
    assert view["source"]["fields"]["chi_number"] == "1403521239"


def test_a_closed_case_is_stripped_again_when_its_record_is_replayed():
    closed = stored(entry(), consent("OPT_OUT"))
    assert holds_personal_data(stored(entry(), state=closed)) == []


def test_a_merged_persons_closed_view_carries_no_personal_data():
    provisional = fold(request(["FOOD"]))
    view = cases.build_case(cases.strip_source_fields(provisional), RULES)
    assert holds_personal_data(view) == []
    assert cases.events_of(provisional)[0]["data"]["given_name"] == "Siobhán"  # moved whole


def test_person_state_topics_compact_superseded_records_within_a_day():
    from accord.access.provision import wanted_topics
    from accord.core.settings import Settings
    from accord.core.topics import Topics

    settings = Settings(topic_prefix="t1.", worker_id="w1")
    wanted = wanted_topics(settings, [])
    for topic in (Topics(settings).internal("cases"), "t1.w1-cases-changelog"):
        assert wanted[topic]["cleanup.policy"] == "compact"
        assert wanted[topic]["max.compaction.lag.ms"] == "86400000"


# --- through `join`, as the worker's join stage runs it ---


def keyed(*events, key="pk"):
    return [(key, event) for event in events]


def test_join_stores_and_records_a_closed_case_without_personal_data_and_replays_the_same():
    store: dict[str, dict] = {}
    batch = keyed(entry(), request(["FOOD"]), consent("OPT_OUT"))
    first = cases.join(batch, store.get, RULES)
    assert holds_personal_data(first.states) == [] and holds_personal_data(first.views) == []
    assert first.views[0]["status"] == "CLOSED"
    store.update(first.states)
    for prefix in range(len(batch) + 1):  # read again after a crash, any prefix
        again = cases.join(batch[:prefix], store.get, RULES)
        assert all(state == store[key] for key, state in again.states.items())
        assert all(view == first.views[0] for view in again.views)


def test_join_keeps_a_merged_persons_events_whole_but_records_its_closed_view_without_them():
    store = {"prov": cases.apply_event(cases.new_state("prov"), request(["FOOD"]))}
    merge = cases.merge_event("prov", "pk", request(["FOOD"]))
    first = cases.join([("prov", merge)], store.get, RULES)
    moved = [event for _, event in first.person_events]
    assert moved and moved[0]["data"]["given_name"] == "Siobhán"  # the target gets them whole
    assert first.states["prov"]["merged_into"] == "pk"
    assert first.states["prov"]["requests"]["rq1"]["fields"]["given_name"] == "Siobhán"
    [view] = first.views
    assert view["status"] == "CLOSED" and holds_personal_data(view) == []
    store.update(first.states)
    again = cases.join([("prov", merge)], store.get, RULES)  # the merge read again
    assert again.person_events == first.person_events and again.views == first.views


def test_an_opt_out_asks_every_matching_block_that_knows_the_person_to_erase_them():
    events = [
        {**entry(), "block_key": "b1"},
        {**request(["FOOD"]), "block_key": "b2"},
    ]
    store: dict[str, dict] = {}
    first = cases.join(keyed(*events), store.get, RULES)
    assert first.erasures == []  # no opt-out: the blocks keep the person
    store.update(first.states)
    out = cases.join(keyed(consent("OPT_OUT")), store.get, RULES)
    assert out.erasures == [("b1", "pk"), ("b2", "pk")]
    store.update(out.states)
    again = cases.join(keyed(consent("OPT_OUT")), store.get, RULES)  # read again
    assert again.erasures == out.erasures and again.states == out.states


def test_records_in_transit_are_kept_only_for_the_transit_retention():
    from accord.access.provision import all_topics
    from accord.core.settings import Settings
    from accord.core.topics import Topics

    settings = Settings(topic_prefix="t1.", worker_id="w1", transit_retention_ms=3_600_000)
    topics = all_topics(settings, ["nhs-lothian"])
    names = Topics(settings)
    for name in (
        names.internal("identity"),
        names.internal("person-events"),
        names.partner("nhs-lothian", "shielding-list"),
    ):
        assert topics[name][1]["retention.ms"] == "3600000", name
