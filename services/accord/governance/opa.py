"""An OPA of our own: a throw-away `opa run --server` on a free 127.0.0.1 port, for
candidate policies (simulation) and for measurements that must not touch the stack's OPA.

It runs exactly as the stack's OPA does (`accord.stack.opa.server_argv`): the hub's token
only, no API writes, and policies using http.send, net.* or opa.runtime refused before
it starts."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from accord.core.errors import InfrastructureError
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.stack.opa import server_argv

log = get_logger("accord.governance.opa")
DECISIONS_PATH = "v1/data/accord/sharing/decisions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class IsolatedOpa:
    """`with IsolatedOpa(settings, policies_dir) as opa:` serves policies_dir on opa.url."""

    def __init__(
        self,
        settings: Settings,
        policies_dir: Path,
        *,
        watch: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.settings, self.policies_dir, self.watch = settings, policies_dir, watch
        self.binary = settings.opa_binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> IsolatedOpa:
        if not self.binary.exists():
            raise InfrastructureError(f"OPA is not built at {self.binary}; run `accord stack up`")
        argv = server_argv(
            self.settings, f"127.0.0.1:{self.port}", self.policies_dir, watch=self.watch
        )
        out = open(self.log_file, "wb") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InfrastructureError(
                    f"OPA refused the policies in {self.policies_dir} "
                    f"(exit {self.process.returncode})"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    log.info("isolated_opa_started", url=self.url, policies=str(self.policies_dir))
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise InfrastructureError(f"OPA on {self.url} did not become healthy in 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            log.info("isolated_opa_stopped", url=self.url)


def decide(session: requests.Session, url: str, policy_input: dict[str, Any]) -> list[dict]:
    """Decisions from the OPA at `url`; raises when it cannot answer (fail closed)."""
    try:
        response = session.post(f"{url}/{DECISIONS_PATH}", json={"input": policy_input}, timeout=30)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise InfrastructureError(f"OPA at {url} did not answer: {exc}") from exc
    if "result" not in body:
        raise InfrastructureError(f"OPA at {url} has no accord.sharing.decisions rule loaded")
    return list(body["result"])
