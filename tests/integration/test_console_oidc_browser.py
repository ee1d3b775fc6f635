"""Sign-in through an OpenID Connect provider in a real browser (headless Chromium).

No real provider (Entra ID) is reachable from here, so the provider is the unit tests'
stub (`tests/unit/test_console_oidc.py`), served over HTTP by uvicorn on 127.0.0.2: a
different site from the console on 127.0.0.1, so the browser treats the provider's
redirect back as cross-site, as it would with login.microsoftonline.com. The console runs
its real application (`create_app` from settings, uvicorn, the real HTTP calls to the
provider). What this checks that the unit tests cannot: the browser's own cookie rules
(the flow cookie is SameSite=Lax and comes back on the cross-site redirect; the session
cookie is SameSite=Strict and the console's own interim page gets it sent), ending on the
coordinator's list. Needs no Kafka or OPA (the lists are absent, and the page says so).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from tests.unit.test_console_oidc import CLIENT_ID, ROLE_MAP, SECRET, StubProvider

from accord.console.app import create_app
from accord.console.users import UserStore
from accord.core.settings import Settings

CHROMIUM = os.environ.get("ACCORD_TEST_CHROMIUM", "/usr/bin/chromium")
PROVIDER_HOST = "127.0.0.2"  # another site than the console's 127.0.0.1


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Served:
    """An ASGI app served by uvicorn in a thread, until stop()."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on {host}:{port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def chromium(browser: Any) -> Any:
    """The suite's one headless Chromium (`console_harness.browser`, session-scoped): a
    second Playwright started in the same process refuses to run inside the first one's
    event loop, so this module never starts its own."""
    return browser


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, StubProvider]]:
    console_port, provider_port = free_port("127.0.0.1"), free_port(PROVIDER_HOST)
    console = f"http://127.0.0.1:{console_port}"
    stub = StubProvider(
        base=f"http://{PROVIDER_HOST}:{provider_port}",
        redirect=f"{console}/sign-in/oidc/callback",
    )
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    roles = tmp_path / "oidc-roles.json"
    roles.write_text(json.dumps(ROLE_MAP))
    settings = Settings(
        state_dir=tmp_path,
        console_tls=False,
        console_oidc_issuer=stub.issuer,
        console_oidc_client_id=CLIENT_ID,
        console_oidc_client_secret_file=secret,
        console_oidc_redirect_url=stub.redirect,
        console_oidc_roles_file=roles,
    )
    provider = Served(stub.app, PROVIDER_HOST, provider_port)
    app = Served(
        create_app(settings, users=UserStore(settings.console_users_path)),
        "127.0.0.1",
        console_port,
    )
    try:
        yield console, stub
    finally:
        app.stop()
        provider.stop()


def test_a_coordinator_signs_in_through_the_provider_in_a_browser(chromium, served):
    console, stub = served
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{console}/sign-in")
    page.click("#sign-in-oidc")
    page.wait_for_url(lambda url: "/sign-in" not in url and url.startswith(console), timeout=15_000)
    assert page.url.startswith(f"{console}/cases") or page.url.startswith(f"{console}/lists")
    cookies = {c["name"]: c for c in context.cookies(console)}
    assert (
        cookies["accord_session"]["sameSite"] == "Strict" and cookies["accord_session"]["httpOnly"]
    )
    assert "accord_oidc" not in cookies  # used once, then removed
    assert stub.token_requests and stub.token_requests[-1]["code_verifier"]
    context.close()


def test_an_unmapped_person_is_refused_in_a_browser(chromium, served):
    console, stub = served
    stub.claims = {**stub.claims, "roles": ["Some.Other.App.Role"]}
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{console}/sign-in")
    page.click("#sign-in-oidc")
    page.wait_for_selector("text=Your account has no access to this console", timeout=15_000)
    page.goto(f"{console}/")
    assert "/sign-in" in page.url
    context.close()
