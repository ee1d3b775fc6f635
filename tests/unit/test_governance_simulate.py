"""The simulation's comparison of current and candidate decisions (no processes): flips
named by the agreement and clause of the deny behind them, fields newly shared or
withheld, records held now that the candidate would withdraw, one person before and
after."""

from __future__ import annotations

from accord.governance.commands import simulation_lines
from accord.governance.simulate import Simulation, compare

ITEMS = [{"record_id": "r1", "subject_key": "k1"}, {"record_id": "r2", "subject_key": "k2"}]


def d(record_id, recipient, allow, fields=(), agreement="DSA-900", clause=None, reason=""):
    return {
        "record_id": record_id,
        "recipient": recipient,
        "agreement_id": agreement,
        "allow": allow,
        "fields_released": list(fields),
        "clause": clause if clause is not None else ("2.1" if allow else "4.1"),
        "reasons": [reason or ("shared" if allow else "denied: lives elsewhere")],
    }


SUSPENDED = "denied: agreement DSA-900 is suspended, not active: lawfulness, DSA-900"


def test_flips_and_field_changes_are_counted_with_the_deny_behind_them():
    sim = Simulation()
    current = [
        d("r1", "north", True, ["given_name", "postcode"]),
        d("r1", "south", False, clause="4.1", reason="denied: lives in North"),
        d("r2", "north", True, ["given_name"]),
        d("r2", "south", False),
    ]
    candidate = [
        d("r1", "north", True, ["given_name"]),  # postcode newly withheld
        d("r1", "south", True, ["given_name"]),  # deny -> allow
        d("r2", "north", False, clause="", reason=SUSPENDED),  # allow -> deny
        d("r2", "south", False),  # unchanged
    ]
    compare(sim, ITEMS, current, candidate)
    assert sim.decisions == 4 and sim.unchanged == 1
    # deny→allow names the deny it lifts: the current decision's clause and reason
    lifted = sim.flips[("south", "deny→allow", "DSA-900", "4.1")]
    assert lifted.examples == ["k1"] and lifted.reason == "denied: lives in North"
    # allow→deny names the candidate's deny
    stopped = sim.flips[("north", "allow→deny", "DSA-900", "")]
    assert stopped.examples == ["k2"] and stopped.reason == SUSPENDED
    assert sim.fields[("north", "postcode", "newly withheld")].count == 1
    assert sim.fields[("north", "given_name", "newly withheld")].examples == ["k2"]
    assert sim.fields[("south", "given_name", "newly shared")].examples == ["k1"]
    flips = sim.as_dict()["flips"]
    assert {
        "recipient": "south",
        "flip": "deny→allow",
        "agreement_id": "DSA-900",
        "clause": "4.1",
        "reason": "denied: lives in North",
        "count": 1,
        "examples": ["k1"],
    } in flips


def test_a_recipient_only_one_side_knows_counts_as_deny_there():
    sim = Simulation()
    compare(
        sim, ITEMS, [d("r1", "", False)], [d("r1", "new-partner", True, ["given_name"], "DSA-901")]
    )
    [(key, change)] = sim.flips.items()
    assert key[:3] == ("new-partner", "deny→allow", "DSA-901")
    assert change.count == 1 and change.reason == "no agreement names this recipient"
    assert sim.decisions == 1  # the "no agreement" deny names no recipient


def test_denied_fields_never_count_as_shared():
    sim = Simulation()
    compare(sim, ITEMS, [d("r1", "x", False, ["given_name"])], [d("r1", "x", False)])
    assert sim.unchanged == 1 and not sim.fields


def test_records_held_now_that_the_candidate_denies_are_counted_as_withdrawn():
    sim = Simulation(held_known=True)
    held = {("k1", "north"), ("k2", "north"), ("k2", "south")}
    current = [d("r1", "north", True, ["a"]), d("r2", "north", True, ["a"]), d("r2", "south", True)]
    candidate = [
        d("r1", "north", False, reason=SUSPENDED),
        d("r2", "north", True, ["a"]),  # still shared: nothing withdrawn
        d("r2", "south", False, agreement="DSA-902", reason=SUSPENDED),
    ]
    compare(sim, ITEMS, current, candidate, held)
    assert {k: c.count for k, c in sim.retracted.items()} == {
        ("north", "DSA-900"): 1,
        ("south", "DSA-902"): 1,
    }
    lines = simulation_lines(sim, "per the audit index")
    assert "records held now that would be withdrawn: 2 (per the audit index)" in lines
    # without the index the count is said to be unknown, not 0
    unknown = Simulation()
    compare(unknown, ITEMS, current, candidate)
    assert unknown.as_dict()["retracted"] is None
    assert any("would be withdrawn: unknown" in line for line in simulation_lines(unknown, "x"))


def test_one_person_before_and_after_names_no_value():
    sim = Simulation(person="k1" + "0" * 62)
    items = [{"record_id": "r1", "subject_key": sim.person}]
    compare(
        sim,
        items,
        [d("r1", "north", True, ["given_name", "postcode"])],
        [d("r1", "north", False, reason=SUSPENDED)],
    )
    assert sim.person_found
    before, after = sim.person_decisions["north"]
    assert before.allow and before.fields == ("given_name", "postcode")
    assert not after.allow and after.reason == SUSPENDED
    lines = simulation_lines(sim, "per the audit index")
    assert f"person {sim.person[:16]}… (pseudonymous key):" in lines
    assert any("now" in line and "given_name, postcode" in line for line in lines)
    assert any("candidate" in line and SUSPENDED in line for line in lines)
    assert sim.as_dict()["person"]["recipients"][0]["candidate"]["allow"] is False
    nobody = Simulation(person="f" * 64)
    compare(nobody, items, [d("r1", "north", True)], [d("r1", "north", True)])
    assert not nobody.person_found
    assert "  no open case for this person in the retained input" in simulation_lines(nobody, "")
