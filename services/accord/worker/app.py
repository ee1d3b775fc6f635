"""The faust worker: consumes partner topics in batches and enforces agreements.

At-least-once: a batch's offsets are acknowledged only after its outputs are acknowledged
by the broker. Outputs are keyed by the pseudonymous person key into compacted topics and
decision ids are derived from (event, recipient, revision), so re-processing a batch after
a crash rewrites the same keys: duplicates are harmless. While OPA is unreachable the
agent waits inside the batch: nothing is shared, acknowledged or dropped.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import faust
import requests
from aiokafka.errors import KafkaError

from accord.core.errors import InfrastructureError
from accord.core.kafka import COMPACTED, admin_client, ensure_topics
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient
from accord.core.serde import AvroSerde, SchemaRegistryClient
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, Topics
from accord.worker.enforce import Enforcer, Incoming

log = get_logger("accord.worker")


def faust_broker(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def partner_topics(settings: Settings) -> list[str]:
    """The partner topics to consume: every provider the agreements name, plus any
    existing partner topic, so a partner without an agreement is still decided (denied)
    and audited rather than ignored.

    faust's pattern subscriptions do not subscribe in this version, so the list is
    explicit; a worker picks up a new provider's topic when it restarts.
    """
    topics = Topics(settings)
    names = {topics.partner(org, SHIELDING_LIST) for org in agreement_providers(settings)}
    pattern = re.compile(topics.partner_pattern(SHIELDING_LIST))
    # The hub owns partner topics: create the agreed ones so partners can publish at once.
    ensure_topics(settings.bootstrap_servers, dict.fromkeys(names), settings.topic_partitions)
    admin = admin_client(settings.bootstrap_servers)
    try:
        names.update(t for t in admin.list_topics() if pattern.match(t))
    finally:
        admin.close()
    return sorted(names)


def agreement_providers(settings: Settings) -> set[str]:
    """Providers named by the agreements OPA serves (empty if OPA cannot say)."""
    try:
        response = requests.get(f"{settings.opa_url}/v1/data/agreements", timeout=5)
        agreements = response.json().get("result") or {}
    except (requests.RequestException, ValueError):
        log.warning("agreements_unreadable", opa_url=settings.opa_url)
        return set()
    return {
        org
        for agreement in agreements.values()
        if isinstance(agreement, dict)
        for org in agreement.get("providers") or ()
    }


def create_app(settings: Settings) -> faust.App:
    topics = Topics(settings)
    app = faust.App(
        settings.worker_id,
        broker=faust_broker(settings.bootstrap_servers),
        store="memory://",
        datadir=str(settings.state_dir / "faust" / settings.worker_id),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        # A batch may wait for OPA; that is not a stuck worker.
        stream_processing_timeout=3600,
        broker_max_poll_interval=3600,
    )
    source = app.topic(
        *partner_topics(settings),
        key_serializer="raw",
        value_serializer="raw",
    )
    declared: dict[str, Any] = {}

    async def ensure_topic(name: str) -> None:
        if name not in declared:
            topic = app.topic(
                name,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.topic_partitions,
                config=dict(COMPACTED) if name.startswith(topics.prefix + "share.") else None,
            )
            await topic.maybe_declare()
            declared[name] = topic

    async def send(topic_name: str, key: bytes, value: bytes) -> Any:
        await ensure_topic(topic_name)
        return await declared[topic_name].send(key=key, value=value)

    @app.agent(source, name="enforce_agreements")
    async def enforce_agreements(stream: faust.StreamT) -> None:
        """Decide every partner record against the agreements, in batches."""
        serde = AvroSerde(SchemaRegistryClient(settings.schema_registry_url), settings.schemas_dir)
        async with PolicyClient(settings.opa_url, settings.opa_timeout_s) as policy:
            enforcer = Enforcer(settings, serde, policy, send, ensure_topic)
            for name in (topics.audit, topics.quarantine):
                await ensure_topic(name)
            async for events in stream.take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout_s
            ):
                batch = [
                    Incoming(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.message.key,
                        e.message.value,
                    )
                    for e in events
                ]
                counts = await process_until_done(enforcer, batch, settings.opa_retry_s)
                log.info("batch_enforced", **counts)

    return app


async def process_until_done(
    enforcer: Enforcer, batch: list[Incoming], retry_s: float
) -> dict[str, int]:
    """Process a batch, retrying it whole while infrastructure fails.

    take_events acknowledges a batch once the loop body returns or raises, so the body
    must not return before the batch is done. A retried batch re-sends outputs with the
    same keys and decision ids, which the compacted views absorb. An error we did not
    foresee ends the process before its offsets can be committed: better restarted than
    lost.
    """
    while True:
        try:
            return await enforcer.process(batch)
        except (InfrastructureError, KafkaError) as exc:
            log.warning("batch_retry", error=str(exc), records=len(batch))
            await asyncio.sleep(retry_s)
        except Exception:
            log.exception("batch_failed_unexpectedly", records=len(batch))
            os._exit(70)


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT, as `accord worker` does."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
