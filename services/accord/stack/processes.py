"""Worker processes as an operator runs them: settings to environment, spawn `accord
worker`, wait until it has caught up, stop it (or kill it), and what it used (memory).

The one harness for the demo, the bench, the campaigns and the integration tests: it
imports none of them. What a worker reads (its partner and stage topics) is asked of the
worker's own module in `worker_topics` and `stage_topics` only, so a change of stages is
followed everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from accord.core.credentials import credentials_dir, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client, group_lag
from accord.core.settings import Settings

Process = subprocess.Popen[bytes]


def worker_topics(settings: Settings) -> list[str]:
    """Every topic a worker reads: partner topics and its stage topics."""
    from accord.worker.topology import consumed_topics

    return consumed_topics(settings)


def stage_topics(settings: Settings) -> list[str]:
    """The worker's own stage topics, in the order events flow through them."""
    from accord.worker.topology import stage_topics as stages

    return stages(settings)


def process_env(settings: Settings, *, principal: str = "", **extra: str) -> dict[str, str]:
    """The environment of an Accord process for these settings (the rest inherited).
    `principal` empty: the process signs in as its command's own principal."""
    return {
        **os.environ,
        "ACCORD_TOPIC_PREFIX": settings.topic_prefix,
        "ACCORD_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "ACCORD_WORKER_ID": settings.worker_id,
        "ACCORD_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ACCORD_PRINCIPAL": principal,
        "ACCORD_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "ACCORD_OPA_URL": settings.opa_url,
        "ACCORD_STATE_DIR": str(settings.state_dir),
        # Pinned, so settings that moved the state dir still sign in with the stack's.
        "ACCORD_CREDENTIALS_DIR": str(credentials_dir(settings)),
        "ACCORD_CA_FILE": str(settings.trusted_ca),
        "ACCORD_OPA_TOKEN_FILE": str(settings.opa_token_path),
        **(
            {"ACCORD_PSEUDONYM_KEY_FILE": str(settings.pseudonym_key_file)}
            if settings.pseudonym_key_file
            else {}
        ),
        "ACCORD_LOG_FORMAT": "json",
        **extra,
    }


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker for these settings. The worker signs in as itself,
    whoever started it (a demo, a bench or a test runs as the administrator)."""
    return process_env(settings, **extra)


def spawn(argv: Sequence[str], env: dict[str, str], log_path: Path) -> Process:
    """`python <argv>` with its output appended to `log_path` (under a private dir)."""
    private_dir(log_path.parent)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def spawn_worker(
    settings: Settings, log_path: Path, loglevel: str | None = None, **extra: str
) -> Process:
    """Start `accord worker` with its output appended to `log_path`."""
    argv = ["-m", "accord", "worker"]
    if loglevel:
        argv += ["-l", loglevel]
    return spawn(argv, worker_env(settings, **extra), log_path)


def check_alive(processes: Sequence[Process], log: Path | None = None) -> None:
    """Raise InfrastructureError when one of `processes` has exited."""
    for process in processes:
        if process.poll() is not None:
            where = f"; see {log}" if log is not None else ""
            raise InfrastructureError(f"a process exited with code {process.returncode}{where}")


def _status_mb(pid: int, field: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM), in MB; None where /proc cannot say."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    """A live process's resident memory now (VmRSS), in MB; None where /proc cannot say."""
    return _status_mb(pid, "VmRSS")


def worker_lag(settings: Settings) -> int:
    """Records the worker group has not committed, over every topic it reads."""
    return group_lag(settings, settings.worker_group, worker_topics(settings))


def lag_by_topic(settings: Settings) -> dict[str, int]:
    group = settings.worker_group
    return {topic: group_lag(settings, group, [topic]) for topic in worker_topics(settings)}


def wait_until_caught_up(
    settings: Settings,
    timeout_s: float = 180.0,
    *,
    workers: Sequence[Process] = (),
    on_progress: Callable[[int, int], None] | None = None,
    quiet_checks: int = 3,
    interval_s: float = 1.0,
) -> None:
    """Until the worker group has committed everything in every topic it reads,
    `quiet_checks` times running (events flow on through its stages, so one empty look
    is not enough). `on_progress(done, most)` hears the lag as records done out of the
    most seen outstanding. Raises InfrastructureError, with the lag per topic, on timeout
    or when one of `workers` exits."""
    deadline, quiet, most = time.monotonic() + timeout_s, 0, 0
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.poll() is not None:
                raise InfrastructureError(f"the worker exited with code {worker.returncode}")
        lag = worker_lag(settings)
        most = max(most, lag)
        if on_progress is not None:
            on_progress(most - lag, most)
        quiet = quiet + 1 if lag == 0 else 0
        if quiet >= quiet_checks:
            return
        time.sleep(interval_s)
    lags = {topic: lag for topic, lag in lag_by_topic(settings).items() if lag}
    raise InfrastructureError(f"the worker did not catch up within {timeout_s:.0f}s: {lags}")


def wait_until_joined(settings: Settings, members: int = 1, timeout_s: float = 120.0) -> None:
    """Until the worker group is stable with at least `members` members (it has its
    partitions and reads): for a figure that must not include a worker's start-up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        admin = admin_client(settings)
        try:
            group = admin.describe_groups([settings.worker_group]).get(settings.worker_group) or {}
        finally:
            admin.close()
        state = str(group.get("group_state") or group.get("state") or "")
        if state.lower() == "stable" and len(group.get("members") or ()) >= members:
            return
        time.sleep(0.5)
    raise InfrastructureError(f"the worker group did not settle within {timeout_s:.0f}s")


def stop_worker(worker: Process, timeout_s: float = 30.0) -> None:
    """SIGTERM, as an operator stops a worker; SIGKILL if it has not exited in time."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def stop(processes: Sequence[Process], timeout_s: float = 30.0) -> list[float]:
    """Each process's peak memory (MB), read just before it is stopped; then stop all."""
    peaks = [peak_rss_mb(p.pid) or 0.0 for p in processes]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        stop_worker(process, timeout_s)
    return peaks


def kill_worker(worker: Process) -> None:
    """SIGKILL: the worker gets no chance to commit, flush or leave its group."""
    if worker.poll() is None:
        os.kill(worker.pid, signal.SIGKILL)
    worker.wait()


class Workers:
    """Worker processes of one deployment (one consumer group), started and stopped
    together: `with Workers(settings, log_dir) as workers: workers.start()`."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        *,
        loglevel: str | None = None,
        name: str = "worker",
        **extra: str,
    ) -> None:
        self.settings, self.log_dir, self.loglevel = settings, log_dir, loglevel
        self.name, self.extra = name, extra
        self.started: list[Process] = []
        self.peaks_mb: list[float] = []

    def log_path(self, n: int) -> Path:
        return self.log_dir / f"{self.name}-{n}.log"

    def start(self, count: int = 1) -> Process:
        """Start `count` more workers; returns the last."""
        for _ in range(count):
            log = self.log_path(len(self.started))
            self.started.append(spawn_worker(self.settings, log, self.loglevel, **self.extra))
        return self.started[-1]

    def wait_until_caught_up(
        self, timeout_s: float = 180.0, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        running = [p for p in self.started if p.returncode is None]
        wait_until_caught_up(
            self.settings, timeout_s, workers=running, on_progress=on_progress, interval_s=0.5
        )

    def roll(
        self, settle_timeout_s: float = 120.0, on_step: Callable[[int], None] | None = None
    ) -> None:
        """A rolling restart: each running worker in turn is stopped (SIGTERM, as an
        operator stops it), a new one started in its place, and the group left to settle
        (stable with as many members as before) before the next."""
        running = [p for p in self.started if p.poll() is None]
        for n, old in enumerate(running):
            stop_worker(old)
            self.start()
            wait_until_joined(self.settings, len(running), settle_timeout_s)
            if on_step is not None:
                on_step(n)

    def rss_mb(self) -> list[float]:
        """Each running worker's resident memory now."""
        return [rss_mb(p.pid) or 0.0 for p in self.started if p.poll() is None]

    def stop(self) -> list[float]:
        """Stop every worker; their peak memory (MB) read just before, also kept."""
        running = [p for p in self.started if p.poll() is None]
        self.peaks_mb = stop(running)
        return self.peaks_mb

    def tails(self, size: int = 3000) -> Iterator[tuple[str, str]]:
        """(log name, its last `size` characters) for every worker started."""
        for n in range(len(self.started)):
            path = self.log_path(n)
            with contextlib.suppress(OSError):
                yield path.name, path.read_text(errors="replace")[-size:]

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
