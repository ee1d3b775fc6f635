"""Worker processes as an operator runs them: spawn `accord worker`, wait until it has
caught up, stop it (or kill it). One harness for the demo, the campaigns and the tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from accord.core.credentials import credentials_dir, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import group_lag
from accord.core.settings import Settings


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker for these settings (the rest inherited)."""
    return {
        **os.environ,
        "ACCORD_TOPIC_PREFIX": settings.topic_prefix,
        "ACCORD_WORKER_ID": settings.worker_id,
        "ACCORD_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        # The worker signs in as itself, whoever started it (a demo or a test runs as the
        # administrator).
        "ACCORD_PRINCIPAL": "",
        "ACCORD_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "ACCORD_OPA_URL": settings.opa_url,
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
    }


def spawn_worker(
    settings: Settings, log_path: Path, loglevel: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `accord worker` with its output appended to `log_path`."""
    private_dir(log_path.parent)
    command = [sys.executable, "-m", "accord", "worker"]
    if loglevel:
        command += ["-l", loglevel]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def worker_lag(settings: Settings) -> int:
    """Records the worker group has not committed, over every topic it reads."""
    from accord.worker.topology import consumed_topics

    return group_lag(settings, settings.worker_id, consumed_topics(settings))


def lag_by_topic(settings: Settings) -> dict[str, int]:
    from accord.worker.topology import consumed_topics

    return {
        topic: group_lag(settings, settings.worker_id, [topic])
        for topic in consumed_topics(settings)
    }


def wait_until_caught_up(
    settings: Settings,
    timeout_s: float = 180.0,
    *,
    worker: subprocess.Popen[bytes] | None = None,
    on_lag: Callable[[int], None] | None = None,
    quiet_checks: int = 3,
    interval_s: float = 1.0,
) -> None:
    """Until the worker group has committed everything in every topic it reads,
    `quiet_checks` times running (events flow on through its stages, so one empty look
    is not enough). Raises InfrastructureError, with the lag per topic, on timeout or when
    `worker` exits."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        if worker is not None and worker.poll() is not None:
            raise InfrastructureError(f"the worker exited with code {worker.returncode}")
        lag = worker_lag(settings)
        if on_lag is not None:
            on_lag(lag)
        quiet = quiet + 1 if lag == 0 else 0
        if quiet >= quiet_checks:
            return
        time.sleep(interval_s)
    lags = {topic: lag for topic, lag in lag_by_topic(settings).items() if lag}
    raise InfrastructureError(f"the worker did not catch up within {timeout_s:.0f}s: {lags}")


def stop_worker(worker: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM, as an operator stops a worker; SIGKILL if it has not exited in time."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL: the worker gets no chance to commit, flush or leave its group."""
    if worker.poll() is None:
        os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
