"""Retention on the real broker: share topics follow their agreements' retention, the
check reports a topic that does not, and --apply brings it into line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from accord.core.kafka import COMPACTED, ensure_topics
from accord.core.topics import Topics
from accord.governance.retention import (
    alter,
    describe,
    ensure_share_topics,
    share_topic_config,
)
from accord.pipeline.retention import DAY_MS
from accord.stack import processes

pytestmark = pytest.mark.integration
WEEK_MS = str(7 * DAY_MS)


def retention_command(settings, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "policy", "retention", *flags],
        env=processes.worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_reports_a_wrong_retention_and_apply_fixes_it(settings):
    topic = Topics(settings).share("city-of-edinburgh")
    # Provisioning made it right; knock it out of line as a careless operator might.
    alter(settings, {topic: {"cleanup.policy": "compact", "retention.ms": WEEK_MS}})
    deadline = time.monotonic() + 10  # an altered config reaches DescribeConfigs shortly after
    while describe(settings, [topic])[topic]["retention.ms"] != WEEK_MS:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    before = retention_command(settings)
    print(before.stdout, file=sys.stderr)
    assert before.returncode == 1, before.stderr
    assert before.stdout.splitlines()[0] == (
        f"mismatch {topic}  broker: cleanup.policy=compact retention.ms={WEEK_MS}  agreement: "
        "cleanup.policy=compact,delete retention.ms=31536000000 (365 days)  DSA-010"
    )
    assert "1 disagree, 0 without an agreement" in before.stdout

    applied = retention_command(settings, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.startswith(f"fixed    {topic}")

    after = retention_command(settings, "--check")
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.strip().endswith("0 disagree, 0 without an agreement")
    config = describe(settings, [topic])[topic]
    assert (config["cleanup.policy"], config["retention.ms"], config["segment.ms"]) == (
        "compact,delete",
        str(365 * DAY_MS),
        str(DAY_MS),
    )


def test_a_share_topic_no_agreement_names_is_reported(settings):
    topic = Topics(settings).share("no-such-partner")
    ensure_topics(settings, {topic: dict(COMPACTED)}, 1)
    for flags in ((), ("--apply",)):
        out = retention_command(settings, *flags)
        assert out.returncode == 1
        assert (
            f"uncovered {topic}" in out.stdout
            and "no agreement names no-such-partner" in out.stdout
        )


def test_the_worker_creates_share_topics_with_their_retention_and_aligns_old_ones(settings):
    topics = Topics(settings)
    old = topics.share("midlothian")
    ensure_topics(settings, {old: dict(COMPACTED)}, 1)  # before retention

    ensure_share_topics(settings, 1)  # what the worker does at start-up, with the stack's OPA

    food, council = topics.share("community-food-network"), topics.share("city-of-edinburgh")
    deadline = time.monotonic() + 10  # an altered config reaches DescribeConfigs shortly after
    while True:
        configs = describe(settings, [food, council, old])
        if configs[old]["retention.ms"] != WEEK_MS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert configs[food]["retention.ms"] == str(90 * DAY_MS)  # DSA-015
    assert configs[council]["retention.ms"] == str(365 * DAY_MS)  # DSA-010
    assert configs[old]["retention.ms"] == str(365 * DAY_MS)
    assert {configs[t]["cleanup.policy"] for t in configs} == {"compact,delete"}
    # A share topic the gate creates mid-batch gets the same configuration.
    assert share_topic_config(settings, food)["retention.ms"] == str(90 * DAY_MS)
    assert share_topic_config(settings, topics.share("no-such-partner")) == dict(COMPACTED)
    assert retention_command(settings).returncode == 0
