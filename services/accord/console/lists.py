"""The recipients' live lists, kept in the console's memory from their share topics.

A list is read the first time a coordinator of that recipient opens it, as the recipient
itself would read it: signed in to Kafka as the recipient's own principal (the credential
the stack saved for it), from the beginning of its compacted share topic, applying each
case and each tombstone (`accord.coordinator.views.update_of`). It then follows the topic:
every change is handed to the pages listening (server-sent events) and shown within a
second. A reader that loses Kafka says so on the page, and reads the list again from the
beginning once Kafka is back, so nothing is shown that the topic no longer holds.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from kafka import TopicPartition

from accord.coordinator import views
from accord.core.credentials import CONSOLE
from accord.core.kafka import consumer as kafka_consumer
from accord.core.logging import get_logger
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import Topics

log = get_logger("accord.console")

RETRY_S: Final = 3.0  # between attempts while a topic is missing or Kafka is away
POLL_MS: Final = 500


@dataclass
class RecipientList:
    """One recipient's open cases, as its share topic holds them now."""

    org: str
    topic: str
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed_because: Counter[str] = field(default_factory=Counter)
    records: int = 0
    topic_exists: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    version: int = 0  # goes up with every change a page could see
    # Tells this list apart from one read by an earlier console process (whose versions
    # started from 0 as well), so a page it rendered is never taken for current.
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    _listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Each case's outcomes as the versions read from the topic showed them (oldest first);
    # compaction keeps only a case's latest version, so older ones may be missing.
    outcomes_seen: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    @property
    def stamp(self) -> str:
        """The list's version as a page carries it (`v` of its events URL): read before
        the page's snapshot, so a page never claims a change it does not show."""
        return f"{self.epoch}.{self.version}"

    def history(self, case_key: str) -> list[tuple[str, Any]]:
        with self.lock:
            return list(self.outcomes_seen.get(case_key, ()))

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.cases.values())

    def listen(self) -> asyncio.Event:
        """An event set (in the caller's loop) whenever the list changes."""
        changed = asyncio.Event()
        with self.lock:
            self._listeners.append((asyncio.get_running_loop(), changed))
        return changed

    def unlisten(self, changed: asyncio.Event) -> None:
        with self.lock:
            self._listeners = [(lp, ev) for lp, ev in self._listeners if ev is not changed]

    def _changed(self) -> None:
        self.version += 1
        for loop, changed in list(self._listeners):
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the page's loop is gone
                self.unlisten(changed)


class ShareLists:
    """The lists the console has opened, one reader thread each."""

    def __init__(
        self,
        settings: Settings,
        reader_settings: Callable[[Settings, str], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self._reader_settings = reader_settings or _as_recipient
        self._lists: dict[str, RecipientList] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._serde: AvroSerde | None = None

    def serde(self) -> AvroSerde:
        if self._serde is None:
            hub = self.settings.model_copy(update={"principal": CONSOLE})
            self._serde = AvroSerde(registry_client(hub, CONSOLE), self.settings.schemas_dir)
        return self._serde

    def get(self, org: str, wait_s: float = 10.0) -> RecipientList:
        """The recipient's list, opened (and read to its current end, up to `wait_s`) on
        first use."""
        with self._lock:
            found = self._lists.get(org)
            if found is None:
                found = RecipientList(org, Topics(self.settings).share(org))
                self._lists[org] = found
                threading.Thread(
                    target=self._follow, args=(found,), name=f"list-{org}", daemon=True
                ).start()
        found.ready.wait(wait_s)
        return found

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                org: {"ready": lst.ready.is_set(), "cases": len(lst.cases), "error": lst.error}
                for org, lst in self._lists.items()
            }

    def close(self) -> None:
        self._stop.set()

    # --- the reader thread ------------------------------------------------------------------

    def _follow(self, target: RecipientList) -> None:
        settings = self._reader_settings(self.settings, target.org)
        while not self._stop.is_set():
            try:
                self._read(settings, target)
            except Exception as exc:  # Kafka away, credentials refused: say so, retry
                message = f"{type(exc).__name__}: {exc}"[:300]
                if target.error != message:
                    log.warning("console_list_unavailable", org=target.org, error=message)
                with target.lock:
                    target.error = "the list cannot be read from Kafka just now"
                    target._changed()
                target.ready.set()  # pages show the error rather than wait
                self._stop.wait(RETRY_S)

    def _read(self, settings: Settings, target: RecipientList) -> None:
        consumer = kafka_consumer(
            settings,
            enable_auto_commit=False,
            isolation_level="read_committed",
            metadata_max_age_ms=int(RETRY_S * 1000),
        )
        try:
            partitions: set[int] = set()
            while not self._stop.is_set():
                partitions = consumer.partitions_for_topic(target.topic) or set()
                if partitions:
                    break
                with target.lock:
                    target.topic_exists, target.error = False, None
                target.ready.set()
                self._stop.wait(RETRY_S)
                consumer.topics()  # refreshes the metadata
            if self._stop.is_set():
                return
            tps = [TopicPartition(target.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            # Read afresh: the view is rebuilt from the topic, never patched across a gap.
            fresh: dict[str, dict[str, Any]] = {}
            seen: dict[str, list[tuple[str, Any]]] = {}
            gone: dict[str, str] = {}
            records = 0
            serde = self.serde()
            pending = {tp for tp in tps if end[tp] > 0}
            while pending and not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=POLL_MS, max_records=5000).values():
                    for message in batch:
                        records += 1
                        case = views.apply(fresh, message.key, message.value, serde)
                        if case is None:
                            gone[message.key.decode()] = views.removal_reason(message.headers)
                            seen.pop(message.key.decode(), None)
                        else:
                            gone.pop(message.key.decode(), None)
                            note_outcome(seen, case)
                for tp in list(pending):
                    if consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
            with target.lock:
                target.cases, target.records, target.outcomes_seen = fresh, records, seen
                target.removed_because = Counter(gone.values())
                target.topic_exists, target.error = True, None
                target._changed()
            target.ready.set()
            log.info("console_list_read", org=target.org, cases=len(fresh), records=records)
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=POLL_MS, max_records=1000)
                if not batches:
                    continue
                with target.lock:
                    for batch in batches.values():
                        for message in batch:
                            target.records += 1
                            update = views.update_of(
                                target.cases, message.key, message.value, message.headers, serde
                            )
                            if update is None:
                                continue
                            if update.kind == "removed":
                                target.removed_because[update.why or "no reason given"] += 1
                                target.outcomes_seen.pop(update.case_key, None)
                            elif update.case is not None:
                                note_outcome(target.outcomes_seen, update.case)
                    target._changed()
        finally:
            consumer.close()


def note_outcome(seen: dict[str, list[tuple[str, Any]]], case: dict[str, Any]) -> None:
    """Add the case's latest outcome to what has been seen of it, when it is new."""
    outcome = case.get("latest_outcome")
    if not outcome:
        return
    entry = (outcome, case.get("latest_outcome_at"))
    history = seen.setdefault(case["case_key"], [])
    if not history or history[-1] != entry:
        history.append(entry)


def _as_recipient(settings: Settings, org: str) -> Settings:
    """Settings that sign in as the recipient itself, with the credential the stack saved
    for it (never a credential the environment gave the console)."""
    return settings.model_copy(
        update={"principal": org, "secret": None, "secret_file": None, "credentials_file": None}
    )


async def list_changes(
    target: RecipientList, page_stamp: str | None, ping_s: float
) -> AsyncIterator[bool]:
    """What a listening page needs, as it happens: True when it should get the list again,
    False for a keep-alive after `ping_s` quiet seconds. True at once when the page was
    rendered at another version than the list's now (`page_stamp`, its `stamp` then;
    absent or unknown counts as another): a change made between the page's render and its
    event stream's start (a case closed seconds after its outcome was recorded) is sent
    rather than left on the page until the next one."""
    changed = target.listen()
    seen = page_stamp
    try:
        while True:
            if target.stamp == seen:
                try:
                    await asyncio.wait_for(changed.wait(), timeout=ping_s)
                except TimeoutError:
                    yield False
                    continue
                changed.clear()
                if target.stamp == seen:
                    continue
            seen = target.stamp
            yield True
    finally:
        target.unlisten(changed)


def wait_for_change(target: RecipientList, since: int, timeout_s: float) -> bool:
    """For tests and scripts: whether the list changed after version `since` in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target.version > since:
            return True
        time.sleep(0.05)
    return False
