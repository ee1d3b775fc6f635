"""Who may change a case: consent per controller, a board's entry its own, old states read.

Pure functions of `accord.pipeline.cases`; the authority check itself (who may publish a
dataset at all) is `accord.pipeline.authority` and the Rego package accord.authority."""

import copy
import itertools

import pytest

from accord.pipeline import cases

RULES = cases.load_priority_rules()
AT = "2020-06-{:02d}T00:00:00.000+00:00"
LOTHIAN, FIFE, EDINBURGH, CHARITY = "nhs-lothian", "nhs-fife", "city-of-edinburgh", "a-charity"


def entry(org=LOTHIAN, day=1, status="SHIELDING", council="City of Edinburgh", event_id=None):
    return {
        "kind": "entry",
        "event_id": event_id or f"en-{org}-{day}",
        "occurred_at": AT.format(day),
        "source_org": org,
        "match_method": "chi",
        "data": {
            "shielding_status": status,
            "council_area": council,
            "given_name": f"Given-{org}",
        },
    }


def request(day=2):
    return {
        "kind": "request",
        "event_id": "rq-1",
        "occurred_at": AT.format(day),
        "request_key": "R1",
        "source_org": EDINBURGH,
        "match_method": "chi",
        "data": {"request_id": "R1", "needs": ["FOOD"], "urgency": "ROUTINE"},
    }


def consent(org, change, day):
    return {
        "kind": "consent",
        "event_id": f"c-{org}-{day}",
        "occurred_at": AT.format(day),
        "source_org": org,
        "data": {"change": change, "scope": "ALL_SHARING"},
    }


def state_of(*events, key="pk"):
    state = cases.new_state(key)
    for event in events:
        state = cases.apply_event(state, copy.deepcopy(event))
    return state


def case_of(*events):
    return cases.build_case(state_of(*events), RULES)


# --- consent per controller -----------------------------------------------------------

CONSENT_CASES = {
    "the board's opt-out closes the case": ([(LOTHIAN, "OPT_OUT", 5)], True),
    "another controller's later opt-in does not lift it": (
        [(LOTHIAN, "OPT_OUT", 5), (EDINBURGH, "OPT_IN", 6)],
        True,
    ),
    "the charity's opt-in a day later does not either": (
        [(LOTHIAN, "OPT_OUT", 5), (CHARITY, "OPT_IN", 6)],
        True,
    ),
    "the same controller's later opt-in lifts it": (
        [(LOTHIAN, "OPT_OUT", 5), (LOTHIAN, "OPT_IN", 7)],
        False,
    ),
    "an earlier opt-in by the same controller does not": (
        [(LOTHIAN, "OPT_OUT", 5), (LOTHIAN, "OPT_IN", 4)],
        True,
    ),
    "an objection wins over another's consent recorded later": (
        [(EDINBURGH, "OPT_IN", 3), (LOTHIAN, "WITHDRAW_CONSENT", 4), (EDINBURGH, "OPT_IN", 9)],
        True,
    ),
    "an objection wins over another's consent recorded earlier": (
        [(LOTHIAN, "OPT_IN", 8), (EDINBURGH, "OPT_OUT", 4)],
        True,
    ),
    "an unknown change counts as an objection": ([(EDINBURGH, "UNKNOWN", 4)], True),
    "opt-ins only: shared": ([(LOTHIAN, "OPT_IN", 4), (EDINBURGH, "OPT_IN", 5)], False),
}


@pytest.mark.parametrize("changes, closed", CONSENT_CASES.values(), ids=CONSENT_CASES.keys())
def test_consent_is_per_controller_and_an_objection_wins(changes, closed):
    events = [entry(), request(), *(consent(*change) for change in changes)]
    for order in itertools.permutations(events):  # arrival order does not matter
        case = case_of(*order)
        assert case["subject"]["opted_out"] is closed
        assert (case["status"] == "CLOSED") is closed
        if closed:
            assert case["closed_reason"] == "opted out or withdrew consent"


def test_each_controllers_latest_change_is_kept_under_its_own_id():
    state = state_of(
        entry(), consent(LOTHIAN, "OPT_OUT", 5), consent(CHARITY, "OPT_IN", 6), request()
    )
    assert {org: c["change"] for org, c in state["consents"].items()} == {
        LOTHIAN: "OPT_OUT",
        CHARITY: "OPT_IN",
    }
    assert "consent" not in state


def test_consent_changes_applied_twice_leave_the_same_state():
    events = [entry(), consent(LOTHIAN, "OPT_OUT", 5), consent(EDINBURGH, "OPT_IN", 6)]
    once = state_of(*events)
    twice = state_of(*events, *events)
    assert once == twice


# --- a board's entry is never replaced by another organisation's ------------------------


def test_another_organisations_entry_never_replaces_the_boards():
    board = entry(LOTHIAN, day=1)
    other = entry(CHARITY, day=3, status="NOT_SHIELDING")
    state = state_of(board, other)
    assert state["entries"][LOTHIAN]["fields"]["shielding_status"] == "SHIELDING"
    assert state["entries"][LOTHIAN]["event_id"] == board["event_id"]
    # The board's own later record does change its entry.
    later = entry(LOTHIAN, day=4, status="NOT_SHIELDING")
    assert state_of(board, other, later)["entries"][LOTHIAN]["event_id"] == later["event_id"]


def test_a_person_on_two_boards_lists_is_decided_on_the_most_recent_entry():
    lothian = entry(LOTHIAN, day=1, council="City of Edinburgh")
    fife = entry(FIFE, day=3, council="Fife")
    for order in itertools.permutations([lothian, fife, request()]):
        state = state_of(*order)
        assert set(state["entries"]) == {LOTHIAN, FIFE}
        assert state["entry"]["source_org"] == FIFE
        case = cases.build_case(state, RULES)
        assert case["source"]["org"] == FIFE
    # Lothian's later record makes its entry the case's again; Fife's stays as it was.
    state = state_of(lothian, fife, entry(LOTHIAN, day=5))
    assert state["entry"]["source_org"] == LOTHIAN
    assert state["entries"][FIFE]["event_id"] == fife["event_id"]


def test_equal_dates_on_two_boards_pick_the_same_entry_in_any_order():
    a, b = entry(LOTHIAN, day=2), entry(FIFE, day=2)
    assert state_of(a, b)["entry"]["source_org"] == state_of(b, a)["entry"]["source_org"]


def test_a_closed_case_strips_every_boards_entry():
    state = state_of(
        entry(LOTHIAN, day=1), entry(FIFE, day=2, council="Fife"), consent(LOTHIAN, "OPT_OUT", 5)
    )
    kept = cases.retained_state(state)
    for each in kept["entries"].values():
        assert "given_name" not in each["fields"] and each["stripped"]
    assert "given_name" not in kept["entry"]["fields"]


# --- states stored before: a single consent, only `entry` -------------------------------


def old_state(change="OPT_OUT", day=5):
    """A state as the cases changelog held it before consent was per controller."""
    return {
        "person_key": "pk",
        "entry": {
            "occurred_at": AT.format(1),
            "source_org": LOTHIAN,
            "event_id": "en-old",
            "fields": {"shielding_status": "SHIELDING", "council_area": "City of Edinburgh"},
        },
        "requests": {},
        "outcomes": {},
        "consent": {"occurred_at": AT.format(day), "change": change, "scope": "ALL_SHARING"},
        "match_method": "chi",
    }


def test_an_old_state_loads_and_decides_as_before():
    case = cases.build_case(old_state(), RULES)
    assert case["status"] == "CLOSED" and case["subject"]["opted_out"]
    assert cases.build_case(old_state("OPT_IN"), RULES)["status"] == "OPEN"


def test_an_old_state_takes_new_events_in_the_new_shape():
    joined = cases.join(
        [("pk", entry(FIFE, day=2, council="Fife"))], lambda key: old_state(), RULES
    )
    state = joined.states["pk"]
    assert "consent" not in state
    assert state["consents"][cases.UNATTRIBUTED]["change"] == "OPT_OUT"
    assert set(state["entries"]) == {LOTHIAN, FIFE}
    assert joined.views[0]["subject"]["opted_out"] is True


def test_an_unattributed_opt_out_is_lifted_by_a_controllers_later_opt_in():
    stored = old_state("OPT_OUT", day=5)
    earlier = cases.join([("pk", consent(EDINBURGH, "OPT_IN", 4))], lambda key: stored, RULES)
    assert earlier.views[0]["subject"]["opted_out"] is True
    later = cases.join([("pk", consent(LOTHIAN, "OPT_IN", 6))], lambda key: stored, RULES)
    assert later.views[0]["subject"]["opted_out"] is False


# --- merges carry every controller's consent --------------------------------------------


def provisional_request():
    event = request()
    return {**event, "match_method": "probabilistic"}


def test_a_merge_carries_every_controllers_consent_to_the_target():
    provisional = state_of(
        provisional_request(),
        consent(LOTHIAN, "OPT_OUT", 5),
        consent(EDINBURGH, "OPT_IN", 6),
        key="prov",
    )
    moved = [e for e in cases.events_of(provisional) if e["kind"] == "consent"]
    assert sorted((e["source_org"], e["data"]["change"]) for e in moved) == [
        (EDINBURGH, "OPT_IN"),
        (LOTHIAN, "OPT_OUT"),
    ]
    target = state_of(entry(), *moved, key="P1")
    assert set(target["consents"]) == {LOTHIAN, EDINBURGH}
    assert cases.build_case(target, RULES)["subject"]["opted_out"] is True


def test_a_merge_read_again_leaves_the_targets_consents_as_they_were():
    provisional = state_of(provisional_request(), consent(LOTHIAN, "OPT_OUT", 5), key="prov")
    stored = {"prov": provisional}
    merge = cases.merge_event("prov", "P1", {"occurred_at": AT.format(6), "source_org": LOTHIAN})
    first = cases.join([("prov", merge)], stored.get, RULES)
    stored.update(first.states)
    people = {"P1": state_of(entry(), key="P1")}
    for _ in range(2):  # the moved events, delivered twice
        for key, event in first.person_events:
            people.update(cases.join([(key, event)], people.get, RULES).states)
    target = people["P1"]
    again = cases.join([("prov", merge)], stored.get, RULES)
    assert again.person_events == first.person_events
    assert target["consents"][LOTHIAN]["change"] == "OPT_OUT"
    assert cases.build_case(target, RULES)["status"] == "CLOSED"


def test_an_old_merged_states_single_consent_moves_as_unattributed():
    stored = {**old_state(), "requests": {}, "entry": None, "merged_into": "P1"}
    moved = [e for e in cases.events_of(stored) if e["kind"] == "consent"]
    assert [e["source_org"] for e in moved] == [cases.UNATTRIBUTED]
