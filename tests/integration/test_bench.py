"""`accord bench` on the real stack, CI-sized: every figure of the pipeline's targets is
measured and plausible (not that it meets its goal), and the topics are removed after."""

from __future__ import annotations

import json
import time

from accord.bench.run import HALF, Plan, run_bench
from accord.core.kafka import admin_client


def plausible_latency(run: dict) -> None:
    assert run["published"] > 0
    steps = run["steps"]
    # The event's way: publication, the worker's stages, the case, the decision, the list.
    assert next(iter(steps)).startswith("partner → hub.")
    assert any(name.endswith("→ case") for name in steps)
    assert "case → decision" in steps and "decision → share" in steps
    for row in [*steps.values(), *run["end_to_end"].values()]:
        assert row["samples"] > 0
        assert 0 <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] < 600_000
    ends = run["end_to_end"]
    # Every event reached its case; a share comes no sooner than its decision.
    assert ends["partner → case"]["samples"] == run["published"], run["no_case"]
    assert ends["partner → share"]["p50_ms"] >= ends["partner → case"]["p50_ms"]
    assert run["to_list_by_dataset"]


def no_bench_topics_left(stack) -> None:
    # Deletion is asynchronous in the broker: give it a little while.
    deadline, left = time.monotonic() + 60, ["?"]
    while left and time.monotonic() < deadline:
        admin = admin_client(stack)
        try:
            left = [t for t in admin.list_topics() if t.startswith("bench-")]
        finally:
            admin.close()
        time.sleep(1)
    assert not left


# The CI-sized bench in two halves, each under two minutes on 2 cores: every worker run
# costs its start-up and its batch waits, whatever its size.


def test_the_main_run_measures_every_mode_latency_per_stage_and_a_suspension(stack, tmp_path):
    out = tmp_path / "bench.json"
    run_bench(
        stack,
        Plan(
            events=300,
            seed=7,
            partitions=3,
            latency_rates=(40.0, HALF),
            latency_s=2.0,
            sizes=(300,),  # the main run's (c) is the first size's figure
            suspension=True,
            suspension_people=20,
            json_path=out,
            timeout_s=300,
        ),
    )
    figures = json.loads(out.read_text())
    assert figures["events"] == 300
    for mode in ("raw", "faust", "governed"):
        assert figures["modes"][mode]["events_per_s"] > 0
        assert figures["modes"][mode]["peak_rss_mb"][0] > 10
    assert 0 < figures["ratios"]["c/a"] and 0 < figures["ratios"]["c/b"]
    assert figures["decisions"] > 0 and figures["shares"] > 0
    assert figures["opa"]["decisions"] > 0

    rates = [run["offered_events_per_s"] for run in figures["latency"]]
    assert len(rates) == 2 and rates[0] == 40.0
    # Both figures are rounded to 0.1 in the JSON, from the same unrounded capacity.
    assert abs(rates[1] - figures["modes"]["governed"]["events_per_s"] / 2) <= 0.1
    for run in figures["latency"]:
        plausible_latency(run)

    (linear,) = figures["linear_cost"]
    assert linear["events"] == 300 and linear["ratio_to_first"] == 1.0
    assert linear["events_per_s"] == figures["modes"]["governed"]["events_per_s"]

    suspension = figures["suspension"]
    assert suspension["held"] > 0 and suspension["agreement"].startswith("DSA-")
    assert suspension["tombstoned"] == suspension["held"]  # every one withdrawn
    assert 0 <= suspension["first_tombstone_s"] <= suspension["last_tombstone_s"] < 300
    assert suspension["restored_shared_again"] == suspension["held"]
    no_bench_topics_left(stack)


def test_linear_cost_memory_by_people_and_the_scottish_list_from_files(stack, tmp_path):
    out = tmp_path / "bench.json"
    run_bench(
        stack,
        Plan(
            modes=(),
            seed=7,
            partitions=3,
            sizes=(100,),
            people=(150,),
            scotland=True,
            scotland_people=200,
            scotland_requests=40,
            json_path=out,
            timeout_s=300,
        ),
    )
    figures = json.loads(out.read_text())
    assert figures["modes"] == {} and figures["latency"] == []

    (linear,) = figures["linear_cost"]
    assert linear["events"] == 100 and linear["events_per_s"] > 0
    assert linear["ratio_to_first"] == 1.0

    (people,) = figures["rss_by_people"]
    assert people["people"] == 150
    assert 10 < people["rss_after_catch_up_mb"] <= people["peak_rss_mb"]

    scotland = figures["scotland"]
    assert scotland["people"] == 200 and scotland["requests"] > 0
    assert scotland["published"] == 200 + scotland["requests"]
    assert scotland["share_records"] > 0
    assert 0 < scotland["publish_seconds"] and 0 < scotland["first_publish_to_last_share_s"]
    assert "publish_file" in scotland["source"]
    no_bench_topics_left(stack)


def test_the_gates_policy_reads_are_measured_both_ways_side_by_side(stack):
    """`accord bench --policy-reads`: the stamped way (the revision in the answer) and the
    unstamped way (the rules read around the queries), each really taken."""
    import asyncio

    from accord.bench import policy_reads

    times = asyncio.run(policy_reads.run(stack, rounds=4, say=lambda _: None))
    assert {mode: len(values) for mode, values in times.items()} == {
        "stamped": 4,
        "unstamped": 4,
    }
    assert all(value > 0 for values in times.values() for value in values)
    assert policy_reads.report(times)[2].split()[0] == "stamped"
