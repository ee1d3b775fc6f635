"""A batch that straddled a consumer-group rebalance is neither processed further nor
acknowledged: its partitions' owners read it again from the committed offsets. Records
faust fetched but never handed over are read again once the worker is idle; a batch a
rebalance overtook writes nothing more."""

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP
from faust.types.tuples import Message

from accord.core.errors import InfrastructureError
from accord.worker.batches import (
    StaleBatch,
    failure_reason,
    fetched_in_this_generation,
    process_until_done,
    record_by_record,
    records_skipped,
)


def event(offset: int, generation: int) -> SimpleNamespace:
    message = Message(
        "t.identity",
        0,
        offset,
        0.0,
        0,
        [],
        b"k",
        b"v",
        None,
        tp=TP("t.identity", 0),
        generation_id=generation,
    )
    return SimpleNamespace(message=message)


def test_events_of_the_current_generation_are_kept_in_order():
    events = [event(1, 7), event(2, 7), event(3, 7)]
    assert fetched_in_this_generation(events, 7, settled=True) == events


def test_events_fetched_before_the_latest_rebalance_are_dropped():
    old, new = event(1, 6), event(2, 7)
    assert fetched_in_this_generation([old, new], 7, settled=True) == [new]


def test_nothing_is_current_while_the_group_rebalances():
    assert fetched_in_this_generation([event(1, 7)], 7, settled=False) == []


def test_a_partition_behind_on_two_checks_at_the_same_offset_is_rewound():
    ends, committed = {"p0": 46, "p3": 64}, {"p3": 64}
    rewind, suspects = records_skipped(ends, committed, {})
    assert rewind == {} and suspects == {"p0": 0}
    rewind, suspects = records_skipped(ends, committed, suspects)
    assert rewind == {"p0": 0} and suspects == {}


def test_a_partition_whose_commits_move_on_is_not_rewound():
    _, suspects = records_skipped({"p1": 90}, {"p1": 40}, {})
    rewind, suspects = records_skipped({"p1": 90}, {"p1": 70}, suspects)
    assert rewind == {} and suspects == {"p1": 70}


def test_caught_up_or_unknown_partitions_are_never_suspected():
    rewind, suspects = records_skipped({"p0": 5, "p1": None}, {"p0": 5}, {"p0": 5, "p1": 0})
    assert rewind == {} and suspects == {}


def test_a_stale_batch_stops_its_work_without_retrying_or_ending_the_process():
    calls = []

    async def work() -> dict[str, int]:
        calls.append(1)
        raise StaleBatch()

    with pytest.raises(StaleBatch):
        asyncio.run(process_until_done(work, 3, retry_s=0.0))
    assert calls == [1]


def test_infrastructure_failures_are_retried_until_the_batch_is_done():
    calls = []

    async def work() -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise InfrastructureError("OPA is down")
        return {"records": 3}

    assert asyncio.run(process_until_done(work, 3, retry_s=0.0)) == {"records": 3}
    assert len(calls) == 3


def test_an_unforeseen_error_is_raised_for_the_stage_to_set_the_record_aside():
    async def work() -> dict[str, int]:
        raise TypeError("Type is not JSON serializable: bytes b'Ann Kerr'")

    with pytest.raises(TypeError):
        asyncio.run(process_until_done(work, 3, retry_s=0.0))
    reason = failure_reason("check_partner_events", TypeError("Ann Kerr"))
    assert "TypeError" in reason and "check_partner_events" in reason and "Ann" not in reason


def test_a_batch_with_a_poison_record_sets_it_aside_and_processes_the_rest():
    done, aside = [], []

    async def handler(events):
        if "poison" in events:
            raise TypeError("Type is not JSON serializable: bytes")
        if "flaky" in events and "flaky" not in done:
            done.append("flaky")
            raise InfrastructureError("broker away")  # retried, not set aside
        done.extend(events)
        return {}

    async def set_aside(event, stage, exc):
        aside.append((event, failure_reason(stage, exc)))
        return {}

    counts = asyncio.run(
        record_by_record(handler, ["a", "poison", "flaky", "b"], "join_cases", set_aside, 0.0)
    )
    assert counts == {"records": 4, "set_aside": 1}
    assert done == ["a", "flaky", "flaky", "b"]
    assert aside == [("poison", failure_reason("join_cases", TypeError()))]
