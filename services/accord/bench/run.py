"""`accord bench`: raw Kafka, faust and the governed pipeline, side by side in one run,
and the figures of the pipeline's targets (docs/performance.md says more).

Method:
- The workload is published once to fresh partner topics under a run-specific prefix.
  Each mode then reads all of it from the start, in its own process(es).
- Throughput is input events divided by the time from the mode's first output record to
  its last (broker timestamps), so process start-up and group joins are left out alike.
- Latency is measured on the governed pipeline under a steady offered load (200 events/s
  and half of the capacity just measured), per stage: `bench.stages`.
- Memory is each process's peak resident set (VmHWM), read just before it is stopped; the
  people run also reads the worker's resident set (VmRSS) after it has caught up.
- Every worker reads a throw-away OPA started like the stack's on a copy of policies/ it
  watches, so the suspension figure changes the copy, never the repository's files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.access import provision
from accord.bench import publisher, stages
from accord.bench.measure import Offsets, read_since
from accord.bench.passthrough import output_topic
from accord.core.credentials import ADMIN, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client, delete_topics, ensure_topics, read_topic
from accord.core.policy import PolicyClient, opa_token
from accord.core.settings import Settings
from accord.core.topics import PERSON_EVENTS, SHIELDING_LIST, SUPPORT_REQUEST, Topics
from accord.governance.opa import IsolatedOpa
from accord.pipeline.decision import policy_input_record
from accord.stack import local, processes
from accord.synthetic import workload
from accord.worker.datadir import remove_group_state

HALF = "half"  # a latency rate given as half of the capacity (c) just measured
FULL_SIZES = (50_000, 200_000, 1_000_000)
FULL_PEOPLE = (180_000, 1_000_000)


@dataclass
class Plan:
    """What one `accord bench` run measures (the command's options)."""

    events: int = 200_000
    seed: int = 2020
    modes: tuple[str, ...] = ("raw", "faust", "governed")
    workers: int = 1
    partitions: int = 6
    latency_rates: tuple[float | str, ...] = (200.0, HALF)
    latency_s: float = 15.0
    scale_out: tuple[int, ...] = ()
    scale_out_events: int = 50_000
    scale_out_partitions: int = 24
    sizes: tuple[int, ...] = ()
    people: tuple[int, ...] = ()
    suspension: bool = True
    suspension_people: int = 5_000
    scotland: bool = False
    scotland_people: int = 180_000
    scotland_requests: int = 50_000
    json_path: Path | None = None
    keep: bool = False
    timeout_s: float = 1800.0
    drivers: tuple[str, ...] = ("aiokafka",)  # faust's drivers for (b), side by side

    def full(self) -> Plan:
        """Every figure: the sizes, the people held and the Scottish list besides."""
        return Plan(
            **{
                **asdict(self),
                "sizes": self.sizes or FULL_SIZES,
                "people": self.people or FULL_PEOPLE,
                "suspension": True,
                "scotland": True,
            }
        )


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
    decisions: int = 0
    shares: int = 0
    latency: list[dict[str, Any]] = field(default_factory=list)
    opa: dict[str, float] = field(default_factory=dict)
    scale_out: list[ModeResult] = field(default_factory=list)
    scale_out_partitions: int = 24
    sizes: list[ModeResult] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    suspension: dict[str, Any] | None = None
    scotland: dict[str, Any] | None = None
    phases_s: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a part of the run (wall clock, set-up and clean-up included)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases_s[name] = round(time.monotonic() - started, 1)

    def ratio(self, over: str) -> float | None:
        c, base = self.modes.get("governed"), self.modes.get(over)
        if c is None or base is None or not base.events_per_s:
            return None
        return c.events_per_s / base.events_per_s

    def linear_cost(self) -> list[dict[str, Any]]:
        """(c) at each size, with its events/s over the first size's."""
        first = self.sizes[0].events_per_s if self.sizes else 0.0
        return [
            {
                "events": result.events,
                "seconds": round(result.seconds, 2),
                "events_per_s": round(result.events_per_s, 1),
                "ratio_to_first": round(result.events_per_s / first, 3) if first else None,
                "peak_rss_mb": result.peak_rss_mb,
            }
            for result in self.sizes
        ]

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
            "latency": self.latency,
            "opa": self.opa,
            "scale_out": [mode(result) for result in self.scale_out],
            "scale_out_partitions": self.scale_out_partitions,
            "linear_cost": self.linear_cost(),
            "rss_by_people": self.people,
            "suspension": self.suspension,
            "scotland": self.scotland,
            "phases_s": self.phases_s,
        }


def parse_counts(text: str) -> list[int]:
    """ "1,2,4" → [1, 2, 4]; thousands may be written 50_000 or 50k."""
    counts = []
    for part in (p.strip().lower().replace("_", "") for p in text.split(",")):
        if not part:
            continue
        scale = 1_000_000 if part.endswith("m") else 1_000 if part.endswith("k") else 1
        number = float(part.rstrip("km")) * scale
        if number < 1 or number != int(number):
            raise ValueError(f"not a whole positive number: {part!r}")
        counts.append(int(number))
    return counts


def parse_rates(text: str) -> list[float | str]:
    """ "200,half" → [200.0, "half"]: events/s, or half of the measured capacity."""
    rates: list[float | str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part == HALF:
            rates.append(HALF)
            continue
        rate = float(part)
        if rate <= 0:
            raise ValueError(f"a rate must be above 0: {part!r}")
        rates.append(rate)
    return rates


def share_topics(scoped: Settings) -> list[str]:
    admin = admin_client(scoped)
    try:
        head = f"{scoped.topic_prefix}share."
        return sorted(t for t in admin.list_topics() if t.startswith(head))
    finally:
        admin.close()


class Bench:
    """One run: its console, its OPA, its deployments (a prefix each) and their logs."""

    def __init__(
        self, settings: Settings, console: Console, progress: Progress, run_id: str, plan: Plan
    ) -> None:
        self.settings = settings
        self.console = console
        self.progress = progress
        self.run_id = run_id
        self.plan = plan
        self.logs = settings.state_dir / "logs" / f"bench-{run_id}"
        self.deployments: dict[str, Settings] = {}
        self.policies = settings.state_dir / "bench" / f"policies-{run_id}"

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def scoped(self, name: str, partitions: int) -> Settings:
        prefix = f"bench-{self.run_id}-{name}."
        scoped = self.settings.model_copy(
            update={
                "topic_prefix": prefix,
                "topic_partitions": partitions,
                "worker_id": f"{prefix}worker",
            }
        )
        self.deployments[prefix] = scoped
        return scoped

    def release(self, scoped: Settings) -> None:
        """Delete a deployment's topics and grants (unless --keep): the next one starts clean
        and the disk holds one run's data at a time."""
        if self.plan.keep or self.deployments.pop(scoped.topic_prefix, None) is None:
            return
        delete_topics(self.settings, scoped.topic_prefix)
        provision.remove_deployment(scoped)
        remove_group_state(self.settings, scoped.worker_group)  # its RocksDB tables

    def release_all(self) -> None:
        for scoped in list(self.deployments.values()):
            self.release(scoped)

    def bar(self, label: str, total: int | None = None) -> Callable[[int, int], None]:
        task = self.progress.add_task(label, total=total)
        return lambda done, most: self.progress.update(task, total=most, completed=done)

    def publish(
        self, scoped: Settings, events: list[workload.Event], label: str, **options: Any
    ) -> float:
        """Publish to fresh partner topics; returns events/s."""
        topics = publisher.partner_topics(scoped, events)
        ensure_topics(scoped, dict.fromkeys(topics), scoped.partner_topic_partitions)
        task = self.progress.add_task(label, total=len(events))
        started = time.monotonic()
        publisher.publish(
            scoped, events, progress=lambda n: self.progress.advance(task, n), **options
        )
        elapsed = time.monotonic() - started
        self.progress.update(task, completed=len(events))
        return len(events) / elapsed

    def passthrough(self, scoped: Settings, mode: str, events: list[workload.Event]) -> ModeResult:
        inputs = ",".join(publisher.partner_topics(scoped, events))
        output = output_topic(scoped, mode)
        ensure_topics(scoped, {output: None}, scoped.topic_partitions)
        env = processes.process_env(scoped, principal=ADMIN, ACCORD_LOG_LEVEL="WARNING")
        log_path = self.logs / f"{mode}.log"
        process = processes.spawn(["-m", "accord.bench.passthrough", mode, inputs], env, log_path)
        task = self.progress.add_task(
            f"({'a' if mode == 'raw' else 'b'}) {mode} pass-through", total=len(events)
        )
        offsets = Offsets(scoped)
        try:
            while (done := offsets.records([output])) < len(events):
                processes.check_alive([process], log_path)
                self.progress.update(task, completed=done)
                time.sleep(0.5)
            self.progress.update(task, completed=done)
            span = offsets.first_and_last_ms([output])
        finally:
            peaks = processes.stop([process])
            offsets.close()
        assert span is not None
        return ModeResult(mode, len(events), (span[1] - span[0]) / 1000, 1, peaks)

    @contextmanager
    def workers(self, scoped: Settings, count: int) -> Iterator[processes.Workers]:
        """`count` workers of a deployment, provisioned as deployed: the worker may create
        no topic and read only what its ACLs give it."""
        provision.apply(scoped)
        name = scoped.topic_prefix.rstrip(".")
        with processes.Workers(
            scoped, self.logs, name=f"{name}-worker", ACCORD_LOG_LEVEL="WARNING"
        ) as pool:
            pool.start(count)
            yield pool

    def caught_up(self, pool: processes.Workers, label: str) -> None:
        pool.wait_until_caught_up(self.plan.timeout_s, self.bar(label))

    def governed_span(self, scoped: Settings, offsets: Offsets) -> tuple[int, int]:
        """From the first stage's first output to the last decision or share."""
        outputs = [Topics(scoped).audit, *share_topics(scoped)]
        first = offsets.first_and_last_ms(processes.stage_topics(scoped))
        last = offsets.first_and_last_ms(outputs)
        if first is None or last is None:
            raise InfrastructureError("the governed pipeline wrote nothing")
        return first[0], last[1]

    def throughput(
        self, name: str, events: list[workload.Event], count: int, partitions: int
    ) -> ModeResult:
        """(c) alone on its own deployment: publish, run to caught up, events/s."""
        scoped = self.scoped(name, partitions)
        try:
            self.publish(scoped, events, f"{name}: publishing {len(events):,} events")
            with self.workers(scoped, count) as pool:
                self.caught_up(pool, f"{name}: {count} worker(s)")
                offsets = Offsets(scoped)
                try:
                    start, end = self.governed_span(scoped, offsets)
                finally:
                    offsets.close()
            return ModeResult(name, len(events), (end - start) / 1000, count, pool.peaks_mb)
        finally:
            self.release(scoped)


def latency_run(
    bench: Bench,
    scoped: Settings,
    pool: processes.Workers,
    steady: list[workload.Event],
    rate: float,
    label: str,
) -> dict[str, Any]:
    """Publish `steady` at `rate` to a caught-up pipeline; where each event's time went."""
    topics = Topics(scoped)
    partner = publisher.partner_topics(scoped, steady)
    stage_topics = processes.stage_topics(scoped)
    shares = share_topics(scoped)
    watched = [*partner, *stage_topics, topics.internal("cases"), topics.audit, *shares]
    offsets = Offsets(scoped)
    try:
        starts = offsets.ends(watched)
    finally:
        offsets.close()
    task = bench.progress.add_task(f"latency at {rate:,.0f} events/s", total=len(steady))
    started = time.monotonic()
    publisher.publish(scoped, steady, rate=rate, progress=lambda n: bench.progress.advance(task, n))
    offered_s = time.monotonic() - started
    bench.caught_up(pool, f"latency at {rate:,.0f} events/s: draining")

    sent = {event.event_id for event in steady}
    datasets = {event.event_id: event.dataset for event in steady}
    published: dict[str, int] = {}
    for record in read_since(scoped, partner, starts):
        event_id = record.key.decode() if record.key else ""
        if event_id in sent and (
            event_id not in published or record.timestamp < published[event_id]
        ):
            published[event_id] = record.timestamp
    found = [stages.StageRecords(stages.short_name(t, scoped.topic_prefix)) for t in stage_topics]
    by_person = topics.internal(PERSON_EVENTS)
    for stage, topic in zip(found, stage_topics, strict=True):
        for record in read_since(scoped, [topic], starts):
            key = record.key.decode() if topic == by_person and record.key else None
            stage.add(record.value, record.timestamp, sent, key)
    keyed = {}
    for name, names in (
        ("cases", [topics.internal("cases")]),
        ("decisions", [topics.audit]),
        ("shares", shares),
    ):
        times = keyed[name] = stages.KeyTimes()
        for record in read_since(scoped, names, starts):
            if record.key:
                times.add(record.key.decode(), record.timestamp)
    result = stages.latency_figures(
        published, datasets, found, keyed["cases"], keyed["decisions"], keyed["shares"]
    )
    return {
        "label": label,
        "offered_events_per_s": round(rate, 1),
        "achieved_events_per_s": round(len(steady) / offered_s, 1) if offered_s else None,
        "published": len(published),
        **result,
    }


def latency_workloads(bench: Bench, capacity: float | None) -> list[tuple[str, float, list]]:
    """(label, rate, events) of each latency run the plan asks for and can have."""
    runs = []
    for n, rate in enumerate(bench.plan.latency_rates):
        if rate == HALF:
            if not capacity:
                bench.say("[yellow]no capacity measured: the half-capacity latency run is skipped")
                continue
            label, value = f"half of (c): {capacity / 2:,.0f} events/s", capacity / 2
        else:
            label, value = f"{float(rate):,.0f} events/s", float(rate)
        count = max(1, int(value * bench.plan.latency_s))
        events = workload.load(bench.settings, count, bench.plan.seed + 1 + n, bench.say)
        runs.append((label, value, events))
    return runs


def governed(bench: Bench, scoped: Settings, load: list[workload.Event], figures: Figures) -> None:
    plan = bench.plan
    with bench.workers(scoped, plan.workers) as pool:
        with figures.phase("governed"):
            bench.caught_up(pool, "(c) governed pipeline")
        offsets = Offsets(scoped)
        try:
            start, end = bench.governed_span(scoped, offsets)
            figures.decisions = offsets.records([Topics(scoped).audit])
            figures.shares = offsets.records(share_topics(scoped))
        finally:
            offsets.close()
        result = ModeResult("governed", len(load), (end - start) / 1000, plan.workers)
        figures.modes["governed"] = result
        if plan.latency_s > 0:
            runs = latency_workloads(bench, result.events_per_s)
            for _label, _rate, events in runs:  # every partner topic there before any run
                topics = publisher.partner_topics(scoped, events)
                ensure_topics(scoped, dict.fromkeys(topics), scoped.partner_topic_partitions)
            for label, rate, events in runs:
                with figures.phase(f"latency {label}"):
                    figures.latency.append(latency_run(bench, scoped, pool, events, rate, label))
        if plan.suspension:
            from accord.bench import suspension

            with figures.phase("suspension"):
                figures.suspension = suspension.measure(bench, scoped, pool)
    result.peak_rss_mb = pool.peaks_mb
    cases = latest_cases(scoped, 5000)
    figures.opa = asyncio.run(opa_cost(scoped, cases, rounds=3)) if cases else {}


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
    for message in read_topic(scoped, Topics(scoped).internal("cases")):
        if message.value is not None:
            latest[message.key] = json.loads(message.value)
        if len(latest) >= limit:
            break
    return list(latest.values())


def people_only(bench: Bench, people: int) -> list[workload.Event]:
    """`people` shielding-list entries (the head of a workload: lists come first)."""
    events = workload.load(
        bench.settings, round(people * workload.EVENTS_PER_PERSON), bench.plan.seed, bench.say
    )
    return [event for event in events if event.dataset == SHIELDING_LIST][:people]


def rss_by_people(bench: Bench, people: int) -> dict[str, Any]:
    """The worker's memory holding `people` people: peak while loading, and after."""
    entries = people_only(bench, people)
    scoped = bench.scoped(f"people{people}", bench.plan.partitions)
    try:
        bench.publish(scoped, entries, f"people: publishing {len(entries):,} entries")
        with bench.workers(scoped, 1) as pool:
            started = time.monotonic()
            bench.caught_up(pool, f"people: the worker taking {len(entries):,}")
            seconds = time.monotonic() - started
            time.sleep(2.0)  # what it holds once settled, not in the last batch's flight
            after = pool.rss_mb()
        return {
            "people": len(entries),
            "seconds_to_caught_up": round(seconds, 1),
            "peak_rss_mb": round(pool.peaks_mb[0], 1) if pool.peaks_mb else None,
            "rss_after_catch_up_mb": round(after[0], 1) if after else None,
        }
    finally:
        bench.release(scoped)


def run_bench(settings: Settings, plan: Plan) -> Figures:
    console = Console()
    run_id = time.strftime("%Y%m%d%H%M%S")
    console.rule("[bold]Accord bench")
    local.up(settings, lambda line: console.print(f"  {line}"))
    figures = Figures(events=0, partitions=plan.partitions, cores=os.cpu_count() or 0)
    progress = Progress(
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    bench = Bench(settings, console, progress, run_id, plan)
    shutil.rmtree(bench.policies, ignore_errors=True)
    shutil.copytree(settings.policies_dir, bench.policies)
    opa_log = bench.logs / "opa.log"
    private_dir(opa_log.parent)
    try:
        with IsolatedOpa(settings, bench.policies, watch=True, log_file=opa_log) as opa, progress:
            bench.settings = settings.model_copy(update={"opa_url": opa.url})
            measure_all(bench, figures, lambda: write_figures(figures, plan.json_path))
    finally:
        bench.release_all()
        shutil.rmtree(bench.policies, ignore_errors=True)
    report(console, figures)
    if plan.json_path is not None:
        write_figures(figures, plan.json_path)
        console.print(f"  figures written to {plan.json_path}")
    return figures


def write_figures(figures: Figures, path: Path | None) -> None:
    """The figures so far as JSON (after every run, so a stopped bench keeps them)."""
    if path is not None:
        path.write_text(json.dumps(figures.as_json(), indent=2) + "\n")


def later_runs(plan: Plan) -> list[tuple[str, int]]:
    """The runs after the main one, smallest first (by events to process), so that a long
    run stopped early has already reported every shorter one."""
    runs = [("size", size) for size in plan.sizes]
    runs += [("people", people) for people in plan.people]
    if plan.scotland:
        runs.append(("scotland", plan.scotland_people + plan.scotland_requests))
    return sorted(runs, key=lambda run: run[1])


def measure_all(bench: Bench, figures: Figures, checkpoint: Callable[[], None]) -> None:
    """Every run the plan asks for; `checkpoint` after each, with the figures so far."""
    plan = bench.plan
    if any(mode in plan.modes for mode in ("raw", "faust", "governed")):
        with figures.phase("main"):
            main_run(bench, figures)
        checkpoint()
    for kind, count in later_runs(plan):
        if kind == "size":
            main = figures.modes.get("governed")
            if main is not None and main.events == count and plan.workers == 1:
                figures.sizes.append(main)  # the main run's (c) is this size's figure
                continue
            with figures.phase(f"size {count}"):
                events = workload.load(bench.settings, count, plan.seed, bench.say)
                figures.sizes.append(bench.throughput(f"size{count}", events, 1, plan.partitions))
        elif kind == "people":
            with figures.phase(f"people {count}"):
                figures.people.append(rss_by_people(bench, count))
        else:
            from accord.bench import scotland

            with figures.phase("scotland"):
                figures.scotland = scotland.measure(bench)
        checkpoint()
    figures.scale_out_partitions = plan.scale_out_partitions
    for count in plan.scale_out:
        with figures.phase(f"scale-out {count}"):
            events = workload.load(bench.settings, plan.scale_out_events, plan.seed, bench.say)
            result = bench.throughput(f"scale{count}", events, count, plan.scale_out_partitions)
            result.name = f"{count} workers"
            figures.scale_out.append(result)


def main_run(bench: Bench, figures: Figures) -> None:
    """(a), (b) and (c) on one workload; on (c) the latency runs and the suspension."""
    plan = bench.plan
    load = workload.load(bench.settings, plan.events, plan.seed, bench.say)
    figures.events = len(load)
    scoped = bench.scoped("main", plan.partitions)
    try:
        figures.publish_events_per_s = bench.publish(scoped, load, "publishing the workload")
        if "raw" in plan.modes:
            with figures.phase("raw"):
                figures.modes["raw"] = bench.passthrough(scoped, "raw", load)
        for driver in plan.drivers if "faust" in plan.modes else ():
            mode = "faust" if driver == "aiokafka" else f"faust-{driver}"
            with figures.phase(mode):
                figures.modes[mode] = bench.passthrough(scoped, mode, load)
        if "governed" in plan.modes:
            governed(bench, scoped, load, figures)
    finally:
        bench.release(scoped)


def ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def report(console: Console, figures: Figures) -> None:
    if figures.modes:
        table = Table(
            title=f"{figures.events:,} events, {figures.partitions} partitions, "
            f"{figures.cores} cores",
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
            f"  decisions: {figures.decisions:,} ({figures.decisions / seconds:,.0f}/s in the "
            f"pipeline), shared records: {figures.shares:,}"
        )
    for run in figures.latency:
        report_latency(console, run)
    if figures.opa:
        opa = figures.opa
        console.print(
            f"  OPA batch queries: {opa['decisions_per_s']:,.0f} decisions/s, "
            f"{opa['us_per_decision']:.0f} µs per decision, {opa['ms_per_query']:.0f} ms "
            f"per query of up to {int(opa['records'] / max(opa['queries'], 1))} records"
        )
    if figures.sizes:
        table = Table(title="linear cost: (c) at each size", title_justify="left")
        for column in ("events", "events/s", "seconds", "× first size", "peak RSS MB"):
            table.add_column(column, justify="right")
        for row in figures.linear_cost():
            table.add_row(
                f"{row['events']:,}",
                f"{row['events_per_s']:,.0f}",
                f"{row['seconds']:.1f}",
                f"{row['ratio_to_first']:.2f}" if row["ratio_to_first"] is not None else "-",
                ", ".join(f"{mb:.0f}" for mb in row["peak_rss_mb"]),
            )
        console.print(table)
    if figures.people:
        table = Table(title="worker memory by people held", title_justify="left")
        for column in ("people", "peak RSS MB", "RSS after catch-up MB", "seconds"):
            table.add_column(column, justify="right")
        for row in figures.people:
            table.add_row(
                f"{row['people']:,}",
                ms(row["peak_rss_mb"]),
                ms(row["rss_after_catch_up_mb"]),
                f"{row['seconds_to_caught_up']:.0f}",
            )
        console.print(table)
    if figures.suspension:
        from accord.bench import suspension

        for line in suspension.describe(figures.suspension):
            console.print(f"  {line}")
    if figures.scotland:
        from accord.bench import scotland

        for line in scotland.describe(figures.scotland):
            console.print(f"  {line}")
    if figures.phases_s:
        console.print(
            "  wall time: " + ", ".join(f"{n} {s:,.0f} s" for n, s in figures.phases_s.items())
        )
    if figures.scale_out:
        cores = os.cpu_count() or 1
        table = Table(
            title=f"scale-out: governed pipeline, {figures.scale_out_partitions} partitions, "
            f"{cores} cores shared with Kafka, OPA and the registry",
            title_justify="left",
        )
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


def report_latency(console: Console, run: dict[str, Any]) -> None:
    table = Table(
        title=f"latency at {run['label']} offered ({run['published']:,} events): "
        "where the time goes",
        title_justify="left",
    )
    for column in ("step", "events", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for title, rows in (("", run["steps"]), ("end to end: ", run["end_to_end"])):
        for name, row in rows.items():
            table.add_row(
                f"{title}{name}",
                f"{row['samples']:,}",
                ms(row["p50_ms"]),
                ms(row["p95_ms"]),
                ms(row["p99_ms"]),
            )
    for dataset, row in run["to_list_by_dataset"].items():
        table.add_row(
            f"to the list: {dataset}",
            f"{row['samples']:,}",
            ms(row["p50_ms"]),
            ms(row["p95_ms"]),
            ms(row["p99_ms"]),
        )
    console.print(table)
    if missing := run["no_case"]:
        where = Counter(f"{row['dataset']} at {row['last']}" for row in missing)
        console.print(
            f"  [yellow]{len(missing):,} events reached no case record[/yellow]: "
            + ", ".join(f"{n:,} {name}" for name, n in sorted(where.items()))
        )
