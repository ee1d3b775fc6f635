"""`accord campaign faults`: the demo's input through a worker, the broker, OPA and the
registry failing at random moments.

1. Generate the demo's mix (its synthetic generator: shielding lists from every NHS
   board, council requests of which about half carry no CHI, outcomes from councils and
   the food network) and write it as the partners' files.
2. Reference: publish it on fresh topics (a prefix of its own), run one worker until its
   group has committed everything it reads, and record every recipient's list.
3. Faulty: publish the same files on other fresh topics, run a worker and, at moments
   drawn from the seed, SIGKILL it `kills` times (restarting it each time on the same
   consumer group, so it resumes from the changelogs and committed offsets), SIGKILL and
   restart the broker, stop OPA for `opa_down_s`, stop the schema registry for a while, and
   freeze the worker (SIGSTOP) for `lag_s` so that it lags and is put out of its group;
   then wait for lag 0.
4. Compare every recipient's list with the reference: missing, extra and differing cases,
   cases shared twice (two keys for one source record); and check every share record of
   the faulty run: each carries a decision id that has its audit record, and none was
   decided while OPA was stopped.

Passing means all of those are 0 and the faulty run's lag reached 0. The records'
`updated_at` (the wall time of the decision) is left out of the comparison.
Event ids, person keys and decision ids derive from the input, so both runs name each
case alike.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.access import provision
from accord.campaign import FAULTS
from accord.core.auditrecords import recipient_decisions
from accord.core.credentials import ADMIN
from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client, delete_topics, read_topic, read_topics
from accord.core.logging import get_logger
from accord.core.scotland import HEALTH_BOARDS, org_id
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, SUPPORT_OUTCOME, SUPPORT_REQUEST, Topics
from accord.ingest.publish import publish_file
from accord.stack import local, processes
from accord.synthetic.people import generate_shielding_list, write_csv
from accord.synthetic.requests import (
    OUTCOME_COLUMNS,
    REQUEST_COLUMNS,
    generate_requests,
    valid_rows,
    write_rows,
)
from accord.worker.datadir import remove_group_state

log = get_logger("accord.campaign")

# Fields of a shared record that may differ between two correct runs.
VOLATILE_FIELDS = ("updated_at",)

Lists = dict[str, dict[str, dict[str, Any]]]  # recipient -> case key -> shared record


@dataclass(frozen=True)
class CampaignInput:
    """The partners' files, in publishing order, and what they hold."""

    files: list[tuple[str, str, Path]]  # (org, dataset, path)
    people: int
    requests: int
    requests_without_chi: int
    outcomes: int


@dataclass
class RunFigures:
    events_in: int = 0
    seconds: float = 0.0
    started_s: float = 0.0  # until the first worker had its partitions
    lag_zero: bool = False
    lag_note: str = ""
    kills: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, lag then)
    faults: list[str] = field(default_factory=list)  # what else happened, for the report
    opa_down: list[tuple[float, float]] = field(default_factory=list)  # epoch seconds
    lists: Lists = field(default_factory=dict)


@dataclass(frozen=True)
class ShareChecks:
    """Every share record of a run (not only each key's latest) against its audit."""

    records: int = 0  # share records with a value (tombstones are not shares)
    unaudited: int = 0  # whose decision id has no audit record
    while_opa_down: int = 0  # decided while OPA was stopped
    duplicated: int = 0  # a source record on a recipient's list under a second key


@dataclass(frozen=True)
class Comparison:
    recipients: int
    shared: int  # cases on the reference lists
    missing: int
    extra: int
    differing: int
    examples: tuple[str, ...] = ()  # "recipient: kind key-prefix", pseudonymous keys only

    @property
    def equal(self) -> bool:
        return self.missing == self.extra == self.differing == 0


@dataclass
class CampaignReport:
    seed: int
    people: int
    kills_planned: int
    data: CampaignInput
    reference: RunFigures
    faulty: RunFigures
    comparison: Comparison
    checks: ShareChecks = field(default_factory=ShareChecks)

    @property
    def passed(self) -> bool:
        c = self.checks
        return (
            self.comparison.equal
            and self.faulty.lag_zero
            and self.reference.lag_zero
            and c.unaudited == c.while_opa_down == c.duplicated == 0
        )

    def lines(self) -> list[str]:
        c, f, r = self.comparison, self.faulty, self.reference
        kills = ", ".join(f"{at:.0f}s (lag {lag})" for at, lag in f.kills) or "none"
        return [
            f"seed {self.seed}, {self.people} people: {self.data.requests} requests "
            f"({self.data.requests_without_chi} without CHI), {self.data.outcomes} outcomes",
            f"events in: {f.events_in} (reference {r.events_in})",
            f"reference run: {r.seconds:.0f}s, lag reached 0: {yesno(r.lag_zero)}",
            f"faulty run: {f.seconds:.0f}s, {len(f.kills)} SIGKILLs at {kills}",
            *(f"  {fault}" for fault in f.faults),
            f"recipients: {c.recipients}",
            f"shared: {c.shared} (cases on the fault-free lists)",
            f"lost (missing): {c.missing}",
            f"extra: {c.extra}",
            f"differing: {c.differing}",
            f"duplicated in compacted views: {self.checks.duplicated}",
            f"share records checked: {self.checks.records}",
            f"shared without an audit record: {self.checks.unaudited}",
            f"shared while OPA was down: {self.checks.while_opa_down}",
            f"lag reached 0: {yesno(f.lag_zero)}" + (f" ({f.lag_note})" if f.lag_note else ""),
            *(f"  e.g. {example}" for example in c.examples),
            "PASS" if self.passed else "FAIL",
        ]


def yesno(value: bool) -> str:
    return "yes" if value else "no"


def generate_input(people: int, seed: int, folder: Path) -> CampaignInput:
    """The demo's mix as files: one shielding list per board, requests and outcomes."""
    rows = generate_shielding_list(people, seed=seed, bad_rows=min(12, people // 100))
    folder.mkdir(parents=True, exist_ok=True)
    by_board: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_board[row["health_board"]].append(row)
    files: list[tuple[str, str, Path]] = []
    for board in HEALTH_BOARDS:
        path = folder / f"{org_id(board)}.csv"
        write_csv(by_board.get(board, []), path)
        files.append((org_id(board), SHIELDING_LIST, path))
    requests, outcomes = generate_requests(valid_rows(rows), seed=seed)
    for org, council_rows in sorted(requests.items()):
        path = write_rows(council_rows, REQUEST_COLUMNS, folder / f"{org}-requests.csv")
        files.append((org, SUPPORT_REQUEST, path))
    for org, outcome_rows in sorted(outcomes.items()):
        path = write_rows(outcome_rows, OUTCOME_COLUMNS, folder / f"{org}-outcomes.csv")
        files.append((org, SUPPORT_OUTCOME, path))
    all_requests = [r for council_rows in requests.values() for r in council_rows]
    return CampaignInput(
        files=files,
        people=people,
        requests=len(all_requests),
        requests_without_chi=sum(1 for r in all_requests if not r["chi_number"]),
        outcomes=sum(len(o) for o in outcomes.values()),
    )


def publish_input(settings: Settings, data: CampaignInput) -> int:
    """Publish every file as its partner; the number of events Kafka acknowledged."""
    return sum(publish_file(settings, org, ds, path).published for org, ds, path in data.files)


def share_topics(settings: Settings) -> list[str]:
    """The share topics of these settings' deployment."""
    prefix = f"{settings.topic_prefix}share."
    admin = admin_client(settings)
    try:
        return sorted(t for t in admin.list_topics() if t.startswith(prefix))
    finally:
        admin.close()


def recipient_lists(settings: Settings, serde: AvroSerde) -> Lists:
    """Every share topic of these settings, compacted: recipient -> key -> record."""
    prefix = f"{settings.topic_prefix}share."
    names = share_topics(settings)
    lists: Lists = {name.removeprefix(prefix).rsplit(".", 1)[0]: {} for name in names}
    for message in read_topics(settings, names, idle_timeout_s=2.0):
        view = lists[message.topic.removeprefix(prefix).rsplit(".", 1)[0]]
        key = message.key.decode()
        if message.value is None:
            view.pop(key, None)
            continue
        record = dict(serde.decode(message.value)[1])
        for volatile in VOLATILE_FIELDS:
            record.pop(volatile, None)
        view[key] = record
    return lists


def compare(reference: Lists, faulty: Lists, examples: int = 5) -> Comparison:
    """Every recipient's list against the reference: cases missing, extra, differing."""
    missing = extra = differing = shared = 0
    seen: list[str] = []
    for recipient in sorted(set(reference) | set(faulty)):
        want, got = reference.get(recipient, {}), faulty.get(recipient, {})
        shared += len(want)
        for kind, keys in (
            ("missing", want.keys() - got.keys()),
            ("extra", got.keys() - want.keys()),
            ("differing", {k for k in want.keys() & got.keys() if want[k] != got[k]}),
        ):
            if kind == "missing":
                missing += len(keys)
            elif kind == "extra":
                extra += len(keys)
            else:
                differing += len(keys)
            seen.extend(f"{recipient}: {kind} {key[:12]}" for key in sorted(keys))
    recipients = sum(1 for r in set(reference) | set(faulty) if reference.get(r) or faulty.get(r))
    return Comparison(recipients, shared, missing, extra, differing, tuple(seen[:examples]))


def check_shares(
    settings: Settings, serde: AvroSerde, opa_down: list[tuple[float, float]], lists: Lists
) -> ShareChecks:
    """Read every share record of `settings`' deployment: each must carry a decision id
    with an audit record, and none may have been decided while OPA was stopped: its
    `updated_at` is when OPA answered the batch (an answer sent just before the stop may
    still be on its way: 2 s of grace)."""
    audited = set()
    for message in read_topic(settings, Topics(settings).audit, idle_timeout_s=2.0):
        for decision in recipient_decisions(serde.decode(message.value)[1]):
            audited.add(str(decision["decision_id"]))
    records = unaudited = while_down = 0
    for message in read_topics(settings, share_topics(settings), idle_timeout_s=2.0):
        if message.value is None:
            continue
        records += 1
        headers = dict(message.headers or ())
        decision = (headers.get("accord-decision-id") or b"").decode()
        if decision not in audited:
            unaudited += 1
        decided = serde.decode(message.value)[1]["updated_at"].timestamp()
        if any(start + 2.0 < decided < end for start, end in opa_down):
            while_down += 1
    duplicated = 0
    for view in lists.values():
        sources = [record.get("source_event_id") for record in view.values()]
        duplicated += len(sources) - len(set(sources))
    return ShareChecks(records, unaudited, while_down, duplicated)


def kill_delays(rng: random.Random, kills: int, work_s: float) -> list[float]:
    """Seconds after each (re)started worker got its partitions at which to SIGKILL it:
    each a random share of the reference run's work (5-30%), so that every kill lands
    while there is work in hand (the shares add up to less than the whole)."""
    return [rng.uniform(0.05, 0.3) * max(work_s, 5.0) for _ in range(kills)]


def wait_for_assignment(log_path: Path, since: float, timeout_s: float = 120.0) -> float:
    """Seconds from `since` until the worker logging to `log_path` got its partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.exists() and '"partitions_assigned"' in log_path.read_text(errors="replace"):
            return time.monotonic() - since
        time.sleep(0.2)
    return timeout_s


@dataclass(frozen=True)
class FaultPlan:
    """What the faulty run suffers, and when (seconds after a worker got its partitions)."""

    kills: list[float]
    others: list[tuple[str, float]] = field(default_factory=list)  # (kind, delay)
    opa_down_s: float = 30.0
    registry_down_s: float = 20.0
    lag_s: float = 120.0


def plan_faults(
    rng: random.Random, kills: int, work_s: float, faults: tuple[str, ...], scale: float = 1.0
) -> FaultPlan:
    """Kill delays as `kill_delays`; each other fault a random 5-30% of the work in."""
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}: choose from {', '.join(FAULTS)}")
    return FaultPlan(
        kill_delays(rng, kills, work_s),
        [(kind, rng.uniform(0.05, 0.3) * max(work_s, 5.0)) for kind in FAULTS if kind in faults],
        opa_down_s=30.0 * scale,
        registry_down_s=20.0 * scale,
        lag_s=120.0 * scale,
    )


def _component(settings: Settings, name: str) -> local.Component:
    return next(c for c in local.components(settings) if c.name == name)


def _pause(seconds: float, worker: Any) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if worker.poll() is not None:
            raise InfrastructureError(f"the worker exited with code {worker.returncode}")
        time.sleep(0.2)


def suffer(
    settings: Settings, kind: str, plan: FaultPlan, worker: Any, figures: RunFigures, at: float
) -> str:
    """Inflict one fault (not a worker kill) and recover from it; what happened."""
    if kind == "broker":
        pid = local.running_pid(settings, _component(settings, "kafka"))
        if pid is None:
            raise InfrastructureError("the broker is not running")
        os.kill(pid, signal.SIGKILL)
        stopped = time.monotonic()
        # A killed JVM's threads close its sockets after the process looks gone.
        while local.running_pid(settings, _component(settings, "kafka")) is not None or any(
            local.port_in_use(port)
            for port in (settings.kafka_port, settings.kafka_controller_port)
        ):
            if time.monotonic() - stopped > 30:
                raise InfrastructureError("the broker did not die")
            time.sleep(0.2)
        # After an unclean stop the broker recovers every partition's log first.
        patient = settings.model_copy(
            update={"stack_timeout_s": max(settings.stack_timeout_s, 600)}
        )
        local.up(patient, lambda line: None, only=["kafka"])
        return f"broker SIGKILLed at {at:.0f}s, back after {time.monotonic() - stopped:.0f}s"
    if kind == "opa":
        local.down(settings, lambda line: None, only=["opa"])
        stopped = time.time()
        _pause(plan.opa_down_s, worker)
        figures.opa_down.append((stopped, time.time()))
        local.up(settings, lambda line: None, only=["opa"])
        return f"OPA stopped at {at:.0f}s for {plan.opa_down_s:.0f}s"
    if kind == "registry":
        local.down(settings, lambda line: None, only=["registry"])
        _pause(plan.registry_down_s, worker)
        local.up(settings, lambda line: None, only=["registry"])
        return f"registry stopped at {at:.0f}s for {plan.registry_down_s:.0f}s"
    if kind == "lag":
        # Frozen past its session timeout, the worker is put out of its group; its records
        # wait, then it rejoins and catches up.
        worker.send_signal(signal.SIGSTOP)
        try:
            time.sleep(plan.lag_s)
        finally:
            worker.send_signal(signal.SIGCONT)
        return f"worker frozen (SIGSTOP) at {at:.0f}s for {plan.lag_s:.0f}s"
    raise ValueError(kind)


def run_worker(
    settings: Settings,
    log_dir: Path,
    plan: FaultPlan | list[float],
    timeout_s: float,
    echo: Callable[[str], None],
) -> RunFigures:
    """Run a worker on `settings` until its group caught up; SIGKILL it `plan.kills[i]`
    seconds after its i-th incarnation got its partitions, restarting it each time, and
    inflict the plan's other faults in between."""
    plan = plan if isinstance(plan, FaultPlan) else FaultPlan(kills=list(plan))
    figures = RunFigures()
    began = time.monotonic()
    log_path = log_dir / "worker-0.log"
    worker = processes.spawn_worker(settings, log_path)
    others = list(plan.others)
    try:
        figures.started_s = wait_for_assignment(log_path, began)
        for n, delay in enumerate(plan.kills, start=1):
            if n > 1:
                wait_for_assignment(log_path, began)
            _pause(delay, worker)
            if others:  # one other fault per worker incarnation, before its kill
                kind, other_delay = others.pop(0)
                _pause(other_delay / 2, worker)
                line = suffer(settings, kind, plan, worker, figures, time.monotonic() - began)
                figures.faults.append(line)
                echo(f"  {line}")
            lag = processes.worker_lag(settings)
            processes.kill_worker(worker)
            at = time.monotonic() - began
            figures.kills.append((at, lag))
            echo(f"  SIGKILL {n} at {at:.0f}s, lag {lag}; restarting")
            log_path = log_dir / f"worker-{n}.log"
            worker = processes.spawn_worker(settings, log_path)
        for kind, delay in others:  # more faults than kills: after the last restart
            wait_for_assignment(log_path, began)
            _pause(delay / 2, worker)
            line = suffer(settings, kind, plan, worker, figures, time.monotonic() - began)
            figures.faults.append(line)
            echo(f"  {line}")
        try:
            processes.wait_until_caught_up(settings, timeout_s, workers=[worker])
            figures.lag_zero = True
        except InfrastructureError as exc:
            figures.lag_note = str(exc)
        figures.seconds = time.monotonic() - began
    finally:
        processes.stop_worker(worker)
    return figures


def run_campaign(
    settings: Settings,
    *,
    people: int = 5000,
    seed: int = 2020,
    kills: int = 3,
    faults: tuple[str, ...] = (),
    fault_scale: float = 1.0,
    keep_topics: bool = False,
    timeout_s: float | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> CampaignReport:
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    run = uuid.uuid4().hex[:8]
    folder = settings.state_dir / "campaign" / f"faults-{seed}-{run}"
    data = generate_input(people, seed, folder / "input")
    echo(
        f"generated {people} people, {data.requests} requests "
        f"({data.requests_without_chi} without CHI), {data.outcomes} outcomes in {folder}"
    )
    rng = random.Random(seed)
    scoped = []
    try:
        reference_settings = _scoped(settings, f"c{run}r")
        scoped.append(reference_settings)
        reference_in = publish_input(reference_settings, data)
        echo(f"reference: {reference_in} events published; worker running without faults")
        reference = run_worker(
            reference_settings, folder / "reference", [], timeout_s or 900.0, echo
        )
        reference.events_in = reference_in
        reference.lists = recipient_lists(reference_settings, serde)
        echo(f"reference: caught up in {reference.seconds:.0f}s: {reference.lag_zero}")

        faulty_settings = _scoped(settings, f"c{run}f")
        scoped.append(faulty_settings)
        faulty_in = publish_input(faulty_settings, data)
        plan = plan_faults(rng, kills, reference.seconds - reference.started_s, faults, fault_scale)
        echo(
            f"faulty: {faulty_in} events published; SIGKILL {_seconds(plan.kills)} after each "
            "(re)started worker got its partitions"
            + "".join(f"; {kind} after {delay:.0f}s" for kind, delay in plan.others)
        )
        wait = timeout_s or max(300.0, 3 * reference.seconds)
        faulty = run_worker(faulty_settings, folder / "faulty", plan, wait, echo)
        faulty.events_in = faulty_in
        faulty.lists = recipient_lists(faulty_settings, serde)
        checks = check_shares(faulty_settings, serde, faulty.opa_down, faulty.lists)
    finally:
        if not keep_topics:
            for each in scoped:
                delete_topics(settings, each.topic_prefix, f"{each.worker_group}-")
                remove_group_state(settings, each.worker_group)
                provision.remove_deployment(each)
    comparison = compare(reference.lists, faulty.lists)
    report = CampaignReport(seed, people, kills, data, reference, faulty, comparison, checks)
    log.info(
        "campaign_faults_finished",
        seed=seed,
        people=people,
        events_in=faulty.events_in,
        shared=comparison.shared,
        missing=comparison.missing,
        extra=comparison.extra,
        differing=comparison.differing,
        duplicated=checks.duplicated,
        unaudited=checks.unaudited,
        shared_while_opa_down=checks.while_opa_down,
        lag_zero=faulty.lag_zero,
        passed=report.passed,
    )
    return report


def _scoped(settings: Settings, name: str) -> Settings:
    """A deployment of its own (topics, group, grants), made as the administrator would."""
    scoped = settings.model_copy(
        update={"topic_prefix": f"{name}.", "worker_id": f"accord-campaign-{name}"}
    )
    provision.apply(scoped)
    return scoped


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}s" for v in values) or "never"
