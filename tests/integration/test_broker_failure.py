"""Broker failure on a three-broker cluster of the test's own (tests/integration/cluster.py).

1. A broker SIGKILLed mid-stream and restarted with `accord stack up`: every council's
   compacted list equals a run without the failure (nothing lost, nothing extra or
   duplicated), and every share record carries a decision with its audit record.
2. Two of the three brokers frozen (SIGSTOP) for longer than the worker's producer
   delivery timeout: no write can be acknowledged (min.insync.replicas=2), the sends time
   out, the worker retries its batches whole (it waits, it drops nothing) and, the brokers
   back, the lists again equal the run without the failure.

Each prints its figures. Topics are replicated 3 times with min.insync.replicas=2.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from accord.access import provision
from accord.campaign import faults
from accord.core.credentials import ADMIN
from accord.core.kafka import admin_client
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.ingest.publish import publish_file
from accord.stack import local, processes

from .cluster import accord, node_pid, three_brokers, wait_until_replicated

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PEOPLE = 80
SEED = 2016


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[Settings, dict[str, str]]]:
    with three_brokers(tmp_path_factory.mktemp("cluster") / "state") as running:
        yield running


@pytest.fixture(scope="module")
def mix(cluster, tmp_path_factory) -> faults.CampaignInput:
    return faults.generate_input(PEOPLE, SEED, tmp_path_factory.mktemp("mix"))


@pytest.fixture(scope="module")
def reference(cluster, mix, tmp_path_factory) -> faults.Lists:
    """Every recipient's list from a run without failures."""
    settings, _ = cluster
    scoped = faults._scoped(settings, "ref")
    publish(scoped, mix)
    figures = faults.run_worker(scoped, tmp_path_factory.mktemp("ref"), [], 240.0, print)
    assert figures.lag_zero, figures.lag_note
    return faults.recipient_lists(scoped, serde_of(settings))


def serde_of(settings: Settings) -> AvroSerde:
    return AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)


def test_topics_are_replicated_three_times_with_two_in_sync(cluster):
    settings, values = cluster
    status = accord(values, "stack", "status")
    print(status)
    assert "brokers   1, 2, 3 up" in status and "quorum    voters 1" in status
    admin = admin_client(settings)
    try:
        cases = Topics(settings).internal("cases")
        described = admin.describe_topics([cases])[0]
        assert {len(p["replica_nodes"]) for p in described["partitions"]} == {3}
        config = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, cases)])
        assert config["topic"][cases]["min.insync.replicas"]["value"] == "2"
    finally:
        admin.close()


def wait_for_work(log: Path, worker, timeout_s: float = 120.0) -> None:
    """Until the worker has checked its first batch: it is mid-stream from then on."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and '"partner_batch_checked"' in log.read_text(errors="replace"):
            return
        assert worker.poll() is None, f"the worker exited; see {log}"
        time.sleep(0.1)
    raise AssertionError(f"the worker did no work in {timeout_s:.0f}s; see {log}")


def publish(settings: Settings, mix: faults.CampaignInput) -> int:
    """Every partner's file, once each, as `accord publish` does; the events Kafka
    acknowledged. No file is published again: provisioning returns only once every broker
    has applied the deployment's topics and grants, so a first refusal fails the test."""
    return sum(
        publish_file(settings, org, dataset, path).published for org, dataset, path in mix.files
    )


def test_a_partner_publishes_at_once_after_provisioning_and_partner_add(cluster, mix):
    """Provisioning a deployment of new topics and grants, and `accord partner add`, return
    only once every broker (each asked itself) has applied them: the partner's first
    publish right after is accepted. Before, a broker still behind refused it at times."""
    settings, values = cluster
    scoped = settings.model_copy(
        update={"topic_prefix": "first.", "worker_id": "accord-campaign-first"}
    )
    began = time.monotonic()
    provision.apply(scoped)
    took = time.monotonic() - began
    orgs = provision.active_organisations(scoped)
    topics = provision.all_topics(scoped, orgs)
    grants = provision.deployment_grants(scoped, orgs)
    org, dataset, path = mix.files[0]
    assert provision.not_applied(scoped, topics, grants, partners=[org]) == []
    assert publish_file(scoped, org, dataset, path).published > 0

    accord(values, "partner", "add", org)
    assert (
        provision.not_applied(
            settings, provision.organisation_topics(settings, org), partners=[org]
        )
        == []
    )
    assert publish_file(settings, org, dataset, path).published > 0
    print(
        f"\nprovisioned {len(topics)} topics and {len(grants)} grants in {took:.1f}s",
        file=sys.stderr,
    )


def run_with(
    settings: Settings, log_dir: Path, fault, **extra: str
) -> tuple[faults.RunFigures, dict[str, float], list[Path]]:
    """Run one worker on `settings` until its group caught up; `fault(worker)` is called
    once the worker holds its partitions (mid-stream) and returns its figures."""
    figures = faults.RunFigures()
    began = time.monotonic()
    pool = processes.Workers(settings, log_dir, loglevel="info", **extra)
    with pool:
        worker = pool.start()
        wait_for_work(pool.log_path(0), worker)
        seen = fault(worker)
        processes.wait_until_caught_up(settings, 300.0, workers=[worker])
        figures.lag_zero = True
        figures.seconds = time.monotonic() - began
    return figures, seen, [pool.log_path(0)]


def check_against(reference, settings, name, seen) -> None:
    serde = serde_of(settings)
    lists = faults.recipient_lists(settings, serde)
    comparison = faults.compare(reference, lists)
    checks = faults.check_shares(settings, serde, [], lists)
    shown = {
        **{k: round(v, 1) for k, v in seen.items()},
        "cases shared": comparison.shared,
        "recipients": comparison.recipients,
        "missing": comparison.missing,
        "extra": comparison.extra,
        "differing": comparison.differing,
        "duplicated": checks.duplicated,
        "share records": checks.records,
        "without an audit record": checks.unaudited,
    }
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in shown.items()), file=sys.stderr)
    assert comparison.shared > 0
    assert (comparison.missing, comparison.extra, comparison.differing) == (0, 0, 0), (
        comparison.examples
    )
    assert checks.duplicated == 0
    assert checks.unaudited == 0


def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing(cluster, mix, reference, tmp_path):
    settings, values = cluster
    scoped = faults._scoped(settings, "kill")
    published = publish(scoped, mix)

    def kill_a_broker(worker) -> dict[str, float]:
        lag = processes.worker_lag(scoped)
        os.kill(node_pid(settings, "kafka-2"), signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(5.0)  # the cluster carries on with two brokers meanwhile
        # The operator's command restarts the missing node.
        accord(values, "stack", "up", "--only", "kafka-2")
        back = time.monotonic() - killed
        return {
            "events published": published,
            "lag when killed": lag,
            "broker back after s": back,
            "in sync again after s": back + wait_until_replicated(settings),
        }

    figures, seen, _ = run_with(scoped, tmp_path, kill_a_broker)
    seen["caught up after s"] = figures.seconds
    check_against(reference, scoped, "broker SIGKILLed mid-stream", seen)
    provision.remove_deployment(scoped)


def test_brokers_away_longer_than_the_delivery_timeout_make_the_hub_wait_not_drop(
    cluster, mix, reference, tmp_path
):
    settings, _ = cluster
    scoped = faults._scoped(settings, "away")
    published = publish(scoped, mix)
    delivery_timeout_s = 5.0
    away_s = delivery_timeout_s * 3

    def freeze_two_brokers(worker) -> dict[str, float]:
        frozen = [node_pid(settings, name) for name in ("kafka-2", "kafka-3")]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        try:
            while time.monotonic() - began < away_s:
                assert worker.poll() is None, "the worker exited while the brokers were away"
                time.sleep(0.5)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        return {"events published": published, "brokers away s": away_s}

    figures, seen, logs = run_with(
        scoped,
        tmp_path,
        freeze_two_brokers,
        ACCORD_PRODUCER_DELIVERY_TIMEOUT_S=str(delivery_timeout_s),
    )
    text = "".join(p.read_text(errors="replace") for p in logs)
    seen["delivery timeout s"] = delivery_timeout_s
    seen["batches retried"] = text.count('"batch_retry"')
    seen["caught up after s"] = figures.seconds
    check_against(reference, scoped, "two brokers away past the delivery timeout", seen)
    # The sends did time out (the outage outlasted the delivery timeout) and were retried.
    assert seen["batches retried"] > 0
    wait_until_replicated(settings)
    provision.remove_deployment(scoped)
    assert local.cluster_health(settings).brokers == [1, 2, 3]
