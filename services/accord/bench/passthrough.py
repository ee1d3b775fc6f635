"""The two baselines of `accord bench`, each in its own process so its memory is its own.

    raw    a plain aiokafka consume → decode → encode → produce loop: the practical
           ceiling of a Python client on this machine
    faust  the same work in a faust agent, in batches, as the pipeline's agents do it

Both read the benchmark's partner topics, decode each record from the wire format and
encode it again (the same fastavro path as the pipeline), and write to one output topic
with acks=all, committing input only after the output is acknowledged. Neither joins,
matches or asks a policy. Run as `python -m accord.bench.passthrough raw|faust`; the
parent measures them from the broker's timestamps and stops them when they are done.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from accord.core.credentials import WORKER
from accord.core.kafka import connection
from accord.core.logging import configure_logging
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics


def output_topic(settings: Settings, mode: str) -> str:
    return Topics(settings).internal(f"bench.{mode}")


class Relay:
    """Decode a partner message and encode it again for the output topic."""

    def __init__(self, settings: Settings, output: str) -> None:
        self.topics = Topics(settings)
        self.serde = AvroSerde(registry_client(settings, WORKER), settings.schemas_dir)
        self.output = output

    def __call__(self, topic: str, value: bytes) -> bytes:
        _, dataset = self.topics.parse_partner(topic)
        _, record = self.serde.decode(value)
        name = DATASET_RECORDS[dataset]
        # One output topic carries every record type: one subject per type (record name).
        return self.serde.encode(f"{self.output}-{name}", name, record)


async def raw_loop(settings: Settings, inputs: list[str], batch: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    output = output_topic(settings, "raw")
    relay = Relay(settings, output)
    conn = connection(settings)
    consumer = AIOKafkaConsumer(
        *inputs,
        **conn.aiokafka(),
        group_id=f"{settings.topic_prefix}bench-raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=batch,
    )
    producer = AIOKafkaProducer(
        **conn.aiokafka(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type="lz4",
    )
    await consumer.start()
    await producer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            sent = [
                await producer.send(output, relay(tp.topic, record.value), key=record.key)
                for tp, records in fetched.items()
                for record in records
            ]
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def faust_app(
    settings: Settings, inputs: list[str], batch: int, within_s: float, driver: str = "aiokafka"
) -> Any:
    """The pass-through agent on faust's aiokafka driver (as the worker runs) or on its
    confluent-kafka (librdkafka) driver, given the hub's security settings
    (`faust_compat.secure_confluent_driver`: the driver itself ignores them)."""
    from accord.worker.faust_compat import faust_app as accord_faust_app

    mode = "faust" if driver == "aiokafka" else f"faust-{driver}"
    output = output_topic(settings, mode)
    relay = Relay(settings, output)
    options: dict[str, Any] = {"producer_compression_type": "lz4"}
    if driver == "confluent":
        from accord.worker.faust_compat import secure_confluent_driver

        conn = connection(settings)
        secure_confluent_driver({**conn.confluent(), "compression.type": "lz4", "acks": "all"})
        servers = ";".join(f"confluent://{s.strip()}" for s in conn.bootstrap.split(","))
        options = {"broker": servers}
    app = accord_faust_app(settings, f"{settings.topic_prefix}bench-{mode}", **options)
    source = app.topic(*inputs, key_serializer="raw", value_serializer="raw")
    sink = app.topic(output, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="relay")
    async def relay_agent(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within_s):
            sent = [
                await sink.send(key=e.message.key, value=relay(e.message.topic, e.message.value))
                for e in events
            ]
            await asyncio.gather(*sent)

    return app


def main(argv: list[str]) -> None:
    mode, inputs = argv[0], argv[1].split(",")
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)  # as the worker does
    if mode == "raw":
        asyncio.run(raw_loop(settings, inputs, settings.worker_batch_size))
    elif mode in ("faust", "faust-confluent"):
        from faust.worker import Worker

        driver = "confluent" if mode == "faust-confluent" else "aiokafka"
        app = faust_app(
            settings, inputs, settings.worker_batch_size, settings.worker_batch_timeout_s, driver
        )
        Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    else:
        raise SystemExit(f"unknown mode {mode!r}: raw, faust or faust-confluent")


if __name__ == "__main__":
    main(sys.argv[1:])
