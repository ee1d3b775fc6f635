"""`accord bench` on the real stack: every mode measured, figures written, topics removed."""

from __future__ import annotations

import json
import time

from accord.bench.run import run_bench
from accord.core.kafka import admin_client


def test_bench_measures_every_mode_and_cleans_up(stack, tmp_path):
    out = tmp_path / "bench.json"
    run_bench(
        stack,
        events=400,
        seed=7,
        modes=["raw", "faust", "governed"],
        workers=1,
        partitions=3,
        latency_rate=100.0,
        latency_s=2.0,
        scale_out=[1],
        scale_out_events=200,
        json_path=out,
        keep=False,
        timeout_s=600,
    )
    figures = json.loads(out.read_text())
    assert figures["events"] == 400
    for mode in ("raw", "faust", "governed"):
        assert figures["modes"][mode]["events_per_s"] > 0
        assert figures["modes"][mode]["peak_rss_mb"][0] > 10
    assert 0 < figures["ratios"]["c/a"] and 0 < figures["ratios"]["c/b"]
    assert figures["decisions"] > 0 and figures["shares"] > 0
    latency = figures["latency"]
    assert latency["samples"] > 0
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert figures["opa"]["decisions"] > 0
    assert [row["processes"] for row in figures["scale_out"]] == [1]
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
