"""The simulation's comparison of current and candidate decisions (no processes)."""

from __future__ import annotations

from accord.governance.simulate import Simulation, compare

ITEMS = [{"record_id": "r1", "subject_key": "k1"}, {"record_id": "r2", "subject_key": "k2"}]


def d(record_id, recipient, allow, fields=()):
    return {
        "record_id": record_id,
        "recipient": recipient,
        "allow": allow,
        "fields_released": list(fields),
    }


def test_flips_and_field_changes_are_counted_with_examples():
    sim = Simulation()
    current = [
        d("r1", "north", True, ["given_name", "postcode"]),
        d("r1", "south", False),
        d("r2", "north", True, ["given_name"]),
        d("r2", "south", False),
    ]
    candidate = [
        d("r1", "north", True, ["given_name"]),  # postcode newly withheld
        d("r1", "south", True, ["given_name"]),  # deny -> allow
        d("r2", "north", False),  # allow -> deny
        d("r2", "south", False),  # unchanged
    ]
    compare(sim, ITEMS, current, candidate)
    assert sim.decisions == 4 and sim.unchanged == 1
    assert sim.flips[("south", "deny→allow")].examples == ["k1"]
    assert sim.flips[("north", "allow→deny")].examples == ["k2"]
    assert sim.fields[("north", "postcode", "newly withheld")].count == 1
    assert sim.fields[("north", "given_name", "newly withheld")].examples == ["k2"]
    assert sim.fields[("south", "given_name", "newly shared")].examples == ["k1"]
    report = sim.as_dict()
    assert {"recipient": "south", "flip": "deny→allow", "count": 1, "examples": ["k1"]} in report[
        "flips"
    ]


def test_a_recipient_only_one_side_knows_counts_as_deny_there():
    sim = Simulation()
    compare(sim, ITEMS, [d("r1", "", False)], [d("r1", "new-partner", True, ["given_name"])])
    assert sim.flips[("new-partner", "deny→allow")].count == 1
    assert sim.decisions == 1  # the "no agreement" deny names no recipient


def test_denied_fields_never_count_as_shared():
    sim = Simulation()
    compare(sim, ITEMS, [d("r1", "x", False, ["given_name"])], [d("r1", "x", False)])
    assert sim.unchanged == 1 and not sim.fields
