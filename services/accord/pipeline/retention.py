"""Recipients' share topics keep records only as long as their agreements allow.

An agreement's `retention: {days: N, then: delete}` becomes the broker configuration of
every recipient's `share.<recipient>.support-list`:

- `cleanup.policy=compact,delete`: the topic stays compacted by person (the latest case
  per key; tombstones remove people), and whole log segments older than the retention
  period are deleted as well, even when they hold a key's latest record. A person shared
  once and never updated therefore leaves the recipient's topic after N days, counted
  from the record's timestamp (when the hub last shared about them).
- `retention.ms = N * 86,400,000`.
- `segment.ms = min(retention.ms, 1 day)`: Kafka deletes by segment and never the active
  one, so a record can outlive the period until its segment rolls; rolling daily bounds
  that overrun to about a day (a segment rolls when a record arrives after segment.ms).

A recipient under several agreements gets the shortest period of them all, whatever
their status: the strictest promise made to any provider holds for everything in the
topic, since one topic mixes records shared under each. A share topic whose recipient no
agreement names (e.g. a council receiving only its own requests back) has no period to
follow; the check reports it rather than guessing.

The pure computation, below both the worker and governance; the broker check and
changes are `accord.governance.retention`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from accord.core.kafka import COMPACTED
from accord.core.topics import SUPPORT_LIST, Topics

DAY_MS = 86_400_000
CLEANUP_POLICY = "compact,delete"
# The keys the check compares with the agreement; `apply` also sets segment.ms.
CHECKED_KEYS = ("cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class Retention:
    """The period a recipient's share topic keeps records, and the agreement setting it."""

    days: int
    agreement_id: str

    @property
    def ms(self) -> int:
        return self.days * DAY_MS

    def config(self) -> dict[str, str]:
        """The share topic's broker configuration for this period."""
        return {
            **COMPACTED,
            "cleanup.policy": CLEANUP_POLICY,
            "retention.ms": str(self.ms),
            "segment.ms": str(min(self.ms, DAY_MS)),
        }


def recipient_retention(agreements: Mapping[str, Any]) -> dict[str, Retention]:
    """Recipient org -> the shortest retention of every agreement naming it (any status);
    ties go to the lowest agreement id. Agreements without a readable period are skipped
    (the agreement schema requires one; OPA denies sharing under a malformed agreement)."""
    shortest: dict[str, Retention] = {}
    for agreement_id in sorted(agreements):
        agreement = agreements[agreement_id]
        if not isinstance(agreement, Mapping):
            continue
        days = (agreement.get("retention") or {}).get("days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            continue
        for recipient in agreement.get("recipients") or ():
            org = recipient.get("org") if isinstance(recipient, Mapping) else None
            if not isinstance(org, str):
                continue
            if org not in shortest or days < shortest[org].days:
                shortest[org] = Retention(days, agreement_id)
    return shortest


def share_topic_configs(topics: Topics, agreements: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Share topic -> its broker configuration, for every recipient an agreement names."""
    return {
        topics.share(org): retention.config()
        for org, retention in recipient_retention(agreements).items()
    }


def share_recipient(topics: Topics, topic: str) -> str | None:
    """The recipient of a share topic of this deployment (prefix), else None."""
    pattern = rf"^{re.escape(topics.prefix)}share\.([a-z0-9-]+)\.{re.escape(SUPPORT_LIST)}$"
    match = re.match(pattern, topic)
    return match[1] if match else None


def agreements_from_dir(policies_dir: Path) -> dict[str, Any]:
    """Every agreement under <policies_dir>/agreements/*.yaml, by id (as OPA loads them)."""
    agreements: dict[str, Any] = {}
    for path in sorted((policies_dir / "agreements").glob("*.yaml")):
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            agreements.update(loaded)
    return agreements
