"""Live suspension: a real worker, a steady trickle from NHS Lothian, and an agreement
suspended on disk (in a copy of policies/ served by an OPA of the test's own, with
--watch). Measures the time from the change to the last record shared under it."""

from __future__ import annotations

import shutil
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from accord.core.topics import Topics
from accord.demo.synthetic import write_csv
from accord.governance.opa import IsolatedOpa
from accord.ingest.publish import publish_file

from .conftest import decoded, wait_for
from .workload import people

pytestmark = pytest.mark.integration
EDINBURGH = "city-of-edinburgh"
TARGET_S = 2.0


@pytest.fixture
def policies_copy(tmp_path):
    copy = tmp_path / "policies"
    shutil.copytree(pytest.importorskip("accord.core.settings").get_settings().policies_dir, copy)
    return copy


@pytest.fixture
def watched_opa(stack, policies_copy, tmp_path):
    with IsolatedOpa(
        stack.opa_binary, policies_copy, watch=True, log_file=tmp_path / "opa.log"
    ) as opa:
        yield opa


@pytest.fixture
def settings(settings, watched_opa):
    """The test's settings, pointed at the test's own OPA (the worker fixture uses them)."""
    return settings.model_copy(update={"opa_url": watched_opa.url})


def suspend(policies_dir, agreement_id: str) -> float:
    """Rewrite the agreement with status suspended (atomically); returns the wall time."""
    path = policies_dir / "agreements" / f"{agreement_id}.yaml"
    text = path.read_text().replace("status: active", "status: suspended", 1)
    text = text.replace("  version: 2\n", '  version: 2\n  status_reason: "suspended by test"\n')
    staged = path.with_suffix(".tmp")
    staged.write_text(text)
    staged.replace(path)
    return time.time()


def test_a_suspended_agreement_stops_sharing_within_two_seconds(
    settings, serde, worker, policies_copy, tmp_path
):
    rows = [row for row in people(400) if row["council_area"] == "City of Edinburgh"]
    stop = threading.Event()

    def trickle() -> None:
        for i, row in enumerate(rows):
            if stop.is_set():
                return
            path = tmp_path / f"row-{i}.csv"
            write_csv([row], path)
            publish_file(settings, "nhs-lothian", "shielding-list", path)
            time.sleep(0.1)

    publisher = threading.Thread(target=trickle, daemon=True)
    worker()
    publisher.start()
    share = Topics(settings).share(EDINBURGH)
    try:
        wait_for(settings, serde, share, lambda r: len(r) >= 5, timeout_s=120)
        changed_at = suspend(policies_copy, "DSA-010")
        time.sleep(8)  # keep the trickle going well past the change
    finally:
        stop.set()
        publisher.join(timeout=30)
    time.sleep(3)  # let the worker finish what was published

    shared = [case for _, case in decoded(settings, serde, share) if case is not None]
    times = [case["updated_at"].timestamp() for case in shared if case["agreement_id"] == "DSA-010"]
    after = [t for t in times if t > changed_at]
    last = max(times)
    latency = max(0.0, last - changed_at)
    audit = [r for _, r in decoded(settings, serde, Topics(settings).audit) if r is not None]
    suspended = [r for r in audit if any("is suspended" in reason for reason in r["reasons"])]
    first_suspended = min(r["decided_at"].timestamp() for r in suspended) - changed_at
    print(
        f"\nsuspension: change at {datetime.fromtimestamp(changed_at, UTC):%H:%M:%S.%f}, "
        f"last share under DSA-010 {latency:.3f} s after it ({len(after)} shares after), "
        f"first suspended deny {first_suspended:.3f} s after it; "
        f"{len(shared)} shares, {len(suspended)} suspended denies",
        file=sys.stderr,
    )
    assert suspended, "no decision after the change cited the suspension"
    assert latency < TARGET_S
    assert all("suspended by test" in " ".join(r["reasons"]) for r in suspended)
    assert uuid.UUID(str(shared[0]["decision_id"]))
