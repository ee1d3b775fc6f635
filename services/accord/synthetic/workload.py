"""The benchmark's events: a realistic mix, validated and encoded once, in chunks, cached.

The mix is the demo's: NHS boards' shielding-list entries, councils' support requests
(40% without a CHI number, with nicknames and typos, some about people not on the list)
and outcomes from councils and a third-sector network. Rows go through the same
validation as `accord publish`, then into the Confluent wire format, so every mode of
the benchmark reads exactly what partners would publish.

Generation streams: the list is drawn row by row (`iter_shielding_list`), requests are
made as their person goes past (`RequestMaker`), rows are validated and encoded a chunk
at a time (in worker processes when there are enough of them), and the requests and
outcomes, which are published after the lists, wait in spill files rather than in
memory. What stays in memory grows only by the CHI numbers given out and a short tuple
per request. The cache is a file of length-prefixed records in chunks with a JSON
trailer; `Workload` streams it back and knows its size and topics without reading it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, BinaryIO, Final

from accord.core import scotland
from accord.core.credentials import private_dir
from accord.core.scotland import org_id
from accord.core.serde import AvroSerde, encode_body, frame, load_schema_text, parse_schema_text
from accord.core.settings import Settings
from accord.core.topics import (
    DATASET_RECORDS,
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
    Topics,
)
from accord.ingest import datasets, pipeline, validation
from accord.ingest.pipeline import Accepted, Location, Pipeline
from accord.synthetic import people as people_module
from accord.synthetic import requests as requests_module
from accord.synthetic.people import iter_shielding_list
from accord.synthetic.requests import AUTHORITY_RULES, RequestMaker

# Requests and outcomes the demo's generator adds per listed person (836 + 423 per 5,000).
EVENTS_PER_PERSON = 1.25
CACHE_VERSION = 3  # 3: chunked records with a trailer, keyed by the generator's sources
CHUNK = 5_000  # rows validated and encoded per task, events per cached chunk
PARALLEL_FROM = 100_000  # events from which validation and encoding use worker processes

_MAGIC: Final = b"ACCWKLD3"
_TRAILER: Final = struct.Struct(">Q8s")  # trailer offset, magic
_CHUNK_HEAD: Final = struct.Struct(">II")  # records, bytes
_RECORD_HEAD: Final = struct.Struct(">HHI")  # pair index, key length, value length
_EVENT_ID_BYTES: Final = 36  # a UUID's text
_LOCATION: Final = Location("BENCH", "generated", "row")
# Where the rows wait until they are published: the lists at once, then the requests per
# council, then the outcomes per publisher, each in the order they were made.
_LISTS, _REQUESTS, _OUTCOMES = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Event:
    """One partner message: who publishes it, which dataset, its id, key and wire bytes."""

    org: str
    dataset: str
    event_id: str
    key: bytes
    value: bytes


def people_for(events: int) -> int:
    return max(1, round(events / EVENTS_PER_PERSON))


def mix(events: int, seed: int) -> Iterator[tuple[int, str, str, dict[str, str]]]:
    """(section, org, dataset, row) as the rows are made: a list row, now and then a
    request about that person, then the strangers' requests, then every outcome."""
    maker = RequestMaker(people_for(events), seed=seed)
    for row, _ in iter_shielding_list(people_for(events), seed=seed, bad_rows=0):
        yield _LISTS, org_id(row["health_board"]), SHIELDING_LIST, row
        if (made := maker.listed(row)) is not None:
            yield _REQUESTS, made[0], SUPPORT_REQUEST, made[1]
    for org, row in maker.strangers():
        yield _REQUESTS, org, SUPPORT_REQUEST, row
    for org, row in maker.outcomes():
        yield _OUTCOMES, org, SUPPORT_OUTCOME, row


# --- validating and encoding a chunk (in this process or a worker) ------------------

_pipelines: dict[tuple[str, str], Pipeline] = {}
_parsed: dict[tuple[Path, str], Any] = {}


def _encode_chunk(
    schemas_dir: Path,
    schema_ids: Mapping[tuple[str, str], int],
    rows: list[tuple[str, str, dict[str, str]]],
) -> list[Event | None]:
    """Each row as `accord publish` judges it, encoded as `AvroSerde.encode` would under
    the given schema ids; None for a row the pipeline rejects."""
    out: list[Event | None] = []
    for org, dataset, row in rows:
        judge = _pipelines.get((org, dataset))
        if judge is None:
            judge = _pipelines[(org, dataset)] = Pipeline(org, dataset)
        outcome = judge.process(row, _LOCATION, b"")
        if not isinstance(outcome, Accepted):
            out.append(None)
            continue
        record = DATASET_RECORDS[dataset]
        parsed = _parsed.get((schemas_dir, record))
        if parsed is None:
            text = load_schema_text(schemas_dir, record)
            parsed = _parsed[(schemas_dir, record)] = parse_schema_text(text)
        value = frame(schema_ids[(org, dataset)], encode_body(parsed, outcome.event, record))
        out.append(Event(org, dataset, outcome.event_id, outcome.key, value))
    return out


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


def build(
    settings: Settings,
    serde: AvroSerde,
    events: int,
    seed: int,
    *,
    chunk: int = CHUNK,
    processes: int | None = None,
    spill_dir: Path | None = None,
) -> Iterator[Event]:
    """At most `events` valid, encoded events (the generator's mix, trimmed to size), in
    publishing order: the lists first, then the requests and outcomes, as in real life.

    Validated and encoded `chunk` rows at a time, by `processes` worker processes (by
    default two from PARALLEL_FROM events on, when the machine has two cores; 0 for
    this process alone). The same events come out whatever the chunk size or the number
    of processes. Requests and outcomes wait in 0600 spill files under `spill_dir`
    (default: the state directory's bench folder), removed when the iterator ends.
    """
    if processes is None:
        processes = min(2, os.cpu_count() or 1) if events >= PARALLEL_FROM else 0
        processes = processes if processes > 1 else 0
    topics = Topics(settings)
    schema_ids: dict[tuple[str, str], int] = {}
    folder = private_dir(spill_dir or settings.state_dir / "bench", tighten=True)
    spill = _Spill(Path(tempfile.mkdtemp(prefix=".spill-", dir=folder)))
    pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn")) if processes else None
    try:
        emitted = 0

        def encoded() -> Iterator[tuple[list[tuple[int, str]], list[Event | None]]]:
            window: deque[tuple[list[tuple[int, str]], Future[list[Event | None]]]] = deque()
            for rows in _chunks(mix(events, seed), chunk):
                for section, org, dataset, _row in rows:
                    if (org, dataset) not in schema_ids:
                        subject = Topics.subject(topics.partner(org, dataset))
                        record = DATASET_RECORDS[dataset]
                        schema_ids[(org, dataset)] = serde.writer(subject, record)[0]
                    if section != _LISTS:
                        spill.order(section, org)
                where = [(section, org) for section, org, _, _ in rows]
                work = [(org, dataset, row) for _, org, dataset, row in rows]
                if pool is None:
                    yield where, _encode_chunk(settings.schemas_dir, schema_ids, work)
                    continue
                ids = dict(schema_ids)
                window.append((where, pool.submit(_encode_chunk, settings.schemas_dir, ids, work)))
                if len(window) > 2 * processes:
                    done_where, future = window.popleft()
                    yield done_where, future.result()
            while window:
                done_where, future = window.popleft()
                yield done_where, future.result()

        for where, results in encoded():
            for (section, org), event in zip(where, results, strict=True):
                if event is None:
                    continue
                if section == _LISTS:
                    if emitted >= events:
                        return
                    emitted += 1
                    yield event
                else:
                    spill.add(section, org, event)
        for event in spill.replay():
            if emitted >= events:
                return
            emitted += 1
            yield event
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        spill.close()


class _Spill:
    """Encoded events waiting their turn, one 0600 file per (section, org)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._order: dict[tuple[int, str], int] = {}
        self._files: dict[tuple[int, str], BinaryIO] = {}
        self._pairs = _Pairs()

    def order(self, section: int, org: str) -> None:
        """Note that (section, org) has rows, in the order their first row was made."""
        self._order.setdefault((section, org), len(self._order))

    def add(self, section: int, org: str, event: Event) -> None:
        handle = self._files.get((section, org))
        if handle is None:
            path = self.folder / self._name((section, org))
            handle = self._files[(section, org)] = _private_file(path)
        handle.write(_record(self._pairs.index(event.org, event.dataset), event))

    def _name(self, where: tuple[int, str]) -> str:
        return f"{where[0]}-{self._order[where]}"

    def replay(self) -> Iterator[Event]:
        for where in sorted(self._order, key=lambda w: (w[0], self._order[w])):
            handle = self._files.get(where)
            if handle is None:
                continue
            handle.flush()
            with (self.folder / self._name(where)).open("rb") as reader:
                data = reader.read()
            yield from _records(memoryview(data), self._pairs.pairs)

    def close(self) -> None:
        try:
            for handle in self._files.values():
                handle.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- the cache ----------------------------------------------------------------------


@dataclass
class _Pairs:
    """(org, dataset) <-> a small index, with the first event of each and its schema id."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    first: list[int] = field(default_factory=list)
    schema_ids: list[int] = field(default_factory=list)
    _index: dict[tuple[str, str], int] = field(default_factory=dict)

    def index(self, org: str, dataset: str, at: int = 0, schema_id: int = 0) -> int:
        found = self._index.get((org, dataset))
        if found is None:
            found = self._index[(org, dataset)] = len(self.pairs)
            self.pairs.append((org, dataset))
            self.first.append(at)
            self.schema_ids.append(schema_id)
        return found


def _record(pair: int, event: Event) -> bytes:
    event_id = event.event_id.encode("ascii")
    if len(event_id) != _EVENT_ID_BYTES:
        raise ValueError("a bench event id is a UUID")
    return b"".join(
        (
            _RECORD_HEAD.pack(pair, len(event.key), len(event.value)),
            event_id,
            event.key,
            event.value,
        )
    )


def _records(data: memoryview, pairs: list[tuple[str, str]]) -> Iterator[Event]:
    offset, head = 0, _RECORD_HEAD.size
    while offset < len(data):
        pair, key_length, value_length = _RECORD_HEAD.unpack_from(data, offset)
        offset += head
        event_id = bytes(data[offset : offset + _EVENT_ID_BYTES]).decode("ascii")
        offset += _EVENT_ID_BYTES
        key = bytes(data[offset : offset + key_length])
        offset += key_length
        value = bytes(data[offset : offset + value_length])
        offset += value_length
        org, dataset = pairs[pair]
        yield Event(org, dataset, event_id, key, value)


def _private_file(path: Path) -> BinaryIO:
    """A new file, 0600 from the moment it exists (it holds synthetic personal data)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def fingerprint(settings: Settings) -> str:
    """What the cached events depend on besides their size and seed: the cache version,
    the Avro schemas, the generator's and the validation's sources and the authority
    rules (who refers food requests), so a change to any of them is never served stale."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for record in sorted(set(DATASET_RECORDS.values())):
        digest.update(load_schema_text(settings.schemas_dir, record).encode())
    modules = (
        people_module,
        requests_module,
        validation,
        datasets,
        pipeline,
        scotland,
    )
    for module in modules:
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(AUTHORITY_RULES.read_bytes())
    return digest.hexdigest()[:16]


def cache_path(settings: Settings, events: int, seed: int) -> Path:
    folder = settings.state_dir / "bench"
    return folder / f"workload-v{CACHE_VERSION}-{events}-{seed}-{fingerprint(settings)}.events"


def write(
    path: Path,
    events: Iterable[Event],
    key: Mapping[str, Any],
    *,
    chunk: int = CHUNK,
) -> Workload:
    """Write `events` to `path` (0600, its folder 0700), atomically: chunks of records,
    then a JSON trailer with `key`, the count and the (org, dataset) pairs."""
    private_dir(path.parent, tighten=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    pairs = _Pairs()
    count = 0
    try:
        with _private_file(temporary) as handle:
            for block in _chunks(iter(events), chunk):
                records = []
                for event in block:
                    index = pairs.index(
                        event.org,
                        event.dataset,
                        count,
                        struct.unpack_from(">I", event.value, 1)[0],
                    )
                    records.append(_record(index, event))
                    count += 1
                body = b"".join(records)
                handle.write(_CHUNK_HEAD.pack(len(records), len(body)))
                handle.write(body)
            offset = handle.tell()
            trailer = {
                **key,
                "count": count,
                "pairs": [
                    [org, dataset, first, schema_id]
                    for (org, dataset), first, schema_id in zip(
                        pairs.pairs, pairs.first, pairs.schema_ids, strict=True
                    )
                ],
            }
            handle.write(json.dumps(trailer).encode())
            handle.write(_TRAILER.pack(offset, _MAGIC))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return Workload.open(path)


@dataclass(frozen=True)
class Workload:
    """A cached workload: its size and topics known from its trailer, its events streamed
    a chunk at a time. `workload[:n]` is its first n events, as a Workload."""

    path: Path
    count: int
    key: Mapping[str, Any]
    pairs: tuple[tuple[str, str], ...]
    first: tuple[int, ...]
    schema_ids: tuple[int, ...]
    body_end: int
    limit: int | None = None

    @classmethod
    def open(cls, path: Path) -> Workload:
        """The workload in `path`; ValueError if it is not a complete workload file."""
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < _TRAILER.size:
                raise ValueError(f"{path.name} is too short to be a workload")
            handle.seek(size - _TRAILER.size)
            offset, magic = _TRAILER.unpack(handle.read(_TRAILER.size))
            if magic != _MAGIC or offset > size - _TRAILER.size:
                raise ValueError(f"{path.name} is not a complete workload")
            handle.seek(offset)
            trailer = json.loads(handle.read(size - _TRAILER.size - offset))
        pairs = trailer.pop("pairs")
        count = trailer.pop("count")
        return cls(
            path=path,
            count=count,
            key=trailer,
            pairs=tuple((org, dataset) for org, dataset, _, _ in pairs),
            first=tuple(first for _, _, first, _ in pairs),
            schema_ids=tuple(schema_id for *_, schema_id in pairs),
            body_end=offset,
        )

    def __len__(self) -> int:
        return self.count if self.limit is None else min(self.count, self.limit)

    def __getitem__(self, part: slice) -> Workload:
        if not isinstance(part, slice) or part.start or part.step not in (None, 1):
            raise TypeError("a workload is cut only from its start: workload[:n]")
        stop = len(self) if part.stop is None else min(len(self), max(0, part.stop))
        return Workload(
            self.path,
            self.count,
            self.key,
            self.pairs,
            self.first,
            self.schema_ids,
            self.body_end,
            stop,
        )

    def partners(self) -> list[tuple[str, str]]:
        """The (org, dataset) pairs of the events in this workload (or this cut of it)."""
        size = len(self)
        return [pair for pair, first in zip(self.pairs, self.first, strict=True) if first < size]

    def __iter__(self) -> Iterator[Event]:
        remaining = len(self)
        pairs = list(self.pairs)
        with self.path.open("rb") as handle:
            while remaining > 0 and handle.tell() < self.body_end:
                records, length = _CHUNK_HEAD.unpack(handle.read(_CHUNK_HEAD.size))
                data = memoryview(handle.read(length))
                yield from islice(_records(data, pairs), min(records, remaining))
                remaining -= records


def load(
    settings: Settings,
    events: int,
    seed: int,
    progress: Callable[[str], None],
    *,
    serde: AvroSerde | None = None,
    processes: int | None = None,
) -> Workload:
    """The workload, from the cache when this size, seed and generator built it before.

    A cache file that is incomplete, or whose trailer names another size, seed or
    generator, is built again; older files for the same size and seed are removed.
    """
    path = cache_path(settings, events, seed)
    key = {
        "version": CACHE_VERSION,
        "events": events,
        "seed": seed,
        "fingerprint": fingerprint(settings),
    }
    if path.is_file():
        try:
            cached = Workload.open(path)
        except (ValueError, OSError):
            cached = None
        if cached is not None and dict(cached.key) == key:
            return cached
    for stale in path.parent.glob(f"workload-v*-{events}-{seed}[-.]*"):
        stale.unlink(missing_ok=True)
    progress(f"generating {events:,} events (cached for later runs)")
    if serde is None:
        from accord.core.credentials import ADMIN
        from accord.core.serde import registry_client

        serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    started = time.monotonic()
    built = write(path, build(settings, serde, events, seed, processes=processes), key)
    progress(f"generated {len(built):,} events in {time.monotonic() - started:.0f} s")
    return built
