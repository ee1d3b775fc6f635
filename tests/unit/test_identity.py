"""Resolving people within a matching block, including merges of provisional people."""

import json

from accord.pipeline import cases
from accord.pipeline.identity import erase, resolve


def envelope(event_id, data, person_key=None, request_key=None, dataset="support-request"):
    return {
        "kind": "request" if request_key else "entry",
        "dataset": dataset,
        "event_id": event_id,
        "source_org": "city-of-edinburgh",
        "person_key": person_key,
        "request_key": request_key,
        "occurred_at": "2020-06-01T00:00:00.000+00:00",
        "data": data,
    }


ANN = {
    "given_name": "Margaret",
    "family_name": "MacLeod",
    "date_of_birth": "1950-03-14",
    "postcode": "EH1 1AA",
    "address_line1": "12 High Street",
}


def test_a_request_that_arrives_before_the_list_is_merged_when_the_person_arrives():
    form = dict(ANN, given_name="Peggy", address_line1="12 High St")
    provisional, block, review, merges = resolve([], envelope("e1", form, request_key="R1"), "s")
    assert merges == [] and review is None and block[0]["provisional"]
    person, block, _, merges = resolve(block, envelope("e2", ANN, person_key="P-chi"), "s")
    assert person == "P-chi" and merges == [provisional]
    # The provisional person stays, marked, and is no longer a candidate for anyone.
    assert [(p["person_key"], p.get("merged_into")) for p in block] == [
        (provisional, "P-chi"),
        ("P-chi", None),
    ]
    again, _, _, _ = resolve(block, envelope("e3", form, request_key="R2"), "s")
    assert again == "P-chi"


def test_a_twin_is_never_merged_into_the_listed_person():
    twin = dict(ANN, given_name="Morag")
    _, block, _, _ = resolve([], envelope("e1", twin, request_key="R1"), "s")
    _, block, _, merges = resolve(block, envelope("e2", ANN, person_key="P-chi"), "s")
    assert merges == [] and len(block) == 2


def test_resolving_the_same_event_again_gives_the_same_person():
    event = envelope("e1", ANN, request_key="R1")
    first, block, _, _ = resolve([], dict(event), "s")
    again, block_again, _, _ = resolve(block, dict(event), "s")
    assert again == first and block_again == block


def test_a_merged_state_replays_into_an_equal_state():
    state = cases.new_state("P1")
    state = cases.apply_event(
        state,
        {
            "kind": "request",
            "event_id": "e1",
            "request_key": "R1",
            "source_org": "fife",
            "occurred_at": "2020-06-01T00:00:00.000+00:00",
            "match_method": "probabilistic",
            "data": {
                "request_id": "R1",
                "needs": ["FOOD"],
                "urgency": "ROUTINE",
                "lives_alone": True,
            },
        },
    )
    state = cases.apply_event(
        state,
        {
            "kind": "outcome",
            "event_id": "o1",
            "request_key": "R1",
            "source_org": "fife",
            "occurred_at": "2020-06-02T00:00:00.000+00:00",
            "data": {"need": "FOOD", "outcome": "NO_ANSWER"},
        },
    )
    target = cases.new_state("P2")
    for event in cases.events_of(state):
        target = cases.apply_event(target, event)
    assert target["requests"] == state["requests"] and target["outcomes"] == state["outcomes"]


def test_an_opted_out_person_is_erased_from_the_block_with_whoever_was_merged_into_them():
    form = dict(ANN, given_name="Peggy", address_line1="12 High St")
    provisional, block, _, _ = resolve([], envelope("e1", form, request_key="R1"), "s")
    _, block, _, _ = resolve(block, envelope("e2", ANN, person_key="P-chi"), "s")
    erased = erase(block, "P-chi")
    text = json.dumps(erased)
    assert "MacLeod" not in text and "1950-03-14" not in text and "EH1 1AA" not in text
    assert {p["person_key"] for p in erased} == {provisional, "P-chi"}
    assert all(p["erased"] for p in erased)
    assert erase(erased, "P-chi") is erased  # read again: nothing changes
    # The board's record read again (or a new one) brings nothing back ...
    _, again, _, _ = resolve(erased, envelope("e2", ANN, person_key="P-chi"), "s")
    assert "MacLeod" not in json.dumps(again)
    # ... and a new request without a CHI is no longer matched to them.
    person, _, _, _ = resolve(again, envelope("e9", ANN, request_key="R9"), "s")
    assert person not in ("P-chi", provisional)


def test_erasing_someone_else_leaves_the_block_as_it_is():
    _, block, _, _ = resolve([], envelope("e2", ANN, person_key="P-chi"), "s")
    assert erase(block, "P-other") is block


def test_a_probabilistic_match_and_a_review_name_the_model_that_scored_them():
    from accord.matching.model import default_model

    version = default_model().version
    _, block, _, _ = resolve([], envelope("e1", ANN, person_key="P-chi"), "s")
    matched = envelope("e2", dict(ANN, given_name="Peggy"), request_key="R1")
    person, block, review, _ = resolve(block, matched, "s")
    assert person == "P-chi" and matched["match_model"] == version
    again = envelope("e2", dict(ANN, given_name="Peggy"), request_key="R1")
    assert resolve(block, again, "s")[0] == "P-chi" and again["match_model"] == version
    unsure = envelope("e3", dict(ANN, family_name="Paterson"), request_key="R2")
    _, _, review, _ = resolve(block, unsure, "s")
    assert review is not None and review["model"] == version
    assert ["model", version, 0.0] in review["evidence"]
