"""`accord bench`: raw Kafka, faust and the governed pipeline, side by side in one run.

Method (docs/performance.md says more):
- The workload is published once to fresh partner topics under a run-specific prefix.
  Each mode then reads all of it from the start, in its own process(es).
- Throughput is input events divided by the time from the mode's first output record to
  its last (broker timestamps), so process start-up and group joins are left out alike.
- Latency is measured on the governed pipeline under a steady offered load: the time from
  publishing an event to the first decision on the case it became the source of.
- Memory is each process's peak resident set (VmHWM), read just before it is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.access import provision
from accord.bench import publisher
from accord.bench.measure import Offsets, peak_rss_mb, percentile
from accord.bench.passthrough import output_topic
from accord.core.credentials import ADMIN, WORKER, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import consumer as kafka_consumer
from accord.core.kafka import delete_topics, ensure_topics, group_lag, read_topic
from accord.core.policy import PolicyClient, opa_token
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import CASES, SUPPORT_REQUEST, Topics
from accord.pipeline.decision import policy_input_record
from accord.stack import local
from accord.synthetic import workload
from accord.worker.datadir import remove_group_state
from accord.worker.topology import consumed_topics, stage_topics


@dataclass
class ModeResult:
    name: str
    events: int
    seconds: float
    processes: int = 1
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Figures:
    events: int
    partitions: int
    cores: int
    publish_events_per_s: float = 0.0
    modes: dict[str, ModeResult] = field(default_factory=dict)
    decisions: int = 0  # audit records: one per case decision, naming every recipient
    shares: int = 0
    latency_rate: float = 0.0
    latency_samples: int = 0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    opa: dict[str, float] = field(default_factory=dict)
    scale_out: list[ModeResult] = field(default_factory=list)

    def ratio(self, over: str) -> float | None:
        c, base = self.modes.get("governed"), self.modes.get(over)
        if c is None or base is None or not base.events_per_s:
            return None
        return c.events_per_s / base.events_per_s

    def as_json(self) -> dict[str, Any]:
        def mode(result: ModeResult) -> dict[str, Any]:
            return {**asdict(result), "events_per_s": round(result.events_per_s, 1)}

        return {
            "events": self.events,
            "partitions": self.partitions,
            "cores": self.cores,
            "publish_events_per_s": round(self.publish_events_per_s, 1),
            "modes": {name: mode(result) for name, result in self.modes.items()},
            "ratios": {"c/a": self.ratio("raw"), "c/b": self.ratio("faust")},
            "decisions": self.decisions,
            "decisions_per_s": round(self.decisions / self.modes["governed"].seconds, 1)
            if "governed" in self.modes and self.modes["governed"].seconds
            else None,
            "shares": self.shares,
            "latency": {
                "offered_events_per_s": self.latency_rate,
                "samples": self.latency_samples,
                **self.latency_ms,
            },
            "opa": self.opa,
            "scale_out": [mode(result) for result in self.scale_out],
        }


def child_env(settings: Settings, prefix: str, partitions: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ACCORD_TOPIC_PREFIX": prefix,
        "ACCORD_TOPIC_PARTITIONS": str(partitions),
        "ACCORD_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ACCORD_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "ACCORD_OPA_URL": settings.opa_url,
        "ACCORD_STATE_DIR": str(settings.state_dir),
        "ACCORD_LOG_FORMAT": "json",
        "ACCORD_LOG_LEVEL": "WARNING",
        **extra,
    }


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    private_dir(log_path.parent)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, env=env
        )


def stop(processes: list[subprocess.Popen[bytes]]) -> list[float]:
    """Peak memory of each process, then SIGTERM (SIGKILL if it lingers)."""
    peaks = [peak_rss_mb(p.pid) or 0.0 for p in processes]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return peaks


def check_alive(processes: list[subprocess.Popen[bytes]], log_path: Path) -> None:
    for process in processes:
        if process.poll() is not None:
            raise InfrastructureError(
                f"a benchmark process exited with code {process.returncode}; see {log_path}"
            )


class Bench:
    def __init__(
        self, settings: Settings, console: Console, progress: Progress, run_id: str
    ) -> None:
        self.settings = settings
        self.console = console
        self.progress = progress
        self.run_id = run_id
        self.logs = settings.state_dir / "logs" / f"bench-{run_id}"
        self.prefixes: list[str] = []

    def scoped(self, name: str, partitions: int) -> Settings:
        prefix = f"bench-{self.run_id}-{name}."
        self.prefixes.append(prefix)
        return self.settings.model_copy(
            update={"topic_prefix": prefix, "topic_partitions": partitions}
        )

    def publish(self, scoped: Settings, events: workload.Workload, label: str) -> float:
        """Publish to fresh partner topics; returns events/s."""
        topics = publisher.partner_topics(scoped, events)
        ensure_topics(scoped, dict.fromkeys(topics), scoped.partner_topic_partitions)
        task = self.progress.add_task(label, total=len(events))
        started = time.monotonic()
        publisher.publish(scoped, events, progress=lambda n: self.progress.advance(task, n))
        elapsed = time.monotonic() - started
        self.progress.update(task, completed=len(events))
        return len(events) / elapsed

    def passthrough(self, scoped: Settings, mode: str, events: workload.Workload) -> ModeResult:
        inputs = ",".join(publisher.partner_topics(scoped, events))
        output = output_topic(scoped, mode)
        ensure_topics(scoped, {output: None}, scoped.topic_partitions)
        env = child_env(
            self.settings, scoped.topic_prefix, scoped.topic_partitions, ACCORD_PRINCIPAL=ADMIN
        )
        log_path = self.logs / f"{mode}.log"
        process = spawn(["-m", "accord.bench.passthrough", mode, inputs], env, log_path)
        task = self.progress.add_task(
            f"({'a' if mode == 'raw' else 'b'}) {mode} pass-through", total=len(events)
        )
        offsets = Offsets(scoped)
        try:
            while (done := offsets.records([output])) < len(events):
                check_alive([process], log_path)
                self.progress.update(task, completed=done)
                time.sleep(0.5)
            self.progress.update(task, completed=done)
            span = offsets.first_and_last_ms([output])
        finally:
            peaks = stop([process])
            offsets.close()
        assert span is not None
        return ModeResult(mode, len(events), (span[1] - span[0]) / 1000, 1, peaks)

    def start_workers(self, scoped: Settings, count: int) -> list[subprocess.Popen[bytes]]:
        worker_id = f"{scoped.topic_prefix}worker"
        # The worker may create no topic and read only what its ACLs give it, as deployed.
        provision.apply(scoped.model_copy(update={"worker_id": worker_id}))
        env = child_env(
            self.settings,
            scoped.topic_prefix,
            scoped.topic_partitions,
            ACCORD_WORKER_ID=worker_id,
            ACCORD_PRINCIPAL=WORKER,
        )
        return [
            spawn(
                ["-m", "accord", "worker"], env, self.logs / f"{scoped.topic_prefix}worker-{n}.log"
            )
            for n in range(count)
        ]

    def wait_caught_up(
        self,
        scoped: Settings,
        workers: list[subprocess.Popen[bytes]],
        label: str,
        timeout_s: float,
    ) -> None:
        """Until the worker group has committed everything it reads, three looks running."""
        task = self.progress.add_task(label, total=None)
        group = f"{scoped.topic_prefix}worker"
        deadline, quiet, most = time.monotonic() + timeout_s, 0, 0
        while time.monotonic() < deadline:
            check_alive(workers, self.logs)
            lag = group_lag(scoped, group, consumed_topics(scoped))
            most = max(most, lag)
            self.progress.update(task, total=most, completed=most - lag)
            quiet = quiet + 1 if lag == 0 else 0
            if quiet >= 3:
                return
            time.sleep(0.5)
        raise InfrastructureError(f"the governed pipeline did not catch up in {timeout_s:.0f}s")

    def governed_span(self, scoped: Settings, offsets: Offsets) -> tuple[int, int]:
        """From the first stage's first output to the last decision or share."""
        first_stage = stage_topics(scoped)[:3]
        outputs = [Topics(scoped).audit, *share_topics(scoped)]
        first = offsets.first_and_last_ms(first_stage)
        last = offsets.first_and_last_ms(outputs)
        if first is None or last is None:
            raise InfrastructureError("the governed pipeline wrote nothing")
        return first[0], last[1]


def share_topics(scoped: Settings) -> list[str]:
    from accord.core.kafka import admin_client

    admin = admin_client(scoped)
    try:
        head = f"{scoped.topic_prefix}share."
        return sorted(t for t in admin.list_topics() if t.startswith(head))
    finally:
        admin.close()


def latencies(
    scoped: Settings, serde: AvroSerde, sent_at: dict[str, float], skip: dict[int, int]
) -> list[float]:
    """Milliseconds from publishing each event to the first decision naming it as source
    (a case record names its source once for all its recipients, as older records did)."""
    first: dict[str, int] = {}
    for message in read_topic(scoped, Topics(scoped).audit, max_wait_s=300):
        if message.offset < skip.get(message.partition, 0):
            continue
        _, decision = serde.decode(message.value)
        event_id = str(decision["source_event_id"])  # a uuid logical type when decoded
        if event_id in sent_at and event_id not in first:
            first[event_id] = message.timestamp
    return [max(0.0, ms - sent_at[event_id] * 1000) for event_id, ms in first.items()]


def audit_ends(scoped: Settings) -> dict[int, int]:
    from kafka import TopicPartition

    consumer = kafka_consumer(scoped)
    try:
        topic = Topics(scoped).audit
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


async def opa_cost(scoped: Settings, cases: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    """Decisions per second and per-decision cost of batch queries, one client."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        if case["status"] != "CLOSED":
            groups[(case["source"]["org"], case["source"]["dataset"])].append(case)
    inputs = []
    for (org, dataset), batch in groups.items():
        for start in range(0, len(batch), scoped.worker_batch_size):
            chunk = batch[start : start + scoped.worker_batch_size]
            package = "accord.own_data" if dataset == SUPPORT_REQUEST else "accord.sharing"
            records = [policy_input_record(case) for case in chunk]
            inputs.append(
                (
                    package,
                    {
                        "source_org": org,
                        "dataset": dataset,
                        "purpose": scoped.purpose,
                        "records": records,
                    },
                )
            )
    decisions = records = 0
    async with PolicyClient(scoped.opa_url, timeout_s=60, token=opa_token(scoped)) as policy:
        started = time.perf_counter()
        for _ in range(rounds):
            for package, policy_input in inputs:
                decisions += len(await policy.decide(policy_input, package))
                records += len(policy_input["records"])
        elapsed = time.perf_counter() - started
    return {
        "queries": rounds * len(inputs),
        "records": records,
        "decisions": decisions,
        "decisions_per_s": round(decisions / elapsed, 1) if elapsed else 0.0,
        "us_per_decision": round(elapsed / decisions * 1e6, 1) if decisions else 0.0,
        "ms_per_query": round(elapsed / (rounds * len(inputs)) * 1000, 2) if inputs else 0.0,
    }


def latest_cases(scoped: Settings, limit: int) -> list[dict[str, Any]]:
    latest: dict[bytes, dict[str, Any]] = {}
    for message in read_topic(scoped, Topics(scoped).internal(CASES)):
        if message.value is not None:
            latest[message.key] = json.loads(message.value)
        if len(latest) >= limit:
            break
    return list(latest.values())


def run_bench(
    settings: Settings,
    *,
    events: int,
    seed: int,
    modes: list[str],
    workers: int,
    partitions: int,
    latency_rate: float,
    latency_s: float,
    scale_out: list[int],
    scale_out_events: int,
    json_path: Path | None,
    keep: bool,
    timeout_s: float,
    drivers: tuple[str, ...] = ("aiokafka",),
) -> Figures:
    console = Console()
    run_id = time.strftime("%Y%m%d%H%M%S")
    console.rule("[bold]Accord bench")
    local.up(settings, lambda line: console.print(f"  {line}"))
    figures = Figures(events=0, partitions=partitions, cores=os.cpu_count() or 0)
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    progress = Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    bench = Bench(settings, console, progress, run_id)
    try:
        with progress:
            load = workload.load(settings, events, seed, lambda text: console.print(f"  {text}"))
            figures.events = len(load)
            scoped = bench.scoped("main", partitions)
            figures.publish_events_per_s = bench.publish(scoped, load, "publishing the workload")
            if "raw" in modes:
                figures.modes["raw"] = bench.passthrough(scoped, "raw", load)
            for driver in drivers if "faust" in modes else ():
                mode = "faust" if driver == "aiokafka" else f"faust-{driver}"
                figures.modes[mode] = bench.passthrough(scoped, mode, load)
            if "governed" in modes:
                governed(
                    bench,
                    scoped,
                    serde,
                    load,
                    figures,
                    workers,
                    latency_rate,
                    latency_s,
                    seed,
                    timeout_s,
                )
            for count in scale_out:
                figures.scale_out.append(scale(bench, count, load[:scale_out_events], timeout_s))
    finally:
        if not keep:
            for prefix in bench.prefixes:
                delete_topics(settings, prefix)
                scoped = settings.model_copy(
                    update={"topic_prefix": prefix, "worker_id": f"{prefix}worker"}
                )
                provision.remove_deployment(scoped)
                remove_group_state(settings, scoped.worker_id)  # its RocksDB tables
    report(console, figures)
    if json_path is not None:
        json_path.write_text(json.dumps(figures.as_json(), indent=2) + "\n")
        console.print(f"  figures written to {json_path}")
    return figures


def governed(
    bench: Bench,
    scoped: Settings,
    serde: AvroSerde,
    load: workload.Workload,
    figures: Figures,
    workers: int,
    latency_rate: float,
    latency_s: float,
    seed: int,
    timeout_s: float,
) -> None:
    processes = bench.start_workers(scoped, workers)
    offsets = Offsets(scoped)
    try:
        bench.wait_caught_up(scoped, processes, "(c) governed pipeline", timeout_s)
        start, end = bench.governed_span(scoped, offsets)
        figures.decisions = offsets.records([Topics(scoped).audit])
        figures.shares = offsets.records(share_topics(scoped))
        result = ModeResult("governed", len(load), (end - start) / 1000, workers)
        figures.modes["governed"] = result
        if latency_rate > 0 and latency_s > 0:
            steady = workload.load(
                bench.settings, int(latency_rate * latency_s), seed + 1, lambda _t: None
            )
            skip = audit_ends(scoped)
            sent_at: dict[str, float] = {}
            task = bench.progress.add_task(
                f"latency at {latency_rate:,.0f} events/s", total=len(steady)
            )
            publisher.publish(
                scoped,
                steady,
                rate=latency_rate,
                on_sent=lambda event, at: sent_at.__setitem__(event.event_id, at),
                progress=lambda n: bench.progress.advance(task, n),
            )
            bench.wait_caught_up(scoped, processes, "latency run draining", timeout_s)
            samples = latencies(scoped, serde, sent_at, skip)
            figures.latency_rate = latency_rate
            figures.latency_samples = len(samples)
            figures.latency_ms = {f"p{p}_ms": percentile(samples, p / 100) for p in (50, 95, 99)}
    finally:
        peaks = stop(processes)
        offsets.close()
    result.peak_rss_mb = peaks
    cases = latest_cases(scoped, 5000)
    figures.opa = asyncio.run(opa_cost(scoped, cases, rounds=3)) if cases else {}


def scale(bench: Bench, count: int, events: workload.Workload, timeout_s: float) -> ModeResult:
    scoped = bench.scoped(f"scale{count}", 12)
    bench.publish(scoped, events, f"scale-out: publishing for {count} worker(s)")
    processes = bench.start_workers(scoped, count)
    offsets = Offsets(scoped)
    try:
        bench.wait_caught_up(scoped, processes, f"scale-out: {count} worker(s)", timeout_s)
        start, end = bench.governed_span(scoped, offsets)
    finally:
        peaks = stop(processes)
        offsets.close()
    return ModeResult(f"{count} workers", len(events), (end - start) / 1000, count, peaks)


def report(console: Console, figures: Figures) -> None:
    table = Table(
        title=f"{figures.events:,} events, {figures.partitions} partitions, {figures.cores} cores",
        title_justify="left",
    )
    for column in ("mode", "events/s", "seconds", "processes", "peak RSS MB (each)"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    labels = {
        "raw": "(a) raw aiokafka pass-through",
        "faust": "(b) faust pass-through",
        "faust-confluent": "(b) faust pass-through, confluent driver",
        "governed": "(c) governed pipeline",
    }
    for name, result in figures.modes.items():
        table.add_row(
            labels[name],
            f"{result.events_per_s:,.0f}",
            f"{result.seconds:.1f}",
            str(result.processes),
            ", ".join(f"{mb:.0f}" for mb in result.peak_rss_mb),
        )
    console.print(table)
    console.print(
        f"  publishing (librdkafka, acks=all): {figures.publish_events_per_s:,.0f} events/s"
    )
    for over, label in (("raw", "c/a"), ("faust", "c/b")):
        ratio = figures.ratio(over)
        if ratio is not None:
            console.print(f"  {label} = {ratio:.3f}")
    if "governed" in figures.modes:
        seconds = figures.modes["governed"].seconds
        console.print(
            f"  audit records: {figures.decisions:,} ({figures.decisions / seconds:,.0f}/s in the "
            f"pipeline, {figures.decisions / max(figures.events, 1):.2f} per event; one per "
            f"case decision), shared records: {figures.shares:,}"
        )
    if figures.latency_samples:
        ms = figures.latency_ms
        console.print(
            f"  event-to-list latency at {figures.latency_rate:,.0f} events/s offered "
            f"({figures.latency_samples:,} events): p50 {ms['p50_ms']:.0f} ms, "
            f"p95 {ms['p95_ms']:.0f} ms, p99 {ms['p99_ms']:.0f} ms"
        )
    if figures.opa:
        opa = figures.opa
        console.print(
            f"  OPA batch queries: {opa['decisions_per_s']:,.0f} decisions/s, "
            f"{opa['us_per_decision']:.0f} µs per decision, {opa['ms_per_query']:.0f} ms "
            f"per query of up to {int(opa['records'] / max(opa['queries'], 1))} records"
        )
    if figures.scale_out:
        table = Table(title="scale-out: governed pipeline, 12 partitions", title_justify="left")
        for column in ("workers", "events", "events/s", "per worker", "peak RSS MB (each)"):
            table.add_column(column, justify="right")
        for result in figures.scale_out:
            table.add_row(
                str(result.processes),
                f"{result.events:,}",
                f"{result.events_per_s:,.0f}",
                f"{result.events_per_s / result.processes:,.0f}",
                ", ".join(f"{mb:.0f}" for mb in result.peak_rss_mb),
            )
        console.print(table)


def parse_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()] if text else []
