"""Partner topics created after the worker started: read those of registered
organisations from the tick that finds them, report the others and leave them unread."""

from __future__ import annotations

import asyncio
import re

import faust
from aiokafka.errors import KafkaError

from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics
from accord.worker.faust_compat import (
    kafka_producer,
    resubscribe_if_unsubscribed,
    set_resubscribe_delay,
)
from accord.worker.topology import registered_partners, served_parties, sort_partner_topics

log = get_logger("accord.worker")


class PartnerDiscovery:
    def __init__(
        self, app: faust.App, settings: Settings, source: faust.TopicT, registered: set[str]
    ) -> None:
        self.app = app
        self.settings = settings
        self.topics = Topics(settings)
        self.source = source
        self.registered = registered
        self.reported: set[str] = set()
        self.patterns = [
            re.compile(self.topics.partner_pattern(dataset)) for dataset in DATASET_RECORDS
        ]
        # A new partner's first records should not wait 45 s for faust to resubscribe.
        set_resubscribe_delay(app, 2.0)

    def is_partner_topic(self, name: str) -> bool:
        return any(p.match(name) for p in self.patterns)

    async def tick(self) -> None:
        """Start consuming partner topics of registered organisations (a party to an
        agreement OPA serves, or a registration file); report the others
        (`unknown_partner_topic`).

        The agent iterates a clone of `source` (faust clones a topic when a stream
        starts), and the conductor subscribes the clones' topics: each clone gets the new
        names. faust drops a subscription change flagged during a rebalance, so each tick
        compares what should be read with what the conductor subscribed and flags again.
        Reads the cluster metadata over the producer's own connection: a fresh admin
        client every few seconds cost more CPU than a stage.
        """
        served = await asyncio.to_thread(served_parties, self.settings)
        if served is not None:  # OPA unreachable: keep reading who was registered
            fresh = (served | registered_partners(self.settings)) - self.registered
            self.registered.update(fresh)
            if fresh:
                # Their topics are the administrator's to make (`accord security apply`,
                # `accord partner add`); they are read from the tick that finds them.
                log.info("partners_registered", orgs=sorted(fresh))
        try:
            metadata = await kafka_producer(self.app).client.fetch_all_metadata()
        except KafkaError as exc:
            log.warning("partner_topics_unlisted", error=str(exc))
            return
        found = {t for t in metadata.topics() if self.is_partner_topic(t)}
        wanted, unknown = sort_partner_topics(found, self.registered, self.topics)
        for name in sorted(unknown - self.reported):
            log.warning("unknown_partner_topic", topic=name)
        self.reported.update(unknown)
        source = self.source
        new = sorted(wanted - set(source.topics))
        if new:
            source.topics = [*source.topics, *new]
            log.info("partner_topics_subscribed", topics=new)
        readers = [c for c in self.app.topics if any(self.is_partner_topic(t) for t in c.topics)]
        for channel in readers:
            missing = [t for t in source.topics if t not in channel.topics]
            if missing:
                channel.topics = [*channel.topics, *missing]
        resubscribe_if_unsubscribed(self.app, list(source.topics))
