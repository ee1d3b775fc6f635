"""Merges under at-least-once replay: the identity and join stages as pure functions.

A small model of the worker's two stages (no Kafka): the identity stage resolves each
event in its block and emits person events and merges; the join stage folds person
events into cases and re-sends moved and forwarded events to its own input, as
hub.person-events does. A crash writes a batch's state (the changelog) and some or none
of its outputs, without committing its offsets; the batch is then read again. Every run,
whatever the crashes, must end with the fault-free run's cases and states.
"""

from __future__ import annotations

import random

import pytest

from accord.core.topics import PERSON_EVENTS
from accord.pipeline import cases, stages
from accord.pipeline.identity import resolve

RULES = cases.load_priority_rules()
SECRET = "s"
AT = "2020-06-0{}T00:00:00.000+00:00"

PEOPLE = [
    ("Margaret", "Peggy", "MacLeod", "1950-03-14", "EH1 1AA", "12 High Street"),
    ("William", "Bill", "Grant", "1948-07-02", "EH21 6AA", "3 Mill Lane"),
    ("Elizabeth", "Betty", "Ross", "1950-03-14", "EH54 6AA", "9 Station Road"),
    ("Robert", "Bob", "Reid", "1961-11-30", "EH22 1AA", "1 Church Wynd"),
]


def identity_events() -> list[tuple[str, dict]]:
    """(block key, envelope): for each person a request without CHI (a nickname, a short
    street) first, then the board's entry with the CHI key, then a second request."""
    out = []
    for n, (given, nick, family, dob, postcode, street) in enumerate(PEOPLE):
        person = {
            "given_name": given,
            "family_name": family,
            "date_of_birth": dob,
            "postcode": postcode,
            "address_line1": street,
        }
        form = dict(person, given_name=nick, address_line1=street.replace("Street", "St"))
        request = {
            "kind": "request",
            "dataset": "support-request",
            "event_id": f"rq-{n}",
            "request_key": f"R{n}",
            "person_key": None,
            "source_org": "city-of-edinburgh",
            "occurred_at": AT.format(2),
            "data": {**form, "request_id": f"R{n}", "needs": ["FOOD"], "urgency": "ROUTINE"},
        }
        entry = {
            "kind": "entry",
            "dataset": "shielding-list",
            "event_id": f"en-{n}",
            "request_key": None,
            "person_key": f"P{n}",
            "source_org": "nhs-lothian",
            "occurred_at": AT.format(1),
            "match_method": "chi",
            "data": {**person, "shielding_status": "SHIELDING", "council_area": "x"},
        }
        again = dict(request, event_id=f"rq2-{n}", request_key=f"S{n}")
        again["data"] = dict(request["data"], request_id=f"S{n}", needs=["MEDICINE"])
        out += [(dob, request), (dob, entry), (dob, again)]
    return out


class Pipeline:
    """The identity and join stages (`pipeline.stages`) with their state, logs and
    committed offsets."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.source = identity_events()
        self.blocks: dict[str, list] = {}
        self.person_log: list[tuple[str, dict]] = []
        self.states: dict[str, dict] = {}
        self.cases: dict[str, dict] = {}  # hub.cases, compacted by case key
        self.committed = {"identity": 0, "join": 0}
        self.steps = 0

    def identity_batch(self, crash: float | None) -> None:
        start = self.committed["identity"]
        batch = self.source[start : start + self.batch]
        out = stages.match(
            [(key.encode(), dict(envelope)) for key, envelope in batch],
            lambda key: self.blocks.get(key.decode()),
            SECRET,
        )
        self.blocks.update({key.decode(): people for key, people in out.state.items()})
        outputs = [
            (key.decode(), value) for topic, key, value in out.records if topic == PERSON_EVENTS
        ]
        if crash is not None:  # some outputs landed, the offsets were not committed
            self.person_log += outputs[: int(len(outputs) * crash)]
            return
        self.person_log += outputs
        self.committed["identity"] = start + len(batch)

    def join_batch(self, crash: float | None) -> None:
        start = self.committed["join"]
        batch = self.person_log[start : start + self.batch]
        out = stages.join(
            [(key.encode(), envelope) for key, envelope in batch],
            lambda key: self.states.get(key.decode()),
            RULES,
        )
        states = {key.decode(): state for key, state in out.state.items()}
        assert all(s.get("merged_into") != k for k, s in states.items())
        self.states.update(states)
        landed = [
            (key.decode(), value) for topic, key, value in out.records if topic == PERSON_EVENTS
        ]
        views = out.views
        if crash is not None:
            landed = landed[: int(len(landed) * crash)]
            views = views[: int(len(views) * crash)]
        self.person_log += landed
        for view in views:
            self.cases[view["case_key"]] = view
        if crash is None:
            self.committed["join"] = start + len(batch)

    def run(self, rng: random.Random | None = None, crash_rate: float = 0.0) -> None:
        def crash() -> float | None:
            if rng is not None and rng.random() < crash_rate:
                return rng.choice((0.0, 0.5, 1.0))
            return None

        while self.committed["identity"] < len(self.source) or self.committed["join"] < len(
            self.person_log
        ):
            self.steps += 1
            assert self.steps < 2000, "the pipeline never caught up (a forwarding loop?)"
            if self.committed["identity"] < len(self.source) and (
                rng is None or rng.random() < 0.5
            ):
                self.identity_batch(crash())
            elif self.committed["join"] < len(self.person_log):
                self.join_batch(crash())

    def lists(self) -> dict[str, tuple]:
        return {
            key: (tuple(view["needs"]), view["priority"], view["source"]["event_id"])
            for key, view in self.cases.items()
            if view["status"] == "OPEN"
        }


@pytest.fixture(scope="module")
def reference() -> Pipeline:
    pipeline = Pipeline(batch=100)
    pipeline.run()
    return pipeline


def test_the_fault_free_run_merges_each_provisional_person_once(reference):
    # One open case per listed person, holding both requests and the welfare check.
    assert reference.lists() == {
        f"P{n}": (("FOOD", "MEDICINE", "WELFARE_CHECK"), reference.lists()[f"P{n}"][1], f"en-{n}")
        for n in range(len(PEOPLE))
    }
    merged = {k: s["merged_into"] for k, s in reference.states.items() if s.get("merged_into")}
    assert sorted(merged.values()) == [f"P{n}" for n in range(len(PEOPLE))]
    assert all(reference.cases[k]["status"] == "CLOSED" for k in merged)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_crashes_and_replays_end_with_the_same_cases_and_states(reference, seed, batch):
    pipeline = Pipeline(batch=batch)
    pipeline.run(random.Random(seed), crash_rate=0.3)
    assert pipeline.lists() == reference.lists()
    assert pipeline.states == reference.states
    assert {k: v["status"] for k, v in pipeline.cases.items()} == {
        k: v["status"] for k, v in reference.cases.items()
    }


def test_replaying_any_prefix_of_the_person_events_changes_nothing(reference):
    log = list(reference.person_log)
    for cut in range(len(log) + 1):
        joined = cases.join(log[:cut], reference.states.get, RULES)
        assert all(joined.states[k] == reference.states[k] for k in joined.states), cut
        for view in joined.views:
            assert view == reference.cases[view["case_key"]], cut
        # What a replay re-sends (moved or forwarded events) changes nothing where it lands.
        landed = cases.join(joined.person_events, reference.states.get, RULES)
        assert all(landed.states[k] == reference.states[k] for k in landed.states), cut
        assert landed.person_events == [] and landed.refused == [], cut


def test_replaying_any_prefix_of_the_identity_input_changes_no_block(reference):
    for cut in range(len(reference.source) + 1):
        blocks = {k: list(v) for k, v in reference.blocks.items()}
        for block_key, envelope in reference.source[:cut]:
            _, blocks[block_key], _, merges = resolve(blocks[block_key], dict(envelope), SECRET)
            assert envelope.get("person_key") not in merges
        assert blocks == reference.blocks, cut


def test_a_replayed_merge_never_merges_a_person_into_themselves_nor_loops():
    request = identity_events()[0][1]
    provisional, target = "K", "T"
    first = cases.join([(provisional, dict(request, person_key=provisional))], {}.get, RULES)
    states = dict(first.states)
    merge = cases.merge_event(provisional, target, request)
    merged = cases.join([(provisional, merge)], states.get, RULES)
    states.update(merged.states)
    assert states[provisional]["merged_into"] == target
    # The merge read again after a crash: the same outputs, the same state, no new merge.
    again = cases.join([(provisional, merge)], states.get, RULES)
    assert again.states == merged.states and again.person_events == merged.person_events
    assert again.views == merged.views and again.owners == merged.owners
    assert all(e["kind"] != "merge" for _, e in again.person_events)
    assert [to for to, _ in again.person_events] == [target]
    # The shape of the old failure, a merge of T into T, is refused and changes nothing.
    self_merge = cases.join([(target, dict(merge, target=target))], states.get, RULES)
    assert self_merge.states == {} and self_merge.person_events == []
    assert self_merge.refused == [(target, merge["event_id"], "self_merge")]
    # A merge that was forwarded is never applied as a merge into its own target.
    forwarded = dict(merge, forwarded_from=[provisional])
    assert cases.join([("U", forwarded)], {}.get, RULES).refused[0][2] == "merge_forwarded"
    with pytest.raises(ValueError):
        cases.merge_event(target, target, request)


def test_a_forwarding_chain_is_bounded_and_never_revisits_a_person():
    states = {
        "A": {**cases.new_state("A"), "merged_into": "B"},
        "B": {**cases.new_state("B"), "merged_into": "A"},  # a cycle that must not exist
    }
    event = dict(identity_events()[0][1], person_key="A")
    hop = cases.join([("A", event)], states.get, RULES)
    moved = {**event, "forwarded_from": ["A"], "match_method": "probabilistic"}
    assert hop.person_events == [("B", moved)]
    back = cases.join(hop.person_events, states.get, RULES)
    assert back.person_events == [] and back.refused[0][2] == "forward_loop"
    long = dict(event, forwarded_from=[f"X{i}" for i in range(cases.MAX_FORWARD_HOPS)])
    assert cases.join([("A", long)], states.get, RULES).refused[0][2] == "forward_loop"


def settle(events, states):
    """Join events, and what they re-send, until nothing moves; the final states."""
    while events:
        joined = cases.join(events, states.get, RULES)
        states.update(joined.states)
        events = joined.person_events
    return states


def test_a_request_read_after_its_merge_ends_as_if_it_came_first():
    """Records fetched and dropped around a rebalance are read again later, so a
    provisional person's request can reach their case after the merge did."""
    request = dict(identity_events()[0][1], person_key="K")
    merge = cases.merge_event("K", "T", request)
    entry = dict(identity_events()[1][1], person_key="T")
    in_order = settle([("T", entry), ("K", request), ("K", merge)], {})
    merge_first = settle([("T", entry), ("K", merge), ("K", request)], {})
    assert merge_first["T"] == in_order["T"]
    assert merge_first["T"]["match_method"] == "probabilistic"
    assert merge_first["K"]["merged_into"] == in_order["K"]["merged_into"] == "T"


def test_a_merge_into_another_target_is_refused_once_merged():
    states = {"K": {**cases.new_state("K"), "merged_into": "T"}}
    other = cases.merge_event("K", "U", identity_events()[0][1])
    joined = cases.join([("K", other)], states.get, RULES)
    assert joined.states == {} and joined.refused[0][2] == "merged_elsewhere"


def test_join_does_not_modify_the_stored_state():
    request = dict(identity_events()[0][1], person_key="K")
    stored = {"K": cases.new_state("K")}
    cases.join([("K", request)], stored.get, RULES)
    assert stored["K"] == cases.new_state("K")
