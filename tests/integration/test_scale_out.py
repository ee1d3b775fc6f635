"""Many workers of one group: a rolling restart of every worker (one at a time, each
waiting for the group to settle) ends with every council's list equal to a run without
it. The throughput table for 1, 2, 4 and 8 workers is `accord bench --scale-out 1,2,4,8`
(docs/performance.md)."""

from __future__ import annotations

import sys
import time

import pytest

from accord.core.credentials import ADMIN
from accord.core.serde import AvroSerde, registry_client
from accord.stack import processes

from .conftest import isolated_settings, workers
from .workload import council_lists, list_differences, publish_workload

pytestmark = pytest.mark.integration
PEOPLE = 120
WORKERS = 3


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory):
    serde = AvroSerde(registry_client(stack, ADMIN), stack.schemas_dir)
    with isolated_settings(stack) as settings:
        publish_workload(settings, serde, tmp_path_factory.mktemp("ref"), PEOPLE)
        with workers(settings, tmp_path_factory.mktemp("ref-logs")) as start:
            start()
            processes.wait_until_caught_up(settings)
            lists = council_lists(settings, serde)
    assert sum(len(v) for v in lists.values()) > 0
    return lists


def test_a_rolling_restart_of_every_worker_keeps_every_list(settings, serde, tmp_path, reference):
    publish_workload(settings, serde, tmp_path, PEOPLE)
    pool = processes.Workers(settings, tmp_path, loglevel="info")
    began = time.monotonic()
    steps: list[float] = []
    with pool:
        pool.start(WORKERS)
        processes.wait_until_joined(settings, WORKERS)
        joined = time.monotonic() - began
        lag = processes.worker_lag(settings)
        pool.roll(on_step=lambda _: steps.append(time.monotonic() - began))
        # Three workers, the broker, OPA and the registry on 2 shared cores: a busy machine
        # catches up slowly after the last restart (131 s from the start when quiet).
        processes.wait_until_caught_up(settings, 420.0, workers=pool.started[-WORKERS:])
        done = time.monotonic() - began
    print(
        f"\nrolling restart of {WORKERS} workers: joined at {joined:.0f}s with lag {lag}, "
        f"each settled at {', '.join(f'{s:.0f}s' for s in steps)}, caught up at {done:.0f}s",
        file=sys.stderr,
    )
    assert len(pool.started) == 2 * WORKERS
    differences = list_differences(council_lists(settings, serde), reference)
    assert not differences, "\n".join(differences)
