"""The worker's stages as pure functions over a batch (`pipeline.stages`), without Kafka."""

from __future__ import annotations

from accord.core.topics import IDENTITY, MATCH_REVIEW, PERSON_EVENTS, REQUEST_EVENTS
from accord.pipeline import stages
from accord.pipeline.intake import Incoming, Rejected
from accord.pipeline.redecide import changed_parties, is_affected

SECRET = "s"
ANN = {
    "given_name": "Margaret",
    "family_name": "MacLeod",
    "date_of_birth": "1950-03-14",
    "postcode": "EH1 1AA",
    "address_line1": "12 High Street",
}


def message(offset: int) -> Incoming:
    return Incoming("partner.x.support-request.v1", 0, offset, b"k", b"v")


def envelope(event_id, kind="request", person_key=None, block_key="B1", request_key=None):
    return {
        "kind": kind,
        "dataset": {"request": "support-request", "entry": "shielding-list"}.get(kind, kind),
        "event_id": event_id,
        "occurred_at": "2020-06-01T00:00:00.000+00:00",
        "source_org": "city-of-edinburgh",
        "person_key": person_key,
        "block_key": block_key,
        "request_key": request_key,
        "match_method": "chi" if person_key else None,
        "data": dict(ANN),
    }


def topics_of(out: stages.Outputs) -> list[tuple[str, bytes]]:
    return [(topic, key) for topic, key, _ in out.records]


def test_an_event_with_a_known_person_goes_straight_to_the_person_stage_and_to_its_block():
    entry = envelope("e1", kind="entry", person_key="P-chi")
    out = stages.route_checked([(message(1), entry)], [], {}, SECRET)
    assert topics_of(out) == [(IDENTITY, b"B1"), (PERSON_EVENTS, b"P-chi")]
    assert out.records[0][2]["indexed"] is True and "indexed" not in out.records[1][2]
    assert out.counts["direct"] == 1


def test_a_request_without_a_number_waits_for_the_matcher_and_an_outcome_for_its_request():
    request = envelope("e1", request_key="R1")
    outcome = envelope("e2", kind="outcome", block_key=None, request_key="R1")
    out = stages.route_checked([(message(1), request), (message(2), outcome)], [], {}, SECRET)
    assert topics_of(out) == [(IDENTITY, b"B1"), (REQUEST_EVENTS, b"R1")]


def test_rejected_and_unauthorised_records_go_to_the_rejects_with_their_reasons():
    bad = Rejected("chi_length", "CHI must have 10 digits", "chi_number")
    refused = Rejected("no_authority", "may not assert shielding status", "shielding_status")
    ok = envelope("e2", request_key="R2")
    out = stages.route_checked(
        [(message(2), ok)], [(message(1), bad)], {message(2).location: refused}, SECRET
    )
    assert out.records == []
    assert [(code, field) for _, code, _, field, _ in out.rejects] == [
        ("chi_length", "chi_number"),
        ("no_authority", "shielding_status"),
    ]
    assert out.counts == {"records": 2, "quarantined": 2, "unauthorised": 1}


def test_an_indexed_event_registers_the_person_and_merges_without_a_second_person_event():
    request = envelope("e1", request_key="R1")
    matched = stages.match([(b"B1", request)], lambda key: None, SECRET)
    provisional = matched.records[0][1].decode()
    assert [t for t, _, _ in matched.records] == [PERSON_EVENTS, REQUEST_EVENTS]
    block = matched.state[b"B1"]
    indexed = {**envelope("e2", kind="entry", person_key="P-chi"), "indexed": True}
    out = stages.match([(b"B1", indexed)], {b"B1": block}.get, SECRET)
    assert [(t, k.decode()) for t, k, _ in out.records] == [(PERSON_EVENTS, provisional)]
    assert out.records[0][2]["kind"] == "merge" and out.records[0][2]["target"] == "P-chi"
    assert {p["person_key"] for p in out.state[b"B1"]} == {provisional, "P-chi"}


def test_a_batch_sees_its_own_block_updates_and_writes_each_block_once():
    first, second = envelope("e1", request_key="R1"), envelope("e2", request_key="R1")
    out = stages.match([(b"B1", first), (b"B1", second)], lambda key: None, SECRET)
    people = [k for t, k, _ in out.records if t == PERSON_EVENTS]
    assert people[0] == people[1]  # the same request: the same provisional person
    assert list(out.state) == [b"B1"] and len(out.state[b"B1"]) == 1


def test_an_uncertain_match_goes_to_review_and_starts_a_provisional_person():
    listed = [{"person_key": "P-chi", "provisional": False, **ANN}]
    near = {**envelope("e1", request_key="R1"), "data": dict(ANN, given_name="M", postcode="")}
    out = stages.match([(b"B1", near)], {b"B1": listed}.get, SECRET)
    assert [t for t, _, _ in out.records] == [PERSON_EVENTS, REQUEST_EVENTS, MATCH_REVIEW]
    review = out.records[2][2]
    assert review["candidate_key"] == "P-chi" and out.records[0][1].decode() != "P-chi"
    assert out.counts["reviews"] == 1


def test_an_outcome_before_its_owner_is_held_then_sent_to_the_owner():
    outcome = {"kind": "outcome", "event_id": "o1", "request_key": "R1"}
    held = stages.route_outcomes([(b"R1", outcome)], lambda key: None)
    assert held.records == [] and held.counts["held"] == 1
    owner = stages.owner_note("R1", "P1")
    out = stages.route_outcomes([(b"R1", owner)], held.state.get)
    assert topics_of(out) == [(PERSON_EVENTS, b"P1")] and out.records[0][2]["person_key"] == "P1"
    assert out.state[b"R1"] == {"person_key": "P1", "held": {}}
    assert held.state[b"R1"]["held"]  # the stored state is not modified in place


def agreement(providers, *recipients, status="active"):
    return {
        "status": status,
        "providers": providers,
        "recipients": [{"org": org} for org in recipients],
    }


def test_only_cases_naming_a_party_of_a_changed_agreement_are_decided_again():
    rules = [("sharing", "package accord.sharing")]
    before = {"DSA-1": agreement(["board-a"], "council-a"), "DSA-2": agreement(["board-b"], "x")}
    after = {**before, "DSA-1": agreement(["board-a"], "council-a", status="suspended")}
    parties = changed_parties((rules, before), (rules, after))
    assert parties == {"board-a", "council-a"}
    case_a = {"source": {"org": "board-a"}, "request_orgs": []}
    case_b = {"source": {"org": "board-b"}, "request_orgs": []}
    requested = {"source": {"org": "board-b"}, "request_orgs": ["council-a"]}
    assert is_affected(case_a, [], parties) and not is_affected(case_b, [], parties)
    assert is_affected(requested, [], parties) and is_affected(case_b, ["council-a"], parties)
    assert changed_parties((rules, before), (rules, dict(before))) == set()
    removed = {"DSA-2": before["DSA-2"]}
    assert changed_parties((rules, before), (rules, removed)) == {"board-a", "council-a"}


def test_a_change_of_the_rules_affects_every_case():
    agreements = {"DSA-1": agreement(["board-a"], "council-a")}
    parties = changed_parties(([("r", "v1")], agreements), ([("r", "v2")], agreements))
    assert parties is None and is_affected({"source": {"org": "z"}}, [], parties)
