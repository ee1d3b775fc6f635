"""The faust worker: partner feeds to one governed support list per council.

    partner.<org>.<dataset>.v1 ──check_partner_events──► hub.identity      (by date-of-birth block)
                                                     └─► hub.request-events (outcomes, by request)
    hub.identity ──match_identities──► hub.person-events (by person) ; hub.match.review
                                   └─► hub.request-events (who owns each request)
    hub.request-events ──route_outcomes──► hub.person-events
    hub.person-events ──join_cases──► hub.cases (compacted, by person: the record of each case)
                                 └─► (the gate, same batch) share.<recipient>.support-list ;
                                                            hub.audit.decisions

Every stage keeps its state in a faust table backed by a compacted changelog topic and
partitioned like its input, so workers scale out by partition and recover on restart.

At-least-once: a batch's input offsets are acknowledged only after all its outputs are
acknowledged by the broker. Duplicates are harmless: states store events under their own
ids, outputs are keyed by person into compacted topics, provisional person keys and
decision ids are derived, not random. While OPA is unreachable the gate waits inside its
batch: nothing is shared, acknowledged or dropped; the intake stage likewise holds a
batch until OPA says who may assert what (`worker.authority`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
import requests
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from accord.core.credentials import WORKER, CredentialError
from accord.core.errors import InfrastructureError
from accord.core.kafka import COMPACTED, admin_client, connection
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient, opa_session, opa_token
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import (
    DATASET_RECORDS,
    HUB_COMPACTED_TOPICS,
    HUB_STAGE_TOPICS,
    WORKER_TABLES,
    Topics,
    is_org_id,
)
from accord.worker import cases as case_rules
from accord.worker import faust_compat
from accord.worker.auditlog import AuditLog
from accord.worker.authority import check_authority
from accord.worker.enforce import Gate
from accord.worker.faust_compat import MissedRecords
from accord.worker.identity import erase, resolve
from accord.worker.intake import Incoming, Intake, Rejected, quarantine_record
from accord.worker.state import TableState, claim_datadir, store_url

log = get_logger("accord.worker")


# State of each stage: date-of-birth block -> people; request -> owner and held
# outcomes; person -> case state; person -> recipients holding their case.
TABLES = WORKER_TABLES


@functools.lru_cache(maxsize=65536)
def _key_partition(key: bytes, count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % count


def partition_by_key(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2, as Java clients place keys), remembered per key.

    A person's key is hashed at every stage: into person-events, cases, the tables'
    changelogs, the audit and the share topics. aiokafka's murmur2 is pure Python and
    showed in profiles; the cache answers the repeats.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_partition(key, len(all_partitions))]


def faust_app(settings: Settings, name: str, **options: Any) -> faust.App:
    """A faust app as every Accord process runs it (the worker, the bench's faust mode):
    raw bytes in and out, tables in RocksDB (`accord.worker.state`) under a datadir of
    this process's own (0700), reading from the earliest offset, acks=all.
    """
    config: dict[str, Any] = {
        **connection(settings).faust(),
        "store": store_url(settings),
        "datadir": str(claim_datadir(settings, name)),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "web_enabled": False,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger_ms": 5,
        # A rebalance must not wait for streams to drain: a take_events buffer holds its
        # events until the batch is yielded, and waiting for it can stall the group.
        # Re-processing after a rebalance is harmless (see the module docstring).
        "stream_wait_empty": False,
    }
    # `options` may replace any of these (the bench's driver comparison names its broker).
    return faust.App(name, **{**config, **options})


def served_parties(settings: Settings) -> set[str] | None:
    """Providers and recipients named by the agreements OPA serves; None if OPA cannot say."""
    try:
        response = opa_session(settings).get(f"{settings.opa_url}/v1/data/agreements", timeout=5)
        response.raise_for_status()
        agreements = response.json().get("result") or {}
    except (requests.RequestException, ValueError, CredentialError, AttributeError):
        log.warning("agreements_unreadable", opa_url=settings.opa_url)
        return None
    parties = set()
    for agreement in agreements.values() if isinstance(agreements, dict) else ():
        if isinstance(agreement, dict):
            parties.update(agreement.get("providers") or ())
            parties.update(
                r.get("org") for r in agreement.get("recipients") or () if isinstance(r, dict)
            )
    return {org for org in parties if isinstance(org, str) and is_org_id(org)}


def agreement_parties(settings: Settings) -> set[str]:
    """Providers and recipients named by the agreements OPA serves (empty if OPA cannot say)."""
    return served_parties(settings) or set()


def registered_partners(settings: Settings) -> set[str]:
    """Partners with a registration file under partners/ (e.g. third-sector groups)."""
    folder = settings.home / "partners"
    return {path.stem for path in folder.glob("*.yaml") if is_org_id(path.stem)}


def registered_orgs(settings: Settings) -> set[str]:
    """The organisations whose partner topics the hub reads: every party to an agreement
    OPA serves and every partner with a registration file."""
    return agreement_parties(settings) | registered_partners(settings)


def sort_partner_topics(
    names: set[str] | list[str], registered: set[str], topics: Topics
) -> tuple[set[str], set[str]]:
    """(topics of registered organisations, topics of organisations no one registered)
    among partner topic names. An unknown organisation's topic (a mistyped id, a partner
    not yet under any agreement) is never read: what it holds would otherwise be matched
    against real people's cases."""
    known, unknown = set(), set()
    for name in names:
        try:
            org, _ = topics.parse_partner(name)
        except ValueError:
            unknown.add(name)
            continue
        (known if org in registered else unknown).add(name)
    return known, unknown


def partner_topics(settings: Settings, parties: set[str] | None = None) -> list[str]:
    """The partner topics to consume at start-up: every dataset of every registered
    organisation (`registered_orgs`), which the hub creates, plus their other existing
    partner topics (another version). Other organisations' topics are reported, not read.

    The administrator creates every registered partner's topics (`accord security
    apply`); the worker may not create topics. faust's pattern subscriptions do not
    subscribe in this version, so the list is explicit; `subscribe_new_partner_topics`
    adds partner topics created later.
    """
    topics = Topics(settings)
    parties = registered_orgs(settings) if parties is None else parties
    names = {topics.partner(org, dataset) for org in parties for dataset in DATASET_RECORDS}
    existing = set(existing_partner_topics(settings))
    missing = sorted(names - existing)
    if missing:
        log.warning("partner_topics_missing", topics=len(missing), first=missing[0])
    known, unknown = sort_partner_topics(existing, parties, topics)
    for name in sorted(unknown):
        log.warning("unknown_partner_topic", topic=name)
    return sorted(known)


def existing_partner_topics(settings: Settings) -> list[str]:
    topics = Topics(settings)
    patterns = [re.compile(topics.partner_pattern(dataset)) for dataset in DATASET_RECORDS]
    admin = admin_client(settings)
    try:
        return sorted(t for t in admin.list_topics() if any(p.match(t) for p in patterns))
    finally:
        admin.close()


def require_topics(settings: Settings) -> None:
    """Stop with one clear line when the administrator has not made the worker's topics."""
    topics = Topics(settings)
    needed = [
        *(topics.internal(n) for n in (*HUB_STAGE_TOPICS, *HUB_COMPACTED_TOPICS)),
        topics.audit,
        topics.quarantine,
        *(f"{settings.worker_id}-{name}-changelog" for name in TABLES),
        f"{settings.worker_id}-__assignor-__leader",
    ]
    admin = admin_client(settings)
    deadline = time.monotonic() + 30  # topics just made take a moment to be everywhere
    try:
        while missing := sorted(set(needed) - set(admin.list_topics())):
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        admin.close()
    if missing:
        raise InfrastructureError(
            f"{len(missing)} of the worker's topics do not exist (e.g. {missing[0]}): the "
            "administrator creates them with `accord security apply`"
        )


def registered_partner_topics(settings: Settings) -> list[str]:
    """Existing partner topics of registered organisations: the ones workers read."""
    known, _ = sort_partner_topics(
        existing_partner_topics(settings), registered_orgs(settings), Topics(settings)
    )
    return sorted(known)


def stage_topics(settings: Settings) -> list[str]:
    """The worker's own stage topics, in the order events flow through them."""
    topics = Topics(settings)
    return [topics.internal(name) for name in ("identity", "request-events", "person-events")]


def consumed_topics(settings: Settings) -> list[str]:
    """Every topic a worker reads: registered organisations' partner topics and its stage
    topics. A group with no lag on all of them has decided everything published so far."""
    return registered_partner_topics(settings) + stage_topics(settings)


async def process_until_done(
    work: Callable[[], Awaitable[dict[str, int]]], records: int, retry_s: float
) -> dict[str, int]:
    """Run a batch's work, retrying it whole while infrastructure fails.

    take_events acknowledges a batch once the loop body returns or raises, so the body
    must not return before the batch is done. A retried batch re-sends outputs with the
    same keys, which the compacted topics absorb. Any other error is the batch's own (a
    record no stage foresaw): it is raised for the caller to find and reject the record.
    """
    while True:
        try:
            return await work()
        except (InfrastructureError, KafkaError) as exc:
            log.warning("batch_retry", error=str(exc), records=records)
            await asyncio.sleep(retry_s)


def failure_reason(stage: str, exc: BaseException) -> str:
    """A rejects reason for a record a stage failed on: the stage and the error's type,
    never its message, which could quote the record."""
    return f"the {stage} stage failed on this record ({type(exc).__name__}); it was set aside"


async def record_by_record(
    handler: Callable[[list[Any]], Awaitable[dict[str, int]]],
    events: list[Any],
    stage: str,
    set_aside: Callable[[Any, str, BaseException], Awaitable[dict[str, int]]],
    retry_s: float,
) -> dict[str, int]:
    """A batch a stage failed on, again one record at a time: each record that still fails
    (not for infrastructure, which is retried) is set aside with the reason, the others
    are processed. Replayed records rewrite the same keys (see the module docstring)."""
    counts: dict[str, int] = {"records": len(events), "set_aside": 0}
    for each in events:
        try:
            await process_until_done(functools.partial(handler, [each]), 1, retry_s)
        except StaleBatch:
            raise
        except Exception as exc:
            await process_until_done(functools.partial(set_aside, each, stage, exc), 1, retry_s)
            counts["set_aside"] += 1
    return counts


class StaleBatch(Exception):
    """A rebalance began while a batch was being processed: it must write nothing more.

    Its partitions' owners process it again from the committed offsets; a late write
    from here (a case's state, a share) would land after theirs and undo it.
    """


# The consumer group's rebalance count when the running stage's batch began.
batch_began: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "batch_began", default=None
)


def fetched_in_this_generation(events: list[Any], generation: int, settled: bool) -> list[Any]:
    """The events a worker may still process and acknowledge: none while a rebalance is
    under way (not settled), and after it only those fetched in its generation.

    faust forgets its acknowledgements when partitions are revoked, and the new owner
    reads them again from the committed offset. An acknowledgement that arrives later,
    from a batch that straddled the rebalance, is kept: if its partition comes back,
    faust commits that older offset over the newer one another worker committed, then
    never commits the partition again (it waits for offsets no one will acknowledge).
    """
    if not settled:
        return []
    return [each for each in events if each.message.generation_id == generation]


def records_skipped(
    ends: dict[Any, int | None], committed: dict[Any, int | None], suspects: dict[Any, int]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """(partitions to rewind to their committed offset, partitions to suspect next time).

    A partition is behind when its end is past its committed offset (none committed: 0);
    it is rewound when it was behind at the same committed offset on the previous check
    too, so records still being committed are left alone.
    """
    behind = {
        tp: committed.get(tp) or 0
        for tp, end in ends.items()
        if end is not None and end > (committed.get(tp) or 0)
    }
    rewind = {tp: offset for tp, offset in behind.items() if suspects.get(tp) == offset}
    return rewind, {tp: offset for tp, offset in behind.items() if tp not in rewind}


def is_changelog(topic: str) -> bool:
    """A table's changelog, which faust's recovery reads, not a stream."""
    return topic.endswith("-changelog")


def incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(message.topic, message.partition, message.offset, message.key, message.value)


def create_app(settings: Settings) -> faust.App:
    topics = Topics(settings)
    partitions = settings.topic_partitions
    secret = settings.require_pseudonym_key()
    rules = case_rules.load_priority_rules()
    app = faust_app(
        settings,
        settings.worker_id,
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
            name,
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
    identity_topic = topic(topics.internal("identity"))
    request_topic = topic(topics.internal("request-events"))
    person_topic = topic(topics.internal("person-events"))
    cases_topic = topic(topics.internal("cases"), compacted=True)
    review_topic = topic(topics.internal("match.review"), compacted=True)
    declared: set[str] = set()

    tables = [table(name) for name in TABLES]
    if settings.worker_store == "rocksdb":
        bounded = faust_compat.bounded_rocksdb_options(
            settings.worker_store_memory_mb * 1024 * 1024, max_open_files=64
        )
        for each in tables:
            faust_compat.bound_rocksdb(each, bounded)
    states = [TableState(each, lambda key: _key_partition(key, partitions)) for each in tables]
    identities, request_owners, case_states, released = states

    declaring: dict[str, asyncio.Lock] = {}

    async def declare(name: str) -> None:
        """Make the topic known to the producer. The worker creates no topic: one the
        administrator has not made (a recipient no provisioning knows) fails the send,
        and the batch is held, not lost, until it exists."""
        if name not in declared:
            async with declaring.setdefault(name, asyncio.Lock()):
                if name not in declared:
                    producer = app.producer._ensure_producer()
                    if name not in producer.client.cluster.topics():
                        await producer.client.force_metadata_update()
                    if name not in producer.client.cluster.topics():
                        log.error("topic_missing", topic=name, fix="accord security apply")
                        raise InfrastructureError(f"topic {name} does not exist")
                    await producer.partitions_for(name)
                    declared.add(name)

    async def send(
        name: str, key: bytes, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> Awaitable[Any]:
        """Queue one record; the returned future resolves when the broker has it.

        Straight to the producer rather than through faust's Topic.send, whose per-message
        bookkeeping (callbacks, sensors) cost more than the stage's own work.
        """
        await declare(name)
        began = batch_began.get()
        if began is not None and began != app.rebalancing_count:
            raise StaleBatch()
        return await app.producer.send(name, key, value, None, None, headers or None)

    def as_json(value: Any) -> bytes:
        return orjson.dumps(value)

    serde = AvroSerde(registry_client(settings, WORKER), settings.schemas_dir)
    intake = Intake(serde, topics, secret)

    def batches(stream: faust.StreamT) -> Any:
        return stream.take_events(
            settings.worker_batch_size, within=settings.worker_batch_timeout_s
        )

    async def put(state: TableState, key: bytes, value: Any) -> Awaitable[Any]:
        """table[key] = value; returns the changelog write's acknowledgement to wait for.

        faust writes a table's changelog in the background (send_soon), so a batch could
        be committed before its state change reached the broker, and a partition moved to
        another worker then recovered stale state. Writing the changelog here lets each
        batch wait for its state like for its other outputs; the store takes the value
        once the broker has it (`accord.worker.state`). The record is what faust writes
        (raw key, JSON value) in the partition its partitioner picks.
        """
        return await state.put(key, value, send)  # a stale batch's send is refused

    # app.rebalancing_count grows when a rebalance starts, before faust forgets anything;
    # the group has settled when the latest assignment came after the latest start.
    assigned_after: list[int] = [-1]

    missed = MissedRecords(app.consumer)

    @app.on_partitions_revoked.connect
    async def log_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
        missed.forget()
        for state in states:
            state.revoked({tp.partition for tp in revoked if tp.topic == state.changelog})
        log.info("partitions_revoked", partitions=len(revoked))

    @app.timer(interval=0.5)
    async def reread_missed_records() -> None:
        """Read again records faust fetched and dropped (see `faust_compat`)."""
        if missed.jumps and not app.rebalancing:
            await missed.reread()

    @app.on_partitions_assigned.connect
    async def log_assigned(app: faust.App, assigned: set[Any], **_: Any) -> None:
        assigned_after[0] = app.rebalancing_count
        log.info("partitions_assigned", partitions=len(assigned))
        # The audit partitions are the person-events ones (same key, same count).
        person = person_topic.get_topic_name()
        await audit_log.keep_only({tp.partition for tp in assigned if tp.topic == person})

    def still_current() -> None:
        """Raise StaleBatch when a rebalance began since the running batch did."""
        began = batch_began.get()
        if began is not None and began != app.rebalancing_count:
            raise StaleBatch()

    async def partition_count(name: str) -> int:
        await declare(name)
        return len(await app.producer._ensure_producer().partitions_for(name))

    audit_log = AuditLog(settings, serde, _key_partition, partition_count, still_current)

    @app.on_rebalance_complete.connect
    async def reread_uncommitted_partitions(app: faust.App, **_: Any) -> None:
        """Read partitions with nothing committed yet from their beginning again.

        After every rebalance faust seeks each partition to its committed offset so that
        records it fetched and dropped meanwhile are read again; aiokafka skips that seek
        where nothing is committed. Records a stale batch left unacknowledged there would
        then be passed over, and faust (whose gap check needs a committed offset) would
        commit the later ones over them. Sent before faust resumes its streams.
        """
        committed = await app.consumer.seek_to_committed()
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and not is_changelog(tp.topic)
        ]
        if uncommitted:
            await app.consumer._thread.seek_to_beginning(*uncommitted)

    def current(events: list[Any]) -> list[Any]:
        settled = app.rebalancing_count == assigned_after[0]
        return fetched_in_this_generation(events, app.consumer_generation_id, settled)

    async def run_stage(stream: faust.StreamT, handler: Any, event: str) -> None:
        async for events in batches(stream):
            # take_events acknowledges a batch when the loop moves on, also when the batch
            # was cancelled half-way (a worker stopping). An extra reference per message,
            # released only once the batch is done, keeps an unfinished batch uncommitted.
            for each in events:
                each.message.incref()
            fresh = current(events)
            if len(fresh) < len(events):
                log.info("stale_events_skipped", events=len(events) - len(fresh))
            if not fresh:
                continue
            began = batch_began.set(app.rebalancing_count)
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
                    counts = await record_by_record(
                        handler, fresh, event, set_aside, settings.opa_retry_s
                    )
            except StaleBatch:
                log.info("stale_batch_abandoned", events=len(fresh))
                continue
            finally:
                batch_began.reset(began)
            # Released only if no rebalance came in between; see fetched_in_this_generation.
            for each in current(fresh):
                each.message.decref()
            log.info(event, **counts)

    async def set_aside(event: Any, stage: str, exc: BaseException) -> dict[str, int]:
        """Send a record a stage failed on to the rejects place, with the reason."""
        await reject(incoming(event), "stage_failed", failure_reason(stage, exc), None)
        return {}

    async def reject(message: Incoming, code: str, reason: str, field: str | None) -> None:
        """The record to its publisher's rejects (the topic's owner: it is who published
        it), or to the hub's quarantine when it came from no partner's topic."""
        record = quarantine_record(message, topics, code, reason, field)
        rejects = await rejects_topic(record["source_org"])
        value = serde.encode(Topics.subject(rejects), "QuarantinedRecord", record)
        await (await send(rejects, message.location.encode(), value))
        log.warning("record_quarantined", location=message.location, reason_code=code)

    async def route_by_owner(envelope: dict[str, Any], person: str) -> list[Awaitable[Any]]:
        """The person-events message, and for a request the note of who owns it."""
        envelope["person_key"] = person
        pending = [await send(person_topic.get_topic_name(), person.encode(), as_json(envelope))]
        if envelope["kind"] == "request":
            owner = {"kind": "owner", "request_key": envelope["request_key"], "person_key": person}
            key = envelope["request_key"].encode()
            pending.append(await send(request_topic.get_topic_name(), key, as_json(owner)))
        return pending

    unregistered: set[str] = set()

    async def rejects_topic(owner: str | None) -> str:
        """The publisher's rejects topic; the hub's quarantine for a topic whose owner has
        none (not a registered organisation)."""
        if owner and owner not in unregistered:
            try:
                await declare(topics.rejects(owner))
                return topics.rejects(owner)
            except InfrastructureError:
                unregistered.add(owner)
        return topics.quarantine

    async def check_batch(policy: PolicyClient, events: list[Any]) -> dict[str, int]:
        pending, counts = [], {"records": len(events), "quarantined": 0, "unauthorised": 0}
        checked, rejected = [], []
        for message in map(incoming, events):
            try:
                checked.append((message, intake.check(message)))
            except Rejected as exc:
                rejected.append((message, exc))
        # Who may assert what: one query for the batch, before anything is written, so a
        # batch held while OPA cannot answer is written once when it can.
        refused = await check_authority(policy, [(m.location, e) for m, e in checked])
        for message, exc in rejected:
            await reject(message, exc.code, exc.reason, exc.field)
            counts["quarantined"] += 1
        for message, envelope in checked:
            if (refusal := refused.get(message.location)) is not None:
                await reject(message, refusal.code, refusal.reason, refusal.field)
                counts["quarantined"] += 1
                counts["unauthorised"] += 1
                continue
            if envelope["kind"] == "outcome":
                key = envelope["request_key"].encode()
                pending.append(await send(request_topic.get_topic_name(), key, as_json(envelope)))
            elif envelope["block_key"]:
                key = envelope["block_key"].encode()
                pending.append(await send(identity_topic.get_topic_name(), key, as_json(envelope)))
            else:
                # No date of birth: nothing to match on, so the event stands alone.
                person, _, _, _ = resolve([], envelope, secret)
                pending.extend(await route_by_owner(envelope, person))
        await asyncio.gather(*pending)
        return counts

    async def match_batch(events: list[Any]) -> dict[str, int]:
        pending, counts = [], {"events": len(events), "reviews": 0}
        for event in events:
            key, envelope = event.message.key, orjson.loads(event.message.value)
            block = identities.get(key) or []
            if envelope.get("kind") == "erase":  # an opt-out (see cases.Joined.erasures)
                people = erase(block, envelope["person_key"])
                if people is not block:
                    pending.append(await put(identities, key, people))
                    counts["erased"] = counts.get("erased", 0) + 1
                continue
            person, people, review, merges = resolve(block, envelope, secret)
            if people is not block:
                pending.append(await put(identities, key, people))
            pending.extend(await route_by_owner(envelope, person))
            for provisional in merges:
                counts["merged"] = counts.get("merged", 0) + 1
                merge = case_rules.merge_event(provisional, person, envelope)
                pending.append(
                    await send(person_topic.get_topic_name(), provisional.encode(), as_json(merge))
                )
            if review is not None:
                counts["reviews"] += 1
                review_key = review["provisional_key"].encode()
                review_topic_name = review_topic.get_topic_name()
                pending.append(await send(review_topic_name, review_key, as_json(review)))
        await asyncio.gather(*pending)
        return counts

    async def route_outcome_batch(events: list[Any]) -> dict[str, int]:
        pending, counts = [], {"events": len(events), "held": 0}
        for event in events:
            key, message = event.message.key, orjson.loads(event.message.value)
            state = request_owners.get(key) or {"person_key": None, "held": {}}
            if message["kind"] == "owner":
                state["person_key"] = message["person_key"]
                ready, state["held"] = list(state["held"].values()), {}
            elif state["person_key"] is None:
                state["held"][message["event_id"]] = message  # the outcome came first
                counts["held"] += 1
                ready = []
            else:
                ready = [message]
            for outcome in ready:
                outcome["person_key"] = state["person_key"]
                person = state["person_key"].encode()
                pending.append(await send(person_topic.get_topic_name(), person, as_json(outcome)))
            pending.append(await put(request_owners, key, state))
        await asyncio.gather(*pending)
        return counts

    async def join_batch(gate: Gate, events: list[Any]) -> dict[str, int]:
        """Fold the batch into cases (`cases.join`, pure), then write what it produced."""
        joined = case_rules.join(
            [(e.message.key.decode(), orjson.loads(e.message.value)) for e in events],
            lambda key: case_states.get(key.encode()),
            rules,
        )
        pending = []
        person_topic_name = person_topic.get_topic_name()
        for person, envelope in joined.person_events:
            pending.append(await send(person_topic_name, person.encode(), as_json(envelope)))
        for request_key, person in joined.owners:
            owner = {"kind": "owner", "request_key": request_key, "person_key": person}
            key = request_key.encode()
            pending.append(await send(request_topic.get_topic_name(), key, as_json(owner)))
        for person, state in joined.states.items():
            pending.append(await put(case_states, person.encode(), state))
        for view in joined.views:
            key = view["case_key"].encode()
            pending.append(await send(cases_topic.get_topic_name(), key, as_json(view)))
        identity_name = identity_topic.get_topic_name()
        for block, person in joined.erasures:
            erasure = {"kind": "erase", "person_key": person}
            pending.append(await send(identity_name, block.encode(), as_json(erasure)))
        for person, event_id, reason in joined.refused:
            log.warning("person_event_refused", person_key=person, event_id=event_id, reason=reason)
        # The case is keyed and partitioned like its events: decide it here, in the same
        # batch, rather than after one more trip through Kafka.
        counts = await gate.process(joined.views)
        await asyncio.gather(*pending)
        moved = len(joined.person_events)
        return {"events": len(events), **counts, "forwarded": moved, "refused": len(joined.refused)}

    @app.agent(source, name="check_partner_events")
    async def check_partner_events(stream: faust.StreamT) -> None:
        """Decode, check and validate partner records, refuse what their publisher has no
        authority to assert (one OPA query per batch); route the rest by matching block."""
        async with PolicyClient(
            settings.opa_url, settings.opa_timeout_s, token=opa_token(settings)
        ) as policy:
            await run_stage(stream, functools.partial(check_batch, policy), "partner_batch_checked")

    @app.agent(identity_topic, name="match_identities")
    async def match_identities(stream: faust.StreamT) -> None:
        """Decide which person each event is about, within its date-of-birth block."""
        await run_stage(stream, match_batch, "identities_matched")

    @app.agent(request_topic, name="route_outcomes")
    async def route_outcomes(stream: faust.StreamT) -> None:
        """Send each outcome to the person who owns its request, holding early arrivals."""
        await run_stage(stream, route_outcome_batch, "outcomes_routed")

    gates: list[Gate] = []

    @app.agent(person_topic, name="join_cases")
    async def join_cases(stream: faust.StreamT) -> None:
        """Join each person's events into their support case, then decide every changed
        case against the agreements (one OPA query per batch) and release what is allowed."""
        async with PolicyClient(
            settings.opa_url, settings.opa_timeout_s, token=opa_token(settings)
        ) as policy:
            gate = Gate(
                settings,
                serde,
                policy,
                send,
                released=lambda key: list(released.get(key.encode()) or []),
                set_released=lambda key, holders: put(released, key.encode(), holders),
                audit=audit_log.write,
            )
            gates.append(gate)
            await run_stage(stream, functools.partial(join_batch, gate), "cases_joined")

    suspects: dict[Any, int] = {}

    @app.timer(interval=settings.skipped_records_check_s)
    async def rewind_skipped_records() -> None:
        """Re-read records faust fetched but never handed to a stream.

        Around a rebalance faust drops fetched records (a generation changed, flow was
        stopped) after the client has moved past them, and counts on a seek to the
        committed offset to read them again; the client skips that seek for a partition
        with nothing committed yet. The records then wait, unprocessed and uncommitted,
        until the next restart. A worker with nothing in hand whose committed offset
        stays behind a partition's end on two checks in a row rewinds it.
        """
        consumer = app.consumer
        busy = app.rebalancing or any(
            not m.acked and m.generation_id == app.consumer_generation_id
            for m in list(consumer._unacked_messages)
        )
        if busy or not app.rebalancing_count == assigned_after[0]:
            suspects.clear()
            return
        ends = {}
        for tp in consumer.assignment():
            if not is_changelog(tp.topic):
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    ends[tp] = consumer.highwater(tp)
        rewind, behind = records_skipped(ends, dict(consumer._committed_offset), suspects)
        suspects.clear()
        suspects.update(behind)
        for tp, offset in rewind.items():
            log.warning(
                "partition_rewound",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                end=ends[tp],
            )
            await consumer.seek(tp, offset)

    swept: dict[str, str] = {}
    # faust waits 45 s before acting on a subscription change (to batch restarts); a new
    # partner's first records should not wait that long.
    app.topics._resubscribe_sleep_lock_seconds = 2.0

    patterns = [re.compile(topics.partner_pattern(dataset)) for dataset in DATASET_RECORDS]
    reported: set[str] = set()

    def is_partner_topic(name: str) -> bool:
        return any(p.match(name) for p in patterns)

    @app.timer(interval=settings.partner_discovery_interval_s)
    async def subscribe_new_partner_topics() -> None:
        """Start consuming partner topics created after this worker started, of registered
        organisations only (a party to an agreement OPA serves, or a registration file);
        report the others (`unknown_partner_topic`) and leave them unread.

        The agent iterates a clone of `source` (faust clones a topic when a stream
        starts), and the conductor subscribes the clones' topics: each clone gets the new
        names. faust drops a subscription change flagged during a rebalance, so each tick
        compares what should be read with what the conductor subscribed and flags again.
        Reads the cluster metadata over the producer's own connection: a fresh admin
        client every few seconds cost more CPU than a stage.
        """
        served = await asyncio.to_thread(served_parties, settings)
        if served is not None:  # OPA unreachable: keep reading who was registered
            fresh = (served | registered_partners(settings)) - registered
            registered.update(fresh)
            if fresh:
                # Their topics are the administrator's to make (`accord security apply`,
                # `accord partner add`); they are read from the tick that finds them.
                log.info("partners_registered", orgs=sorted(fresh))
        try:
            metadata = await app.producer._ensure_producer().client.fetch_all_metadata()
        except KafkaError as exc:
            log.warning("partner_topics_unlisted", error=str(exc))
            return
        found = {t for t in metadata.topics() if is_partner_topic(t)}
        wanted, unknown = sort_partner_topics(found, registered, topics)
        for name in sorted(unknown - reported):
            log.warning("unknown_partner_topic", topic=name)
        reported.update(unknown)
        new = sorted(wanted - set(source.topics))
        if new:
            source.topics = [*source.topics, *new]
            log.info("partner_topics_subscribed", topics=new)
        readers = [c for c in app.topics if any(is_partner_topic(t) for t in c.topics)]
        for channel in readers:
            missing = [t for t in source.topics if t not in channel.topics]
            if missing:
                channel.topics = [*channel.topics, *missing]
        if any(t not in app.topics._topic_name_index for t in source.topics):
            app.topics._flag_changes()  # the conductor re-subscribes with the new topics

    @app.timer(interval=settings.policy_sweep_interval_s)
    async def redecide_on_policy_change() -> None:
        """When the rules or agreements change, decide every case again.

        A suspended or expired agreement then tombstones what was shared under it, and a
        newly active one shares what was withheld, without waiting for the next event
        about each person.
        """
        if not gates:
            return
        gate = gates[0]
        try:
            revision = await gate.policy.revision()
        except InfrastructureError:
            return  # OPA is down: nothing changes until it is back
        last = swept.setdefault("revision", revision)
        if revision == last:
            return
        # Read from the store a chunk at a time: every case held need not fit in memory.
        views = (
            view
            for state in case_states.values()
            if state and (view := case_rules.build_case(state, rules)) is not None
        )
        log.info("policy_changed", revision=revision, previous=last)
        size, decided = settings.worker_batch_size, 0
        while chunk := list(itertools.islice(views, size)):
            decided += len(chunk)
            try:
                await process_until_done(
                    functools.partial(gate.process, chunk), len(chunk), settings.opa_retry_s
                )
            except Exception as exc:  # a case the gate cannot decide: decide the rest
                log.warning("policy_sweep_failed", cases=len(chunk), error=type(exc).__name__)
                for view in chunk:
                    try:
                        await process_until_done(
                            functools.partial(gate.process, [view]), 1, settings.opa_retry_s
                        )
                    except Exception as each:
                        log.warning(
                            "case_not_redecided",
                            case_key=view["case_key"],
                            error=type(each).__name__,
                        )
        log.info("policy_swept", revision=revision, cases=decided)
        swept["revision"] = revision

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT, as `accord worker` does."""
    from faust.worker import Worker

    os.umask(0o077)  # the tables' files hold personal data: 0600 under 0700 dirs
    app = create_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
