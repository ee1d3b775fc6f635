"""Two deployments side by side on one stack, told apart by ACCORD_TOPIC_PREFIX alone
(both keep the default ACCORD_WORKER_ID): their topics, table changelogs, assignor topics
and consumer groups are their own, and each council's list holds only its own cases. The
worker logs one `worker_ready` line, honours ACCORD_LOG_LEVEL and writes no terminal
control codes into a log file."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.access import provision
from accord.core.kafka import admin_client, delete_topics
from accord.core.settings import Settings
from accord.core.topics import WORKER_TABLES, Topics
from accord.stack import processes
from accord.worker.datadir import remove_group_state

from .workload import council_lists, publish_workload

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def tenant(stack: Settings, prefix: str) -> Iterator[Settings]:
    settings = stack.model_copy(update={"topic_prefix": prefix, "worker_id": "accord-worker"})
    provision.apply(settings)
    try:
        yield settings
    finally:
        delete_topics(stack, settings.topic_prefix)  # the group's topics are under it too
        remove_group_state(stack, settings.worker_group)
        provision.remove_deployment(settings)


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_two_prefixes_share_nothing_and_each_worker_says_once_it_is_ready(stack, serde, tmp_path):
    run = uuid.uuid4().hex[:8]
    sizes = {"a": 40, "b": 80}
    with tenant(stack, f"ta{run}.") as a, tenant(stack, f"tb{run}.") as b:
        assert a.worker_group != b.worker_group
        for settings, people in ((a, sizes["a"]), (b, sizes["b"])):
            publish_workload(settings, serde, tmp_path, people)
        pool_a = processes.Workers(a, tmp_path, name="a", ACCORD_LOG_FORMAT="auto")
        pool_b = processes.Workers(b, tmp_path, name="b", ACCORD_LOG_LEVEL="WARNING")
        with pool_a, pool_b:
            pool_a.start()
            pool_b.start()
            processes.wait_until_caught_up(a, 180.0, workers=pool_a.started)
            processes.wait_until_caught_up(b, 180.0, workers=pool_b.started)
            time.sleep(1.0)
            admin = admin_client(stack)
            try:
                groups = admin.describe_groups([a.worker_group, b.worker_group])
                topics = set(admin.list_topics())
            finally:
                admin.close()
        for settings in (a, b):
            names = [Topics.changelog(settings.worker_group, t) for t in WORKER_TABLES]
            names.append(Topics.assignor(settings.worker_group))
            assert all(n.startswith(settings.topic_prefix) and n in topics for n in names)
            assert len(groups[settings.worker_group]["members"]) == 1
        assert not any(t.startswith("accord-worker-") and run in t for t in topics)
        edinburgh = {
            name: council_lists(settings, serde)["City of Edinburgh"]
            for name, settings in (("a", a), ("b", b))
        }
        assert {k: len(v) for k, v in edinburgh.items()} == {
            k: people // 4 for k, people in sizes.items()
        }

        # One ready line, saying what the worker reads, its group, OPA and the policy.
        log_a = pool_a.log_path(0)
        ready = [e for e in events(log_a) if e.get("event") == "worker_ready"]
        assert len(ready) == 1, ready
        line = ready[0]
        assert line["group"] == a.worker_group and line["topic_prefix"] == a.topic_prefix
        assert line["stage_topics"] == Topics(a).stages()
        assert line["partner_topics"] > 0 and line["partitions"] > 0
        assert line["opa"] == a.opa_url and line["opa_state"] == "answered"
        assert len(line["policy_revision"]) == 16
        # ACCORD_LOG_LEVEL=WARNING: nothing below warning from the second worker.
        levels = {e.get("level") for e in events(pool_b.log_path(0))}
        assert levels <= {"warning", "error", "critical"}, levels
        # Not a terminal: no escape sequences, no carriage returns, no spinner.
        for log in (log_a, pool_b.log_path(0)):
            raw = log.read_bytes()
            assert b"\x1b" not in raw and b"\r" not in raw and b"\x08" not in raw, log
