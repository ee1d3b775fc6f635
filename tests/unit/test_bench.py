"""The benchmark's pure parts: percentiles, latency per stage (stage records matched to
events), ratios, the JSON it writes, its options, the suspension's and Scotland's choices."""

import orjson
import pytest
from click.testing import CliRunner

from accord.bench import stages
from accord.bench.commands import bench
from accord.bench.measure import percentile
from accord.bench.run import (
    HALF,
    Figures,
    ModeResult,
    Plan,
    later_runs,
    parse_counts,
    parse_rates,
)
from accord.bench.scotland import STRANGERS, request_share
from accord.bench.suspension import closest, live_view, main_agreement
from accord.synthetic.workload import people_for


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_percentile_does_not_depend_on_order():
    assert percentile([5, 1, 4, 2, 3], 0.5) == 3


def figures() -> Figures:
    result = Figures(events=1000, partitions=6, cores=2)
    result.modes["raw"] = ModeResult("raw", 1000, 0.5)  # 2,000/s
    result.modes["faust"] = ModeResult("faust", 1000, 1.0)  # 1,000/s
    result.modes["governed"] = ModeResult("governed", 1000, 4.0, 1, [150.0])  # 250/s
    result.decisions = 3000
    return result


def test_ratios_compare_the_governed_pipeline_with_each_baseline():
    result = figures()
    assert result.ratio("raw") == pytest.approx(0.125)
    assert result.ratio("faust") == pytest.approx(0.25)
    del result.modes["raw"]
    assert result.ratio("raw") is None


def test_json_carries_every_figure():
    data = figures().as_json()
    assert data["modes"]["governed"]["events_per_s"] == 250.0
    assert data["modes"]["governed"]["peak_rss_mb"] == [150.0]
    assert data["ratios"] == {"c/a": 0.125, "c/b": 0.25}
    assert data["decisions_per_s"] == 750.0
    assert data["latency"] == [] and data["suspension"] is None


def test_worker_counts_parse():
    assert parse_counts("1,2,4") == [1, 2, 4]
    assert parse_counts("") == []


def test_the_mix_sizes_people_so_the_events_come_to_the_asked_number():
    assert people_for(200_000) == 160_000
    assert people_for(1) == 1


def test_unknown_modes_are_refused_before_anything_starts():
    result = CliRunner().invoke(bench, ["--modes", "raw,turbo"])
    assert result.exit_code == 2
    assert "unknown mode(s) turbo" in result.output


# --- latency per stage: matching stage records to events, steps, percentiles ---------


def envelope(**fields) -> bytes:
    return orjson.dumps(fields)


def test_stage_records_are_matched_to_events_by_their_event_id():
    assert stages.envelope_ids(envelope(event_id="e1", person_key="p1")) == ("e1", "p1")
    assert stages.envelope_ids(envelope(event_id="e1")) == ("e1", None)
    # Notes of who owns a request and erasures carry no event id; nor does a non-object.
    assert stages.envelope_ids(envelope(kind="owner", person_key="p1")) == (None, "p1")
    assert stages.envelope_ids(b"[1, 2]") == (None, None)
    assert stages.envelope_ids(b"not json") == (None, None)
    assert stages.envelope_ids(None) == (None, None)


def test_a_stage_keeps_each_events_first_record_and_the_persons_it_named():
    stage = stages.StageRecords("hub.person-events")
    stage.add(envelope(event_id="e1", person_key="provisional"), 200)
    stage.add(envelope(event_id="e1", person_key="listed"), 100)  # earlier, read later
    stage.add(envelope(event_id="e2"), 150)
    stage.add(envelope(event_id="e2", person_key="p2"), 170)  # a later copy names the person
    stage.add(envelope(event_id="other", person_key="p3"), 120, wanted={"e1", "e2"})
    assert stage.first_ms == {"e1": 100, "e2": 150}
    assert stage.persons("e1") == [(100, "listed"), (200, "provisional")]
    assert stage.persons("e2") == [(170, "p2")]
    assert stage.persons("other") == []


def test_an_event_forwarded_to_the_person_a_provisional_one_was_merged_into_reaches_that_case():
    # The request matched a provisional person already merged: the join forwarded it,
    # keyed by the person it was merged into; the envelope still names the first one.
    stage = stages.StageRecords("hub.person-events")
    stage.add(envelope(event_id="e", person_key="provisional"), 100, None, "provisional")
    stage.add(envelope(event_id="e", person_key="provisional"), 130, None, "listed")
    cases, decisions = stages.KeyTimes(), stages.KeyTimes()
    cases.add("provisional", 20)  # its case, closed by the merge before the request came
    cases.add("listed", 150)
    decisions.add("listed", 160)
    lines = stages.timelines({"e": 10}, [stage], cases, decisions, stages.KeyTimes())
    assert lines["e"] == [
        ("partner", 10),
        ("hub.person-events", 100),
        ("case", 150),
        ("decision", 160),
    ]


def test_key_times_find_the_first_record_in_a_window():
    times = stages.KeyTimes()
    for at in (300, 100, 200):
        times.add("p", at)
    assert times.first_at_or_after("p", 150) == 200
    assert times.first_at_or_after("p", 200) == 200
    assert times.first_at_or_after("p", 150, before_ms=200) is None
    assert times.first_at_or_after("p", 301) is None
    assert times.first_at_or_after("nobody", 0) is None
    assert times.next_after("p", 200) == 300
    assert times.next_after("p", 300) is None


def pipeline_records():
    identity = stages.StageRecords("hub.identity")
    person = stages.StageRecords("hub.person-events")
    requests = stages.StageRecords("hub.request-events")
    identity.add(envelope(event_id="entry"), 1010)
    person.add(envelope(event_id="entry", person_key="p1"), 1030)
    requests.add(envelope(event_id="outcome"), 2005)  # an outcome skips the identity stage
    person.add(envelope(event_id="outcome", person_key="p1"), 2040)
    cases, decisions, shares = stages.KeyTimes(), stages.KeyTimes(), stages.KeyTimes()
    for at in (1000, 1100, 2100):  # an older case of p1 first, before either event
        cases.add("p1", at)
    for at in (1005, 1150, 2150):
        decisions.add("p1", at)
    shares.add("p1", 1160)  # the outcome's decision changed nothing shared
    return [identity, requests, person], cases, decisions, shares


def test_each_event_gets_its_points_in_flow_order():
    found, cases, decisions, shares = pipeline_records()
    lines = stages.timelines({"entry": 1000, "outcome": 2000}, found, cases, decisions, shares)
    assert lines["entry"] == [
        ("partner", 1000),
        ("hub.identity", 1010),
        ("hub.person-events", 1030),
        ("case", 1100),  # not the older case at 1000
        ("decision", 1150),
        ("share", 1160),
    ]
    # No share record after the outcome's decision: the share at 1160 is an older one's.
    assert lines["outcome"] == [
        ("partner", 2000),
        ("hub.request-events", 2005),
        ("hub.person-events", 2040),
        ("case", 2100),
        ("decision", 2150),
    ]


def test_a_decision_after_the_persons_next_case_is_not_this_cases():
    cases, decisions = stages.KeyTimes(), stages.KeyTimes()
    cases.add("p", 100)
    cases.add("p", 500)
    decisions.add("p", 600)  # decided the case at 500, not the one at 100
    stage = stages.StageRecords("hub.person-events")
    stage.add(envelope(event_id="e", person_key="p"), 50)
    lines = stages.timelines({"e": 10}, [stage], cases, decisions, stages.KeyTimes())
    assert [name for name, _ in lines["e"]] == ["partner", "hub.person-events", "case"]


def test_an_event_no_stage_saw_has_only_its_publication():
    lines = stages.timelines(
        {"lost": 5}, [stages.StageRecords("hub.identity")], *[stages.KeyTimes()] * 3
    )
    assert lines == {"lost": [("partner", 5)]}


def test_steps_and_end_to_end_percentiles_show_where_the_time_goes():
    found, cases, decisions, shares = pipeline_records()
    figures = stages.latency_figures(
        {"entry": 1000, "outcome": 2000},
        {"entry": "shielding-list", "outcome": "support-outcome"},
        found,
        cases,
        decisions,
        shares,
    )
    steps = figures["steps"]
    assert list(steps) == [
        "partner → hub.identity",
        "partner → hub.request-events",
        "hub.identity → hub.person-events",
        "hub.request-events → hub.person-events",
        "hub.person-events → case",
        "case → decision",
        "decision → share",
    ]
    assert steps["hub.person-events → case"] == {
        "samples": 2,
        "p50_ms": 60.0,
        "p95_ms": 70.0,
        "p99_ms": 70.0,
    }
    assert steps["decision → share"]["samples"] == 1
    ends = figures["end_to_end"]
    assert ends["partner → case"]["samples"] == 2 and ends["partner → case"]["p99_ms"] == 100.0
    once = {"samples": 1, "p50_ms": 160.0, "p95_ms": 160.0, "p99_ms": 160.0}
    assert ends["partner → share"] == once
    assert figures["to_list_by_dataset"] == {"shielding-list": once}
    assert figures["no_case"] == []


def test_the_events_that_reached_no_case_are_named_with_where_they_stopped():
    stage = stages.StageRecords("hub.person-events")
    stage.add(envelope(event_id="seen", person_key="p"), 50)
    lines = stages.timelines({"seen": 10, "lost": 5}, [stage], *[stages.KeyTimes()] * 3)
    missing = stages.short_of_case(
        lines, {"seen": "support-request", "lost": "shielding-list"}, ["hub.person-events"]
    )
    assert missing == [
        {"event_id": "lost", "dataset": "shielding-list", "last": "partner"},
        {"event_id": "seen", "dataset": "support-request", "last": "hub.person-events"},
    ]


def test_percentiles_per_step_come_from_every_event():
    lines = {str(n): [("partner", 0), ("hub.identity", n), ("case", n + 10)] for n in range(1, 101)}
    steps = stages.steps(lines, ["hub.identity"])
    assert steps["partner → hub.identity"]["p50_ms"] == 50.0
    assert steps["partner → hub.identity"]["p99_ms"] == 99.0
    assert steps["hub.identity → case"] == {
        "samples": 100,
        "p50_ms": 10.0,
        "p95_ms": 10.0,
        "p99_ms": 10.0,
    }


def test_stage_names_drop_the_runs_prefix():
    assert stages.short_name("bench-1-main.hub.identity", "bench-1-main.") == "hub.identity"
    assert stages.short_name("hub.identity", "") == "hub.identity"


# --- the run's options and figures ----------------------------------------------------


def test_latency_rates_are_events_per_second_or_half_of_the_capacity():
    assert parse_rates("200,half") == [200.0, HALF]
    assert parse_rates("") == []
    with pytest.raises(ValueError):
        parse_rates("0")
    with pytest.raises(ValueError):
        parse_rates("fast")


def test_sizes_may_be_written_with_k_and_m():
    assert parse_counts("50k,200_000,1m") == [50_000, 200_000, 1_000_000]
    with pytest.raises(ValueError):
        parse_counts("0")
    with pytest.raises(ValueError):
        parse_counts("1.5")


def test_the_full_plan_asks_for_every_figure():
    plan = Plan(events=1000, sizes=(10,)).full()
    assert plan.events == 1000 and plan.sizes == (10,)  # what was asked for stays
    assert plan.people == (180_000, 1_000_000)
    assert plan.suspension and plan.scotland
    assert Plan().full().sizes == (50_000, 200_000, 1_000_000)


def test_the_runs_after_the_main_one_go_smallest_first():
    # a long run stopped early has then reported every shorter one
    assert later_runs(Plan().full()) == [
        ("size", 50_000),
        ("people", 180_000),
        ("size", 200_000),
        ("scotland", 230_000),
        ("size", 1_000_000),
        ("people", 1_000_000),
    ]
    assert later_runs(Plan()) == []


def test_linear_cost_compares_each_size_with_the_first():
    result = figures()
    result.sizes = [ModeResult("a", 1000, 4.0), ModeResult("b", 4000, 20.0)]  # 250/s, 200/s
    rows = result.as_json()["linear_cost"]
    assert [row["events_per_s"] for row in rows] == [250.0, 200.0]
    assert [row["ratio_to_first"] for row in rows] == [1.0, 0.8]


def test_the_json_names_every_figure_of_the_targets():
    data = figures().as_json()
    assert set(data) >= {
        "latency",
        "ratios",
        "linear_cost",
        "rss_by_people",
        "suspension",
        "scotland",
        "phases_s",
    }


# --- the suspension's and the Scottish list's choices ---------------------------------


def test_a_list_is_its_latest_records_without_tombstones():
    assert live_view([("a", 1), ("b", 2), ("a", None), ("c", 3), ("c", 4)]) == {"b": 2, "c": 4}


def test_the_recipient_closest_to_the_target_is_suspended():
    assert closest({"big": 9000, "near": 4800, "small": 100}, 5000) == "near"
    assert closest({"low": 4000, "high": 6000}, 5000) == "high"  # a tie: the larger
    assert closest({"none": 0}, 5000) is None


def test_the_agreement_most_people_were_shared_under_is_chosen():
    agreements = {"k1": "DSA-010", "k2": "DSA-010", "k3": "own-data", "k4": "DSA-015"}
    assert main_agreement(agreements) == ("DSA-010", {"k1", "k2"})
    assert main_agreement({"k": "own-data"}) is None


def test_requests_come_to_the_asked_number():
    assert request_share(180_000, 50_000) == pytest.approx((50_000 - STRANGERS) / 180_000)
    assert request_share(10, 1000) == 1.0
    assert request_share(0, 10) == 0.0
