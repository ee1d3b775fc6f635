"""The benchmark's pure parts: percentiles, ratios, the JSON it writes, its options."""

import pytest
from click.testing import CliRunner

from accord.bench.commands import bench
from accord.bench.measure import percentile
from accord.bench.run import Figures, ModeResult, parse_counts
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
    assert set(data["latency"]) >= {"offered_events_per_s", "samples"}


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
