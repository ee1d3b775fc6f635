"""Minimisation with no side doors: derived attributes (needs, priority, ...) leave only
when the decision releases them, computed only from what the decision covers."""

from datetime import UTC, datetime

import pytest

from accord.pipeline import cases
from accord.pipeline.decision import (
    policy_input_record,
    project_case,
    visible_to_recipient,
    withheld_from_view,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
RULES = cases.load_priority_rules()
ENTRY = {
    "kind": "entry",
    "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
    "occurred_at": "2020-06-01T00:00:00.000+00:00",
    "source_org": "nhs-lothian",
    "match_method": "chi",
    "data": {
        "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
        "given_name": "Ann",
        "family_name": "Kerr",
        "address_line1": "1 High Street",
        "postcode": "EH1 1AA",
        "council_area": "City of Edinburgh",
        "contact_phone": "+447700900123",
        "shielding_status": "SHIELDING",
    },
}


def request(org: str, key: str, needs: list[str], at: str, **extra) -> dict:
    return {
        "kind": "request",
        "event_id": f"ev-{key}",
        "occurred_at": at,
        "source_org": org,
        "request_key": key,
        "match_method": "chi",
        "data": {
            "request_id": key,
            "needs": needs,
            "urgency": extra.get("urgency", "WITHIN_48_HOURS"),
            "lives_alone": extra.get("lives_alone", True),
            "given_name": "Ann",
        },
    }


def case_of(*events):
    state = cases.new_state("ab" * 32)
    for event in events:
        state = cases.apply_event(state, event)
    return cases.build_case(state, RULES)


FOOD_PARTNER = {
    "record_id": "ab" * 32,
    "recipient": "community-food-network",
    "agreement_id": "DSA-015",
    "allow": True,
    "fields_released": ["given_name", "needs", "postcode"],
    "reasons": [],
}
COUNCIL = dict(
    FOOD_PARTNER,
    recipient="city-of-edinburgh",
    agreement_id="DSA-010",
    fields_released=[
        "given_name",
        "latest_outcome",
        "match_method",
        "needs",
        "open_requests",
        "opened_at",
        "postcode",
        "priority",
        "priority_reasons",
        "shielding_status",
    ],
)


def project(case, decision):
    return project_case(case, decision, decision_id="d1", policy_revision="r1", updated_at=NOW)


SHIELDING_AND_FOOD = (
    ENTRY,
    request("city-of-edinburgh", "q1", ["FOOD"], "2020-06-03T00:00:00.000+00:00"),
)


def test_a_council_released_the_shielding_status_gets_the_whole_case():
    projected = project(case_of(*SHIELDING_AND_FOOD), COUNCIL)
    assert projected["needs"] == ["FOOD", "WELFARE_CHECK"]
    assert projected["is_shielding"] is True
    assert "high: shielding and living alone" in projected["priority_reasons"]
    assert projected["opened_at"] == datetime(2020, 6, 1, tzinfo=UTC)  # the entry's time
    assert projected["match_method"] == "chi" and projected["open_requests"] == 1


def test_the_food_partner_gets_needs_computed_without_the_shielding_status():
    projected = project(case_of(*SHIELDING_AND_FOOD), FOOD_PARTNER)
    assert projected["needs"] == ["FOOD"]  # no welfare check owed for shielding
    assert projected["is_shielding"] is None
    # Not released: none leaves, not even computed without shielding.
    assert projected["priority"] is None and projected["priority_reasons"] == []
    assert projected["opened_at"] is None and projected["latest_outcome"] is None
    assert projected["match_method"] is None and projected["open_requests"] == 0
    assert projected["given_name"] == "Ann" and projected["contact_phone"] is None


def test_priority_released_without_shielding_status_never_reads_it():
    decision = dict(FOOD_PARTNER, fields_released=["needs", "opened_at", "priority_reasons"])
    projected = project(case_of(*SHIELDING_AND_FOOD), decision)
    assert projected["priority_reasons"] and not any(
        "shielding" in reason for reason in projected["priority_reasons"]
    )
    assert projected["opened_at"] == datetime(2020, 6, 3, tzinfo=UTC)  # the request's time


def test_a_case_open_only_because_the_person_shields_is_not_for_the_food_partner():
    only_listed = case_of(ENTRY)
    assert only_listed["status"] == "OPEN" and only_listed["needs"] == ["WELFARE_CHECK"]
    assert not visible_to_recipient(only_listed, FOOD_PARTNER)
    assert visible_to_recipient(only_listed, COUNCIL)
    assert visible_to_recipient(case_of(*SHIELDING_AND_FOOD), FOOD_PARTNER)
    deny = withheld_from_view(FOOD_PARTNER)
    assert deny["allow"] is False and deny["fields_released"] == []


def test_own_data_is_derived_only_from_the_requesters_own_requests():
    case = case_of(
        request("fife", "q1", ["FOOD"], "2020-06-01T00:00:00.000+00:00"),
        request("city-of-edinburgh", "q2", ["MEDICINE"], "2020-06-02T00:00:00.000+00:00"),
    )
    assert case["needs"] == ["FOOD", "MEDICINE"]
    own = dict(COUNCIL, agreement_id="", fields_released=["needs", "opened_at"])
    projected = project(case, own)
    assert projected["needs"] == ["MEDICINE"] and projected["agreement_id"] == "own-data"
    assert projected["opened_at"] == datetime(2020, 6, 2, tzinfo=UTC)
    assert not visible_to_recipient(case, dict(own, recipient="midlothian"))


def test_a_case_without_restricted_views_releases_nothing_derived():
    case = case_of(*SHIELDING_AND_FOOD)
    del case["restricted"]
    assert project(case, FOOD_PARTNER)["needs"] == []
    assert not visible_to_recipient(case, FOOD_PARTNER)


@pytest.mark.parametrize("name", cases.DERIVED_ATTRIBUTES)
def test_each_derived_attribute_leaves_only_when_released(name):
    case = case_of(
        *SHIELDING_AND_FOOD,
        {
            "kind": "outcome",
            "event_id": "ev-o1",
            "occurred_at": "2020-06-04T00:00:00.000+00:00",
            "source_org": "city-of-edinburgh",
            "request_key": "q1",
            "data": {"need": "MEDICINE", "outcome": "NO_ANSWER"},
        },
    )
    others = [n for n in COUNCIL["fields_released"] if n != name]
    without = project(case, dict(COUNCIL, fields_released=others))
    assert without[name] in (None, [], 0), name
    assert project(case, COUNCIL)[name] not in (None, [], 0), name


def test_the_policy_is_asked_about_derived_attributes_by_name():
    fields = policy_input_record(case_of(*SHIELDING_AND_FOOD))["fields"]
    assert fields["needs"] == ["FOOD", "WELFARE_CHECK"] and fields["priority"] == "URGENT"
    assert "latest_outcome" not in fields  # none yet: not present, so not released
