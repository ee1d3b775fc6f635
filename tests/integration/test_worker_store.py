"""The worker's tables on disk (RocksDB, `accord.worker.state`) survive what a process can
suffer: a kill -9 while the DBs are being written, and the loss of the DBs themselves.
Real Kafka, OPA and `accord worker` processes; a fault-free run's lists are the reference.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid

import pytest

from accord.core.credentials import ADMIN
from accord.core.serde import AvroSerde, registry_client
from accord.core.topics import SHIELDING_LIST, SUPPORT_OUTCOME, SUPPORT_REQUEST
from accord.ingest.publish import publish_file
from accord.stack import processes
from accord.synthetic.people import write_csv
from accord.synthetic.records import lothian_people, outcomes_for, requests_for
from accord.worker.datadir import group_datadir

from .conftest import isolated_settings, workers
from .workload import council_lists, publish_workload, send_native

pytestmark = pytest.mark.integration
PEOPLE = 1600  # 1,600 on the shielding list, 800 requests, 400 outcomes: 2,800 events


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory):
    """The lists of an undisturbed run over the whole workload."""
    serde = AvroSerde(registry_client(stack, ADMIN), stack.schemas_dir)
    with isolated_settings(stack) as settings:
        publish_workload(settings, serde, tmp_path_factory.mktemp("ref"), PEOPLE)
        with workers(settings, tmp_path_factory.mktemp("ref-logs")) as start:
            start()
            processes.wait_until_caught_up(settings, timeout_s=600)
            lists = council_lists(settings, serde)
    assert sum(len(v) for v in lists.values()) >= PEOPLE
    return lists


def db_files(settings) -> dict[str, int]:
    """Size of every file of the group's RocksDB DBs (SST files, write-ahead logs)."""
    sizes = {}
    for root, _, names in os.walk(group_datadir(settings, settings.worker_group)):
        for name in names:
            path = os.path.join(root, name)
            if ".db" in path:
                try:
                    sizes[path] = os.path.getsize(path)
                except FileNotFoundError:  # a log RocksDB just rolled
                    pass
    return sizes


def test_kill_9_while_the_rocksdb_state_is_being_written_then_restart_gives_the_same_lists(
    settings, serde, worker, tmp_path, reference
):
    publish_workload(settings, serde, tmp_path, PEOPLE)
    first = worker()
    # Kill when the DBs have grown on several polls running, with work still to do: the
    # worker is mid catch-up, writing state batch after batch.
    growing, last, deadline = 0, {}, time.monotonic() + 180
    while growing < 5:
        assert time.monotonic() < deadline, "the worker never wrote its tables"
        assert first.poll() is None
        sizes = db_files(settings)
        growing = growing + 1 if sum(sizes.values()) > sum(last.values()) else 0
        last = sizes
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    lag = processes.worker_lag(settings)
    assert lag > 0, "the worker had finished before the kill; the test proves nothing"
    assert any(path.endswith(".log") for path in last), "no write-ahead log at the kill"
    worker()  # the same state slot: it opens the DBs the killed one left
    processes.wait_until_caught_up(settings, timeout_s=600)
    assert council_lists(settings, serde) == reference


def test_a_worker_whose_rocksdb_was_deleted_recovers_from_the_changelogs_alone(
    settings, serde, worker, tmp_path, reference
):
    """The shielding list and the requests first; the DBs deleted; then the outcomes,
    which only a worker that rebuilt every person's case and request owner can apply."""
    rows = lothian_people(PEOPLE)
    path = tmp_path / f"lothian-{uuid.uuid4().hex[:6]}.csv"
    write_csv(rows, path)
    publish_file(settings, "nhs-lothian", SHIELDING_LIST, path)
    requests = requests_for(rows)
    send_native(settings, serde, SUPPORT_REQUEST, "SupportRequest", requests)
    first = worker()
    processes.wait_until_caught_up(settings, timeout_s=600)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    folder = group_datadir(settings, settings.worker_group)
    assert any(p.endswith(".sst") or p.endswith(".log") for p in db_files(settings))
    shutil.rmtree(folder)
    send_native(settings, serde, SUPPORT_OUTCOME, "SupportOutcome", outcomes_for(requests))
    worker()
    processes.wait_until_caught_up(settings, timeout_s=600)
    assert council_lists(settings, serde) == reference
    assert db_files(settings), "the restarted worker rebuilt no DB"
