"""The faust worker: partner feeds to one governed support list per council.

This module only wires the parts: the topics and tables (`topology`, `core.topics`), the
stages (`pipeline.stages`: pure functions over a batch, see the flow there), how a batch
is processed and retried (`batches`), the writes (`writer`), the gate that decides and
releases each changed case in the join stage's batch (`pipeline.decision`), the offset
guards around rebalances (`offsets`), new partner topics (`discovery`) and the policy
sweep (`sweep`). Every faust or aiokafka internal used is in `faust_compat`.

Every stage keeps its state in a faust table backed by a compacted changelog topic and
partitioned like its input, so workers scale out by partition and recover on restart.
While OPA is unreachable the gate waits inside its batch: nothing is shared, acknowledged
or dropped; the intake stage likewise holds a batch until OPA says who may assert what
(`pipeline.authority`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson

from accord.core import metrics
from accord.core.credentials import WORKER
from accord.core.errors import InfrastructureError, SchemaError
from accord.core.kafka import COMPACTED, as_principal, connection, partition_lags
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient, opa_token
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import (
    CASES,
    IDENTITY,
    MATCH_DECISIONS,
    MATCH_REVIEW,
    PERSON_EVENTS,
    REQUEST_EVENTS,
    WORKER_TABLES,
    Topics,
)
from accord.matching.model import default_model
from accord.pipeline import cases as case_rules
from accord.pipeline import stages, timers
from accord.pipeline.authority import check_authority
from accord.pipeline.decision import Gate
from accord.pipeline.intake import Incoming, Intake, Rejected, quarantine_record
from accord.worker import faust_compat
from accord.worker.auditlog import AuditLog
from accord.worker.batches import (
    StaleBatch,
    batch_began,
    failure_reason,
    incoming,
    process_until_done,
    record_by_record,
)
from accord.worker.discovery import PartnerDiscovery
from accord.worker.faust_compat import _key_partition, faust_app, partition_by_key
from accord.worker.offsets import OffsetGuard
from accord.worker.state import TableState
from accord.worker.sweep import PolicySweep
from accord.worker.topology import partner_topics, registered_orgs, require_topics
from accord.worker.writer import Writer

log = get_logger("accord.worker")

Handler = Callable[[list[Any]], Awaitable[dict[str, int]]]


def decoded(events: list[Any]) -> list[tuple[bytes, dict[str, Any]]]:
    return [(e.message.key, orjson.loads(e.message.value)) for e in events]


def create_app(settings: Settings) -> faust.App:
    topics = Topics(settings)
    partitions = settings.topic_partitions
    secret = settings.require_pseudonym_key()
    rules = case_rules.load_priority_rules(settings.priority_rules_file)
    default_model()  # the matching model named in the settings: refuse to start without it
    app = faust_app(
        settings,
        settings.worker_group,
        topic_partitions=partitions,
        # Only the administrator creates topics (accord.access.provision makes the
        # worker's, the changelogs and faust's assignor topic included).
        topic_allow_declare=False,
        producer_partitioner=partition_by_key,
        broker_commit_every=1000,
        # A killed worker's partitions move to the others after this, not after a minute.
        broker_session_timeout=10,
        broker_heartbeat_interval=2,
        broker_commit_interval=1.0,
        # A batch may wait for OPA; that is not a stuck worker.
        stream_processing_timeout=3600,
        broker_max_poll_interval=3600,
        table_cleanup_interval=3600,
        # No standby copies: a policy change re-decides each case on its owner only.
        table_standby_replicas=0,
    )

    def topic(name: str, compacted: bool = False) -> faust.TopicT:
        return app.topic(
            topics.internal(name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            config=dict(COMPACTED) if compacted else None,
        )

    def table(name: str) -> faust.Table:
        # Keys are the stream's raw key bytes and the partition comes from the key, so a
        # table entry lives in the same partition as the events about it.
        return app.Table(
            name,
            default=None,
            partitions=partitions,
            # bytes keys make faust use the raw codec for keys, in writes and recovery alike.
            key_type=bytes,
            use_partitioner=True,
        )

    # Stage topics must exist before the consumer subscribes, or it would not see them;
    # the administrator made them (the worker may not create topics).
    require_topics(settings)
    registered = registered_orgs(settings)
    source = app.topic(
        *partner_topics(settings, registered), key_serializer="raw", value_serializer="raw"
    )
    identity_topic = topic(IDENTITY)
    request_topic = topic(REQUEST_EVENTS)
    person_topic = topic(PERSON_EVENTS)
    topic(CASES, compacted=True)
    topic(MATCH_REVIEW, compacted=True)
    decisions_topic = topic(MATCH_DECISIONS)
    tables = [table(name) for name in WORKER_TABLES]
    if settings.worker_store == "rocksdb":
        bounded = faust_compat.bounded_rocksdb_options(
            settings.worker_store_memory_mb * 1024 * 1024, max_open_files=64
        )
        for each in tables:
            faust_compat.bound_rocksdb(each, bounded)
    states = [TableState(each, lambda key: _key_partition(key, partitions)) for each in tables]
    identities, request_owners, case_states, released = states

    writer = Writer(app, topics)
    guard = OffsetGuard(app)
    serde = AvroSerde(registry_client(settings, WORKER), settings.schemas_dir)
    intake = Intake(serde, topics, secret)
    audit_log = AuditLog(
        settings, serde, _key_partition, writer.partition_count, writer.still_current
    )

    @app.on_partitions_revoked.connect
    async def log_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
        guard.revoked()
        for state in states:
            state.revoked({tp.partition for tp in revoked if tp.topic == state.changelog})
        log.info("partitions_revoked", partitions=len(revoked))

    @app.on_partitions_assigned.connect
    async def log_assigned(app: faust.App, assigned: set[Any], **_: Any) -> None:
        guard.assigned()
        log.info("partitions_assigned", partitions=len(assigned))
        # The audit partitions are the person-events ones (same key, same count).
        person = person_topic.get_topic_name()
        await audit_log.keep_only({tp.partition for tp in assigned if tp.topic == person})

    ready: list[bool] = []

    @app.on_rebalance_complete.connect
    async def reread_uncommitted_partitions(app: faust.App, **_: Any) -> None:
        await guard.reread_uncommitted()
        if not ready:
            ready.append(True)
            await log_ready(app)

    async def log_ready(app: faust.App) -> None:
        """One line once the worker has joined its group and holds its partitions: what
        it reads, its group, the OPA it asks and the policy revision OPA serves."""
        try:
            async with policy_client() as policy:
                revision: str | None = await policy.revision(fresh=True)
            opa_state = "answered"
        except Exception as exc:  # OPA away: the gate waits for it; the line says so
            revision, opa_state = None, f"unavailable ({type(exc).__name__})"
        assigned = app.consumer.assignment() if app.consumer else set()
        log.info(
            "worker_ready",
            group=settings.worker_group,
            topic_prefix=settings.topic_prefix or None,
            partner_topics=len(source.topics),
            stage_topics=topics.stages(),
            partitions=len(assigned),
            bootstrap=settings.bootstrap_servers,
            opa=settings.opa_url,
            opa_state=opa_state,
            policy_revision=revision,
        )

    async def run_stage(stream: faust.StreamT, handler: Handler, event: str, stage: str) -> None:
        batches = stream.take_events(
            settings.worker_batch_size, within=settings.worker_batch_timeout_s
        )
        async for events in batches:
            # take_events acknowledges a batch when the loop moves on, also when the batch
            # was cancelled half-way (a worker stopping). An extra reference per message,
            # released only once the batch is done, keeps an unfinished batch uncommitted.
            for each in events:
                each.message.incref()
            fresh = guard.current(events)
            if len(fresh) < len(events):
                log.info("stale_events_skipped", events=len(events) - len(fresh))
            if not fresh:
                continue
            began = batch_began.set(app.rebalancing_count)
            started = time.perf_counter()
            try:
                try:
                    counts = await process_until_done(
                        functools.partial(handler, fresh), len(fresh), settings.opa_retry_s
                    )
                except StaleBatch:
                    raise
                except Exception as exc:
                    # One record no stage foresaw must not stop the hub: process the batch
                    # one record at a time and set aside the ones that still fail.
                    log.warning(
                        "batch_failed", stage=event, records=len(fresh), error=type(exc).__name__
                    )
                    metrics.error("worker", "batch_failed")
                    counts = await record_by_record(
                        handler, fresh, event, set_aside, settings.opa_retry_s
                    )
            except StaleBatch:
                log.info("stale_batch_abandoned", events=len(fresh))
                continue
            finally:
                batch_began.reset(began)
            # Released only if no rebalance came in between; see fetched_in_this_generation.
            for each in guard.current(fresh):
                each.message.decref()
            log.info(event, **counts)
            metrics.stage_done("worker", stage, len(fresh), counts, time.perf_counter() - started)

    async def set_aside(event: Any, stage: str, exc: BaseException) -> dict[str, int]:
        """Send a record a stage failed on to the rejects place, with the reason."""
        await reject(incoming(event), "stage_failed", failure_reason(stage, exc), None)
        return {}

    unregistered: set[str] = set()

    async def rejects_topic(owner: str | None) -> str:
        """The publisher's rejects topic; the hub's quarantine for a topic whose owner has
        none (not a registered organisation)."""
        if owner and owner not in unregistered:
            try:
                await writer.declare(topics.rejects(owner))
                return topics.rejects(owner)
            except InfrastructureError:
                unregistered.add(owner)
        return topics.quarantine

    async def reject(
        message: Incoming,
        code: str,
        reason: str,
        field: str | None,
        problems: tuple[dict[str, Any], ...] = (),
    ) -> None:
        """The record to its publisher's rejects (the topic's owner: it is who published
        it), or to the hub's quarantine when it came from no partner's topic."""
        record = quarantine_record(message, topics, code, reason, field, problems)
        rejects = await rejects_topic(record["source_org"])
        value = serde.encode(Topics.subject(rejects), "QuarantinedRecord", record)
        await (await writer.send(rejects, message.location.encode(), value))
        log.warning("record_quarantined", location=message.location, reason_code=code)
        metrics.QUARANTINED.labels("worker", code).inc()

    async def check_batch(policy: PolicyClient, events: list[Any]) -> dict[str, int]:
        checked, rejected = [], []
        for message in map(incoming, events):
            try:
                checked.append((message, intake.check(message)))
            except Rejected as exc:
                rejected.append((message, exc))
        # Who may assert what: one query for the batch, before anything is written, so a
        # batch held while OPA cannot answer is written once when it can.
        refused = await check_authority(policy, [(m.location, e) for m, e in checked])
        out = stages.route_checked(checked, rejected, refused, secret)
        for message, code, reason, field, problems in out.rejects:
            await reject(message, code, reason, field, problems)
        await asyncio.gather(*await writer.write(out))
        return out.counts

    async def match_batch(events: list[Any]) -> dict[str, int]:
        out = stages.match(decoded(events), identities.get, secret)
        await asyncio.gather(*await writer.write(out, identities))
        for person, decision_id, reason in out.refused:
            log.warning(
                "review_decision_refused", person_key=person, decision_id=decision_id, reason=reason
            )
        return out.counts

    async def route_review_batch(events: list[Any]) -> dict[str, int]:
        """Reviewers' decisions (Avro, from the reviewer principal) to the stages that
        apply them; one that does not decode is counted and skipped (it changes nothing)."""
        decisions = []
        subject = Topics.subject(decisions_topic.get_topic_name())
        for event in events:
            value = event.message.value
            try:
                record = (
                    serde.decode_as(value, subject, "MatchReviewDecision")[1] if value else None
                )
            except SchemaError as exc:  # not a decision's schema: changes nothing
                log.warning("review_decision_unreadable", error=type(exc).__name__)
                continue
            decisions.append((event.message.key, record))
        out = stages.route_reviews(decisions)
        await asyncio.gather(*await writer.write(out))
        return out.counts

    async def route_outcome_batch(events: list[Any]) -> dict[str, int]:
        now = timers.iso(datetime.now(UTC))
        out = stages.route_outcomes(decoded(events), request_owners.get, now)
        for message, code, reason, field, problems in out.rejects:  # held too long: no such request
            await reject(message, code, reason, field, problems)
        await asyncio.gather(*await writer.write(out, request_owners))
        return out.counts

    async def join_batch(gate: Gate, events: list[Any]) -> dict[str, int]:
        """Fold the batch into cases, then decide every changed case in the same batch
        (same key, same partition) rather than after one more trip through Kafka."""
        out = stages.join(decoded(events), case_states.get, rules, holders)
        for message, code, reason, field, problems in out.rejects:  # outcomes against no held case
            await reject(message, code, reason, field, problems)
        pending = await writer.write(out, case_states)
        for person, event_id, reason in out.refused:
            log.warning("person_event_refused", person_key=person, event_id=event_id, reason=reason)
        counts = await gate.process(out.views)
        await asyncio.gather(*pending)
        return {**out.counts, **counts}

    def policy_client() -> PolicyClient:
        return PolicyClient(settings.opa_url, settings.opa_timeout_s, token=opa_token(settings))

    def holders(key: bytes) -> list[str]:
        return list(released.get(key) or [])

    sweep = PolicySweep(app, settings, case_states.values, holders, rules)

    @app.agent(source, name="check_partner_events")
    async def check_partner_events(stream: faust.StreamT) -> None:
        """Decode, check and validate partner records, refuse what their publisher has no
        authority to assert (one OPA query per batch); route the rest."""
        async with policy_client() as policy:
            await run_stage(
                stream,
                functools.partial(check_batch, policy),
                "partner_batch_checked",
                "check_partner_events",
            )

    @app.agent(identity_topic, name="match_identities")
    async def match_identities(stream: faust.StreamT) -> None:
        """Decide which person each event is about, within its date-of-birth block."""
        await run_stage(stream, match_batch, "identities_matched", "match_identities")

    @app.agent(decisions_topic, name="apply_review_decisions")
    async def apply_review_decisions(stream: faust.StreamT) -> None:
        """Send each reviewer's decision (confirm, reject, split) to the stage it changes."""
        await run_stage(
            stream, route_review_batch, "review_decisions_routed", "apply_review_decisions"
        )

    @app.agent(request_topic, name="route_outcomes")
    async def route_outcomes(stream: faust.StreamT) -> None:
        """Send each outcome to the person who owns its request, holding early arrivals."""
        await run_stage(stream, route_outcome_batch, "outcomes_routed", "route_outcomes")

    @app.agent(person_topic, name="join_cases")
    async def join_cases(stream: faust.StreamT) -> None:
        """Join each person's events into their support case, then decide every changed
        case against the agreements (one OPA query per batch) and release what is allowed."""
        async with policy_client() as policy:
            gate = Gate(
                settings,
                serde,
                policy,
                writer.send,
                released=lambda key: holders(key.encode()),
                set_released=lambda key, now: writer.put(released, key.encode(), now),
                audit=audit_log.write,
            )
            sweep.gate = gate
            await run_stage(
                stream, functools.partial(join_batch, gate), "cases_joined", "join_cases"
            )

    discovery = PartnerDiscovery(app, settings, source, registered)
    app.timer(interval=0.5, name="reread_missed_records")(guard.reread_missed)
    app.timer(interval=settings.skipped_records_check_s, name="rewind_skipped_records")(
        guard.rewind_skipped
    )
    app.timer(interval=settings.partner_discovery_interval_s, name="subscribe_new_partners")(
        discovery.tick
    )
    app.timer(interval=settings.policy_sweep_interval_s, name="redecide_on_policy_change")(
        sweep.tick
    )

    @app.timer(interval=settings.reassess_interval_s, name="reassess_as_time_passes")
    async def reassess_as_time_passes() -> None:
        """Time passing with no new event: cases a timed priority rule has come due for
        are assessed again, and outcomes held too long for their request are given up,
        each by a message to its own stage (which stays the only writer of its state)."""
        now = datetime.now(UTC)
        due = timers.due_reassessments(case_states.values(), rules, now)
        hold = timedelta(seconds=settings.outcome_hold_s)
        expired = timers.expired_holds(request_owners.values(), now, hold)
        sends = [(person_topic, key, value) for key, value in due]
        sends += [(request_topic, key, value) for key, value in expired]
        try:
            pending = [
                await writer.send(t.get_topic_name(), key.encode(), orjson.dumps(value))
                for t, key, value in sends
            ]
            await asyncio.gather(*pending)
        except InfrastructureError as exc:  # Kafka away: the next tick finds them again
            log.warning("reassess_failed", error=str(exc))
            metrics.error("worker", "reassess_failed")
            return
        if sends:
            log.info("reassessed_as_time_passed", cases=len(due), expired_holds=len(expired))

    # Health: the loop beats every second; readiness asks Kafka and OPA (accord.core.metrics).
    health = metrics.Health("worker", metrics.standard_checks(settings, WORKER))
    app.timer(interval=1.0, name="beat")(_async(health.beat))
    stage_topics = [t.get_topic_name() for t in (identity_topic, request_topic, person_topic)]

    @app.timer(interval=settings.lag_interval_s, name="measure_lag")
    async def measure_lag() -> None:
        """The group's lag per partition, from the broker's committed offsets."""
        try:
            consumed = [*source.topics, *stage_topics]  # partners discovered since included
            lags = await asyncio.to_thread(
                partition_lags, connection(as_principal(settings, WORKER)), app.conf.id, consumed
            )
        except Exception as exc:  # Kafka away: readiness says so; try again next tick
            log.warning("lag_unmeasured", error=type(exc).__name__)
            return
        for (topic_name, partition), lag in lags.items():
            metrics.CONSUMER_LAG.labels("worker", app.conf.id, topic_name, str(partition)).set(lag)

    app.accord_health = health  # type: ignore[attr-defined]  # run_worker serves it
    return app


def _async(beat: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def tick() -> None:
        beat()

    return tick


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT, as `accord worker` does."""
    import sys

    from faust.worker import Worker

    app = create_app(settings)
    metrics.serve(
        app.accord_health,  # type: ignore[attr-defined]
        settings.metrics_host,
        settings.worker_metrics_port,
        tries=16,
    )
    os.umask(0o077)  # the tables' files hold personal data: 0600 under 0700 dirs
    # faust's own log lines go through mode's colouring formatter, which colours its
    # arguments whatever the stream: off a terminal they get a plain one, so a log file
    # or a collector gets no control codes.
    plain = None
    if not sys.stderr.isatty():
        plain = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"}
            },
            "handlers": {
                "default": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": loglevel.upper(), "handlers": ["default"]},
        }
    worker = Worker(app, loglevel=loglevel, quiet=True, logging_config=plain)
    if not sys.stderr.isatty() or not sys.stdout.isatty():
        faust_compat.drop_spinner(worker)
    worker.execute_from_commandline()
