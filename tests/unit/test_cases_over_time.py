"""Time passing with no new event, and outcomes recorded against a case: priority rising
by the rules' timed conditions (with an injected clock), the bounded hold of outcomes
that came before their request, and a case-level outcome's checks."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from accord.pipeline import cases, stages, timers
from accord.pipeline.intake import Incoming
from accord.pipeline.removal import removal_code

RULES = cases.load_priority_rules()
OPENED = "2026-04-01T09:00:00.000+00:00"
PK = "a" * 64


def at(days: float) -> datetime:
    return datetime.fromisoformat(OPENED) + timedelta(days=days)


def entry(status="SHIELDING", when=OPENED):
    return {
        "kind": "entry",
        "event_id": "e1",
        "occurred_at": when,
        "source_org": "nhs-lothian",
        "match_method": "chi",
        "data": {"shielding_status": status, "council_area": "City of Edinburgh"},
    }


def request(needs, key="rq1", when=OPENED):
    return {
        "kind": "request",
        "event_id": f"ev-{key}",
        "occurred_at": when,
        "request_key": key,
        "source_org": "city-of-edinburgh",
        "data": {"request_id": key, "needs": needs, "urgency": "ROUTINE", "lives_alone": False},
    }


def case_outcome(outcome, need, when, event_id="co1", org="city-of-edinburgh"):
    return {
        "kind": "outcome",
        "event_id": event_id,
        "occurred_at": when,
        "request_key": None,
        "person_key": PK,
        "case_addressed": True,
        "origin": "partner.city-of-edinburgh.support-outcome.v1/0/17",
        "source_org": org,
        "data": {"outcome": outcome, "need": need, "request_id": "AAAA-BBBB-CC"},
    }


def state_of(*events):
    state = cases.new_state(PK)
    for event in events:
        state = cases.apply_event(state, event)
    return state


def test_a_shielding_person_nobody_reached_rises_to_high_on_day_3_without_a_new_event():
    state = state_of(entry())
    assert cases.build_case(state, RULES)["priority"] == "ROUTINE"
    # Day 2: nothing due. Day 3: the timed rule P2 has come due.
    assert timers.due_reassessments([state], RULES, at(2.9)) == []
    due = timers.due_reassessments([state], RULES, at(3))
    assert [key for key, _ in due] == [PK]
    event = due[0][1]
    assert event["kind"] == "reassess" and event["occurred_at"] == timers.iso(at(3))
    reassessed = cases.apply_event(state, event)
    case = cases.build_case(reassessed, RULES)
    assert case["priority"] == "HIGH"
    assert "high: no successful contact for 3 days or more" in case["priority_reasons"]
    assert case["as_of"] == timers.iso(at(3))
    # Assessed as of day 3: nothing is due again later, the reassessment is idempotent.
    assert timers.due_reassessments([reassessed], RULES, at(30)) == []
    assert cases.apply_event(reassessed, event) == reassessed


def test_successful_contact_means_no_reassessment_and_a_failed_call_does_not_stop_it():
    answered = state_of(entry(), case_outcome("DELIVERED", "WELFARE_CHECK", OPENED))
    assert timers.due_reassessments([answered], RULES, at(10)) == []
    no_answer = state_of(entry(), case_outcome("NO_ANSWER", "WELFARE_CHECK", timers.iso(at(1))))
    assert [k for k, _ in timers.due_reassessments([no_answer], RULES, at(3))] == [PK]


def test_closed_merged_and_unknown_states_are_never_reassessed():
    closed = state_of(entry(status="NOT_SHIELDING"))
    merged = {**state_of(entry()), "merged_into": "b" * 64}
    assert timers.due_reassessments([closed, merged, None, {}], RULES, at(10)) == []


def test_a_reassessment_of_a_person_without_a_case_or_merged_is_dropped_by_the_join():
    event = timers.reassess_event(PK, at(3))
    joined = cases.join([(PK, event)], lambda key: None, RULES)
    assert joined.states == {} and joined.views == []
    merged = {**state_of(entry()), "merged_into": "b" * 64}
    joined = cases.join([(PK, event)], lambda key: merged, RULES)
    assert joined.states == {} and joined.person_events == []


def test_the_rules_days_are_data(tmp_path):
    rules = yaml.safe_load(cases.PRIORITY_RULES_FILE.read_text())
    for rule in rules["rules"]:
        if rule["condition"] == "no_successful_contact":
            rule["days"] = 0.5
    path = tmp_path / "priority.yaml"
    path.write_text(yaml.safe_dump(rules))
    short = cases.load_priority_rules(path)
    state = state_of(entry())
    assert timers.due_reassessments([state], short, at(0.4)) == []
    assert len(timers.due_reassessments([state], short, at(0.5))) == 1
    rules["rules"][1].pop("days")
    path.write_text(yaml.safe_dump(rules))
    with pytest.raises(ValueError, match="needs `days`"):
        cases.load_priority_rules(path)


def test_the_join_stage_applies_a_reassessment_and_hands_the_case_to_the_gate():
    stored = state_of(entry())
    out = stages.join([(PK.encode(), timers.reassess_event(PK, at(4)))], lambda k: stored, RULES)
    (view,) = out.views
    assert view["priority"] == "HIGH" and view["status"] == "OPEN"


# --- outcomes recorded against a case by its reference -------------------------------


def test_a_welfare_check_outcome_by_case_applies_from_a_holder():
    stored = state_of(entry())
    event = case_outcome("NO_ANSWER", "WELFARE_CHECK", timers.iso(at(1)))
    joined = cases.join([(PK, event)], lambda k: stored, RULES, lambda k: ["city-of-edinburgh"])
    assert joined.rejected == []
    (view,) = joined.views
    assert view["latest_outcome"] == "NO_ANSWER" and view["needs"] == ["WELFARE_CHECK"]
    done = case_outcome("NEEDS_MET", "WELFARE_CHECK", timers.iso(at(2)), event_id="co2")
    joined = cases.join(
        [(PK, done)], lambda k: joined.states[PK], RULES, lambda k: ["city-of-edinburgh"]
    )
    assert joined.views[0]["status"] == "CLOSED"


def test_a_case_outcome_answers_the_need_on_every_request():
    stored = state_of(request(["FOOD", "MEDICINE"]), request(["FOOD"], key="rq2"))
    event = case_outcome("DELIVERED", "FOOD", timers.iso(at(1)))
    joined = cases.join([(PK, event)], lambda k: stored, RULES, lambda k: ["city-of-edinburgh"])
    assert joined.views[0]["needs"] == ["MEDICINE"]


@pytest.mark.parametrize(
    ("stored", "holders", "event", "code"),
    [
        (None, ["city-of-edinburgh"], case_outcome("NO_ANSWER", None, OPENED), "no_such_case"),
        (
            state_of(entry()),
            ["midlothian"],
            case_outcome("NO_ANSWER", None, OPENED),
            "not_case_holder",
        ),
        (
            state_of(entry(status="NOT_SHIELDING")),
            ["city-of-edinburgh"],
            case_outcome("NO_ANSWER", None, OPENED),
            "case_closed",
        ),
        (
            state_of(entry()),
            ["city-of-edinburgh"],
            case_outcome("DELIVERED", "FOOD", OPENED),
            "need_not_open",
        ),
    ],
)
def test_a_case_outcome_that_matches_no_held_case_goes_to_the_publishers_rejects(
    stored, holders, event, code
):
    out = stages.join([(PK.encode(), event)], lambda k: stored, RULES, lambda k: holders)
    assert out.views == [] and out.state == {}
    ((message, reason_code, reason, field, _),) = out.rejects
    assert reason_code == code and field == "case_key"
    assert message.topic == "partner.city-of-edinburgh.support-outcome.v1"
    assert (message.partition, message.offset) == (0, 17)
    assert PK not in reason  # no key, no person: organisations and needs only


def test_a_case_outcome_read_again_after_it_closed_the_need_is_not_rejected():
    stored = state_of(request(["FOOD"]))
    event = case_outcome("DELIVERED", "FOOD", OPENED)
    first = cases.join([(PK, event)], lambda k: stored, RULES, lambda k: ["city-of-edinburgh"])
    again = cases.join([(PK, event)], lambda k: first.states[PK], RULES, lambda k: [])
    assert again.rejected == []


def test_intake_routes_a_case_outcome_straight_to_the_person():
    envelope = case_outcome("NO_ANSWER", "WELFARE_CHECK", OPENED)
    message = Incoming("partner.city-of-edinburgh.support-outcome.v1", 0, 17, b"k", b"v")
    out = stages.route_checked([(message, envelope)], [], {}, "secret")
    assert [(topic, key) for topic, key, _ in out.records] == [("person-events", PK.encode())]


# --- the bounded hold of outcomes that came before their request ----------------------


def request_outcome(event_id="o1"):
    return {
        "kind": "outcome",
        "event_id": event_id,
        "occurred_at": OPENED,
        "request_key": "rk1",
        "origin": "partner.community-food-network.support-outcome.v1/2/5",
        "source_org": "community-food-network",
        "data": {
            "outcome": "DELIVERED",
            "need": "FOOD",
            "request_id": "R-1",
            "request_org": "city-of-edinburgh",
        },
    }


def test_an_outcome_held_past_the_hold_goes_to_its_publishers_rejects_with_the_reason():
    hold = timedelta(hours=24)
    out = stages.route_outcomes([(b"rk1", request_outcome())], lambda k: None, timers.iso(at(0)))
    held = out.state[b"rk1"]
    assert out.counts["held"] == 1 and out.records == []
    assert timers.expired_holds([held], at(0.9), hold) == []
    ((key, expire),) = timers.expired_holds([held], at(1.1), hold)
    assert key == "rk1"
    out = stages.route_outcomes([(b"rk1", expire)], lambda k: held, timers.iso(at(1.1)))
    ((message, code, reason, field, _),) = out.rejects
    assert code == "no_such_request" and field == "request_id"
    assert "city-of-edinburgh" in reason and "R-1" not in reason
    assert message.topic == "partner.community-food-network.support-outcome.v1"
    assert out.state[b"rk1"] is None and out.records == []


def test_an_owner_note_before_the_expiry_releases_the_held_outcome_and_the_expiry_does_nothing():
    out = stages.route_outcomes([(b"rk1", request_outcome())], lambda k: None, timers.iso(at(0)))
    held = out.state[b"rk1"]
    note = stages.owner_note("rk1", PK)
    expire = timers.expire_message("rk1", at(5))
    out = stages.route_outcomes(
        [(b"rk1", note), (b"rk1", expire)], lambda k: held, timers.iso(at(6))
    )
    assert out.rejects == []
    ((topic, key, value),) = out.records
    assert topic == "person-events" and key == PK.encode() and "held_at" not in value
    assert timers.expired_holds([out.state[b"rk1"]], at(10), timedelta(hours=1)) == []


# --- why a person left a list ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "cause", "status", "code"),
    [
        ("no open needs", None, None, "closed"),
        (cases.MERGED_REASON, None, None, "merged"),
        ("opted out or withdrew consent", None, None, "opted_out"),
        (
            "denied: agreement DSA-015 is suspended",
            {"agreement_id": "DSA-015"},
            "suspended",
            "agreement_suspended",
        ),
        (
            "denied: agreement DSA-015 expired at ...",
            {"agreement_id": "DSA-015"},
            "active",
            "agreement_expired",
        ),
        (
            "withheld: no open need derived from ...",
            {"agreement_id": "DSA-015"},
            "active",
            "closed",
        ),
        (
            "denied: not resident in the recipient's area",
            {"agreement_id": "DSA-015"},
            "active",
            "no_longer_shared",
        ),
    ],
)
def test_each_removal_says_only_what_the_recipient_may_know(reason, cause, status, code):
    agreements = {"DSA-015": {"status": status}} if status else {}
    assert removal_code(reason, cause, agreements) == code


def test_the_timers_never_read_the_clock_themselves():
    now = datetime(2031, 1, 1, tzinfo=UTC)
    assert timers.reassess_event(PK, now)["occurred_at"] == "2031-01-01T00:00:00.000+00:00"
