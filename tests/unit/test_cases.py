"""Folding a person's events into a support case: lifecycle, needs and priority."""

import pytest

from accord.pipeline import cases

RULES = cases.load_priority_rules()


def entry(status="SHIELDING", at="2020-06-01T00:00:00.000+00:00", event_id="e1"):
    return {
        "kind": "entry",
        "event_id": event_id,
        "occurred_at": at,
        "source_org": "nhs-lothian",
        "match_method": "chi",
        "data": {"shielding_status": status, "council_area": "City of Edinburgh"},
    }


def request(needs, urgency="ROUTINE", at="2020-06-02T00:00:00.000+00:00", key="rq1", alone=None):
    return {
        "kind": "request",
        "event_id": f"ev-{key}",
        "occurred_at": at,
        "request_key": key,
        "source_org": "city-of-edinburgh",
        "match_method": "probabilistic",
        "data": {
            "request_id": key,
            "needs": needs,
            "urgency": urgency,
            "lives_alone": alone,
            "council_area": "City of Edinburgh",
        },
    }


def outcome(kind, need=None, key="rq1", at="2020-06-03T00:00:00.000+00:00", event_id="o1"):
    return {
        "kind": "outcome",
        "event_id": event_id,
        "occurred_at": at,
        "request_key": key,
        "source_org": "food-bank",
        "data": {"outcome": kind, "need": need},
    }


def consent(change, at="2020-06-04T00:00:00.000+00:00"):
    return {
        "kind": "consent",
        "event_id": "c1",
        "occurred_at": at,
        "source_org": "nhs-lothian",
        "data": {"change": change, "scope": "ALL_SHARING"},
    }


def fold(*events):
    state = cases.new_state("pk")
    for event in events:
        state = cases.apply_event(state, event)
    return cases.build_case(state, RULES)


def test_no_case_without_a_need_source():
    assert fold(consent("OPT_OUT")) is None


def test_a_shielding_person_is_owed_a_welfare_check():
    case = fold(entry())
    assert case["status"] == "OPEN" and case["needs"] == ["WELFARE_CHECK"]
    assert case["source"]["dataset"] == "shielding-list"


def test_a_person_not_shielding_without_requests_has_a_closed_case():
    case = fold(entry(status="NOT_SHIELDING"))
    assert case["status"] == "CLOSED" and case["closed_reason"] == "no open needs"


@pytest.mark.parametrize(
    ("events", "needs", "status"),
    [
        ([request(["FOOD", "MEDICINE"])], ["FOOD", "MEDICINE"], "OPEN"),
        ([request(["FOOD", "MEDICINE"]), outcome("DELIVERED", "FOOD")], ["MEDICINE"], "OPEN"),
        ([request(["FOOD"]), outcome("NO_ANSWER", "FOOD")], ["FOOD"], "OPEN"),
        ([request(["FOOD", "MEDICINE"]), outcome("NEEDS_MET")], [], "CLOSED"),
        ([request(["FOOD"]), outcome("DECLINED")], [], "CLOSED"),
    ],
)
def test_outcomes_meet_needs(events, needs, status):
    case = fold(*events)
    assert (case["needs"], case["status"]) == (needs, status)


def test_opting_out_closes_the_case_and_marks_the_subject():
    case = fold(entry(), request(["FOOD"]), consent("OPT_OUT"))
    assert case["status"] == "CLOSED" and case["subject"] == {"opted_out": True}


def test_opting_back_in_later_reopens_it():
    case = fold(entry(), consent("OPT_OUT"), consent("OPT_IN", at="2020-06-05T00:00:00.000+00:00"))
    assert case["status"] == "OPEN"


def test_applying_the_same_events_twice_changes_nothing():
    events = [entry(), request(["FOOD"]), outcome("DELIVERED", "FOOD")]
    assert fold(*events) == fold(*events, *events)


@pytest.mark.parametrize(
    ("events", "priority", "reason"),
    [
        ([request(["FOOD"], urgency="IMMEDIATE")], "URGENT", "urgent: urgent unmet food need"),
        ([request(["FINANCIAL"])], "MEDIUM", "medium: unmet financial need"),
        (
            [entry(), request(["SOCIAL_ISOLATION"], alone=True)],
            "HIGH",
            "high: shielding and living alone",
        ),
        (
            [entry(), request(["SOCIAL_ISOLATION"], at="2020-06-05T00:00:00.000+00:00")],
            "HIGH",
            "high: no successful contact for 3 days or more",
        ),
        ([request(["SOCIAL_ISOLATION"])], "ROUTINE", None),
    ],
)
def test_priority_comes_with_its_reasons(events, priority, reason):
    case = fold(*events)
    assert case["priority"] == priority
    assert (reason in case["priority_reasons"]) if reason else case["priority_reasons"] == []


def test_the_nhs_entry_is_the_source_when_present_else_the_latest_request():
    assert fold(request(["FOOD"]))["source"]["dataset"] == "support-request"
    assert fold(request(["FOOD"]), entry())["source"]["dataset"] == "shielding-list"


def test_unknown_priority_conditions_are_refused(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: X, condition: astrology, priority: HIGH, reason: r}\n")
    with pytest.raises(ValueError, match="unknown condition astrology"):
        cases.load_priority_rules(rules)
