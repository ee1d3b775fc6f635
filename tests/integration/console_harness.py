"""The console's browser tests' harness: a real `accord console` process against the
stack, headless Chromium from the system's packages driven by Playwright's Python API,
axe-core (from the console's npm assets) injected into each page, and screenshots.

    def test_x(console_app, browser):
        app = console_app(users={"alice": ("coordinator", "city-of-edinburgh")})
        page = app.sign_in(browser, "alice")        # a new browser context, signed in
        page.goto(app.url("/lists/city-of-edinburgh"))
        assert_accessible(page, "coordinator list")
        screenshot(page, "coordinator-list")         # docs/screenshots/coordinator-list.png

Chromium is /usr/bin/chromium (Debian's `chromium`; `make test` installs it where apt is
available) or ACCORD_TEST_CHROMIUM; where it is absent the browser tests skip, saying so.
Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher

from accord.console.users import UserStore
from accord.core.settings import REPO_ROOT, Settings
from accord.stack import processes

CHROMIUM = os.environ.get("ACCORD_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = REPO_ROOT / "services/accord/console/assets/node_modules/axe-core/axe.min.js"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
AXE_RESULTS = SCREENSHOTS / "axe-results.json"
PASSWORD = "a test password, long enough"
# Argon2id with small costs: the console verifies them as any other (the parameters are in
# the hash) and rehashes at the first sign-in.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ConsoleApp:
    """A running `accord console` for one test (its own port, users and access log)."""

    base: str
    settings: Settings
    users_file: Path
    access_log: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    contexts: list[Any] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def access_entries(self) -> list[dict]:
        try:
            lines = self.access_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def sign_in(self, browser: Any, username: str, viewport: dict | None = None) -> Any:
        """A new browser context (its own cookies), signed in as `username`."""
        context = browser.new_context(
            ignore_https_errors=True,  # the stack's own CA, which Chromium does not know
            viewport=viewport or DESKTOP,
            accept_downloads=True,
            bypass_csp=True,  # lets the test inject axe-core; the pages' CSP is unchanged
        )
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(self.url("/sign-in"))
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert "/sign-in" not in page.url, page.content()[:2000]
        return page

    def stop(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # a context the test closed already
                pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def console_app(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ConsoleApp]]:
    """Starts `accord console` on a free port against the test's own topics, with the
    users given ({name: (role, org or None)}, password PASSWORD)."""
    started: list[ConsoleApp] = []

    def start(users: dict[str, tuple[str, str | None]], **env: str) -> ConsoleApp:
        users_file = tmp_path / "console-users.json"
        store = UserStore(users_file, FAST)
        for name, (role, org) in users.items():
            store.add(name, role, PASSWORD, org, replace=True)
        port = free_port()
        access_log = tmp_path / "console-access.jsonl"
        log_path = tmp_path / "console.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "accord", "console"],
                env=processes.process_env(
                    settings,
                    ACCORD_CONSOLE_PORT=str(port),
                    ACCORD_CONSOLE_USERS_FILE=str(users_file),
                    ACCORD_CONSOLE_ACCESS_LOG_FILE=str(access_log),
                    ACCORD_CONSOLE_TLS="true",
                    **env,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        app = ConsoleApp(
            f"https://127.0.0.1:{port}", settings, users_file, access_log, process, log_path
        )
        started.append(app)
        # Its imports alone took over 60 s on a 2-core machine under a load of 20 to 30.
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(app.url("/health"), verify=str(settings.trusted_ca), timeout=2).ok:
                    return app
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the console did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    yield start
    for app in started:
        app.stop()
        print(f"--- console log (tail)\n{app.log_path.read_text()[-3000:]}", file=sys.stderr)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system's packages (never a downloaded build), one per
    test module: Playwright's sync API keeps its event loop running in this thread while it
    is open, so every later `asyncio.run()` in the session (the unit tier runs after this
    one) would fail if it stayed open to the session's end."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: `apt-get install chromium` (make test "
            "does it where apt is available) or set ACCORD_TEST_CHROMIUM"
        )
    if not AXE.is_file():
        pytest.skip(f"axe-core is missing ({AXE}): run `make assets`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def assert_accessible(page: Any, name: str) -> list[dict]:
    """Run axe-core in the page; fail on any serious or critical violation. Every page's
    result (violations by impact) is recorded in docs/screenshots/axe-results.json."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.length,
                                           targets: v.nodes.slice(0, 3).map(n => n.target)}));
        }"""
    )
    record_axe(name, page.url, result)
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: axe-core found {json.dumps(bad, indent=1)}"
    return result


def record_axe(name: str, url: str, violations: list[dict]) -> None:
    try:
        results = json.loads(AXE_RESULTS.read_text())
    except (OSError, ValueError):
        results = {}
    counts: dict[str, int] = {}
    for violation in violations:
        counts[violation["impact"] or "unknown"] = counts.get(violation["impact"], 0) + 1
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url
    results[name] = {"path": path.split("?")[0], "violations": counts, "rules": violations}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    AXE_RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def assert_fits_tablet(page: Any, name: str, shot: str | None = None) -> list[dict]:
    """The page at tablet width (768 px): never wider than the screen (a wide table
    scrolls inside its `.app-table-wrapper`, nothing else sticks out) and axe-core clean
    of serious and critical violations (recorded as "<name> at 768 px"); photographed to
    docs/screenshots/<shot>.png when `shot` is given. The viewport is put back after."""
    before = page.viewport_size or DESKTOP
    page.set_viewport_size(TABLET)
    try:
        width, sticking_out = page.evaluate(
            """() => [document.documentElement.scrollWidth,
                [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                .filter(e => !e.closest('.app-table-wrapper'))
                .slice(0, 5).map(e => e.tagName + '.' + e.className)]"""
        )
        assert width <= TABLET["width"], (
            f"{name}: the page is {width} px wide at {TABLET['width']} px: {sticking_out}"
        )
        found = assert_accessible(page, f"{name} at 768 px")
        if shot:
            screenshot(page, shot)
        return found
    finally:
        page.set_viewport_size(before)


def screenshot(page: Any, name: str) -> Path:
    """docs/screenshots/<name>.png, the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
