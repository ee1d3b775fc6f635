"""The suspension figure: from suspending an agreement to the last tombstone it causes.

On the main run's deployment, caught up: the recipient whose list holds the number of
people closest to the target (5,000 by default) under one agreement is chosen; that
agreement is suspended in the bench's copy of policies/, which the bench's OPA watches
(the change `tests/integration/test_governance_suspension.py` makes: OPA's API takes no
writes, by design, so agreements change as files); the figure is the time from the change
to the broker timestamp of the last tombstone for those people on that recipient's list.
The agreement is then restored and the time to the last record shared again is reported.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kafka import TopicPartition

from accord.bench.measure import Offsets, read_since
from accord.core.credentials import ADMIN
from accord.core.kafka import consumer
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.stack import processes

if TYPE_CHECKING:
    from accord.bench.run import Bench

T = TypeVar("T")
OWN_DATA = "own-data"


def live_view(records: Iterable[tuple[str, T | None]]) -> dict[str, T]:
    """A compacted topic's view: the latest value per key, tombstones removed."""
    view: dict[str, T] = {}
    for key, value in records:
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value
    return view


def closest(counts: dict[str, int], target: int) -> str | None:
    """The name whose count is closest to `target` (the larger on a tie); None if none
    holds anyone."""
    held = {name: count for name, count in counts.items() if count > 0}
    if not held:
        return None
    return min(held, key=lambda name: (abs(held[name] - target), -held[name], name))


def main_agreement(agreements: dict[str, str]) -> tuple[str, set[str]] | None:
    """The agreement most of a list's people were shared under (not the councils' own
    data, which no agreement governs), and those people's keys."""
    counts = Counter(a for a in agreements.values() if a and a != OWN_DATA)
    if not counts:
        return None
    chosen = counts.most_common(1)[0][0]
    return chosen, {key for key, a in agreements.items() if a == chosen}


def set_suspended(path: Path, reason: str) -> tuple[str, float]:
    """Suspend the agreement in `path` (atomically); (its text before, the wall time)."""
    before = path.read_text(encoding="utf-8")
    text = before.replace(
        "  status: active", f'  status: suspended\n  status_reason: "{reason}"', 1
    )
    if text == before:
        raise ValueError(f"{path.name} is not active")
    return before, write_atomically(path, text)


def write_atomically(path: Path, text: str) -> float:
    staged = path.with_suffix(".tmp")
    staged.write_text(text, encoding="utf-8")
    staged.replace(path)
    return time.time()


def wait_for_each(
    settings: Settings,
    topic: str,
    keys: set[str],
    starts: dict[TopicPartition, int],
    tombstone: bool,
    timeout_s: float,
) -> dict[str, int]:
    """Broker timestamps (ms) of the first tombstone (or the first shared record) for each
    of `keys` on `topic` from `starts`; returns when every key has one or at the timeout."""
    reader = consumer(settings, enable_auto_commit=False, auto_offset_reset="earliest")
    seen: dict[str, int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        reader.assign(tps)
        for tp in tps:
            reader.seek(tp, starts.get(tp, 0))
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(keys) and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=200, max_records=5000).values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if key in keys and key not in seen and (record.value is None) == tombstone:
                        seen[key] = record.timestamp
    finally:
        reader.close()
    return seen


def span(seen: dict[str, int], since: float) -> tuple[float | None, float | None]:
    """(first, last) seconds after `since` among the timestamps seen."""
    if not seen:
        return None, None
    return (
        round(max(0.0, min(seen.values()) / 1000 - since), 3),
        round(max(0.0, max(seen.values()) / 1000 - since), 3),
    )


def measure(bench: Bench, scoped: Settings, pool: processes.Workers) -> dict[str, Any] | None:
    from accord.bench.run import share_topics

    target = bench.plan.suspension_people
    topics = share_topics(scoped)
    live: dict[str, dict[str, bytes]] = {}
    for topic in topics:
        records = read_since(scoped, [topic], {})
        live[topic] = live_view((r.key.decode(), r.value) for r in records if r.key is not None)
    chosen = closest({topic: len(view) for topic, view in live.items()}, target)
    if chosen is None:
        bench.say("[yellow]suspension: no recipient holds anyone; not measured")
        return None
    serde = AvroSerde(registry_client(scoped, ADMIN), scoped.schemas_dir)
    agreements = {
        key: str(serde.decode(value)[1].get("agreement_id") or OWN_DATA)
        for key, value in live[chosen].items()
    }
    found = main_agreement(agreements)
    if found is None:
        bench.say("[yellow]suspension: the recipient holds no one under an agreement")
        return None
    agreement, held = found
    recipient = chosen[len(f"{scoped.topic_prefix}share.") :].split(".")[0]
    path = bench.policies / "agreements" / f"{agreement}.yaml"
    offsets = Offsets(scoped)
    try:
        starts = offsets.ends([chosen])
        before, changed_at = set_suspended(path, "suspended by the bench")
        bench.say(f"suspension: {agreement} suspended; {recipient} holds {len(held):,} under it")
        gone = wait_for_each(scoped, chosen, held, starts, True, bench.plan.timeout_s)
        first, last = span(gone, changed_at)
        starts = offsets.ends([chosen])
        restored_at = write_atomically(path, before)
        back = wait_for_each(scoped, chosen, held, starts, False, bench.plan.timeout_s)
        _, back_last = span(back, restored_at)
    finally:
        offsets.close()
        if path.read_text(encoding="utf-8") != before:
            write_atomically(path, before)
    bench.caught_up(pool, "suspension: settling")
    return {
        "recipient": recipient,
        "agreement": agreement,
        "target_people": target,
        "held": len(held),
        "tombstoned": len(gone),
        "first_tombstone_s": first,
        "last_tombstone_s": last,
        "restored_shared_again": len(back),
        "restore_to_last_share_s": back_last,
    }


def describe(figure: dict[str, Any]) -> list[str]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    return [
        f"suspension of {figure['agreement']}: {figure['recipient']} held "
        f"{figure['held']:,} people under it; {figure['tombstoned']:,} tombstoned, the first "
        f"{seconds(figure['first_tombstone_s'])} and the last "
        f"{seconds(figure['last_tombstone_s'])} after the change",
        f"restored: {figure['restored_shared_again']:,} shared again, the last "
        f"{seconds(figure['restore_to_last_share_s'])} after the change back",
    ]
