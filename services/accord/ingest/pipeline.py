"""One pipeline for every way of publishing: validate, normalise, identify, key, or quarantine.

`accord publish` (files), `accord gateway` (HTTP) and the worker (native Kafka producers,
through `validate_event`) all pass records through here, so a record is judged by the
same rules whichever way it arrived.

For each raw record (text from a file, or JSON values) the pipeline returns either

* `Accepted`: the complete Avro record (envelope + normalised payload), its stable
  event id and its Kafka key (the event id: partners need none of the hub's secrets); or
* `Rejected`: every problem found, and the `QuarantinedRecord` that keeps the original
  bytes, where they came from (file and line, or HTTP batch index), and every problem
  (field, rule, plain-words message; the first one also in `reason_code` and `field`).

Provenance: the source organisation is the publisher's (the CLI's `--as`, the gateway's
token), never a field of the payload. A record naming another organisation in
`source_org` is rejected (`source_org_mismatch`).

Event ids: a partner may give its own (a UUID in `event_id`); otherwise the id is derived
from the partner, the dataset and the normalised content (`event_id_for`), so the same
row published twice has the same id and the same key, and compacted views hold it once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from accord.ingest.datasets import DATASETS, OCCURRED_AT, Dataset
from accord.ingest.habits import Habits, Tidied
from accord.ingest.validation import (
    Clock,
    FieldError,
    RowInvalid,
    check_fields,
    check_moment,
)

__all__ = [
    "Accepted",
    "Location",
    "MAX_ORIGINAL_BYTES",
    "Pipeline",
    "Rejected",
    "SCHEMA_VERSION",
    "problems_of",
    "event_id_for",
    "validate_event",
]

EVENT_NAMESPACE: Final = uuid.UUID("0b5f3c8e-7d1a-4f26-b1e4-5a9c2d7e6f10")
QUARANTINE_NAMESPACE: Final = uuid.UUID("6a0d3f51-2c8e-4b7a-9e15-3d4c5b6a7f80")
SCHEMA_VERSION: Final = 1
# Quarantine keeps the input as received, up to this size: enough to fix any real row,
# and small enough that a 50 MB line cannot exceed the broker's message size.
MAX_ORIGINAL_BYTES: Final = 256 * 1024


def event_id_for(org: str, dataset: str, record: Mapping[str, Any]) -> str:
    """A stable event id from the source record: the same row always gets the same id."""
    content = json.dumps(record, sort_keys=True, default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{org}|{dataset}|{digest}"))


@dataclass(frozen=True)
class Location:
    """Where a record came from: origin (FILE, HTTP, KAFKA), coordinates and a short label."""

    origin: str
    where: str  # "list.csv line 12", "HTTP batch record 3"
    label: str  # "row 12", "record 3": how reports name the record
    line_number: int | None = None


@dataclass(frozen=True)
class Accepted:
    event_id: str
    key: bytes
    event: dict[str, Any]
    location: Location
    tidied: tuple[Tidied, ...] = ()


@dataclass(frozen=True)
class Rejected:
    errors: list[FieldError]
    location: Location
    quarantine: dict[str, Any]
    event_id: str | None = None
    tidied: tuple[Tidied, ...] = ()

    @property
    def code(self) -> str:
        return self.errors[0].rule

    @property
    def field(self) -> str | None:
        return self.errors[0].field or None

    @property
    def reason(self) -> str:
        return "; ".join(error.message for error in self.errors)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _event_id_errors(value: Any) -> tuple[str | None, list[FieldError]]:
    try:
        return str(uuid.UUID(str(value).strip())), []
    except ValueError:
        return None, [
            FieldError(
                "event_id",
                "event_id_format",
                "Event id must be a UUID such as 0b5f3c8e-7d1a-4f26-b1e4-5a9c2d7e6f10, "
                "or be left out so the hub derives one.",
            )
        ]


def _source_org_errors(org: str, value: Any) -> list[FieldError]:
    if _blank(value) or str(value).strip() == org:
        return []
    return [
        FieldError(
            "source_org",
            "source_org_mismatch",
            "The record names another organisation as its source; a partner publishes "
            "only under its own name, which the hub takes from who is publishing.",
        )
    ]


class Pipeline:
    """Judges one partner's records of one dataset; holds no connection to anything."""

    def __init__(
        self,
        org: str,
        dataset: str,
        clock: Clock | None = None,
        habits: Habits | None = None,
    ) -> None:
        """`habits`: the placeholders and synonyms to read values through
        (`accord.ingest.habits`); by default the built-in placeholders and no synonyms."""
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}")
        self.org = org
        self.dataset: Dataset = DATASETS[dataset]
        self._clock = clock
        self.habits = habits if habits is not None else Habits()

    @property
    def clock(self) -> Clock:
        return self._clock if self._clock is not None else Clock()

    def process(
        self, raw: Mapping[str, Any], location: Location, original: bytes
    ) -> Accepted | Rejected:
        """Validate and normalise one raw record into an event, or reject it with reasons.

        Spreadsheet habits (placeholders, synonyms, lost leading zeros) are read as what
        they mean first; `tidied` on the outcome says which fields were."""
        clock = self.clock
        raw, changes = self.habits.tidy(self.dataset.rules, raw)
        tidied = tuple(changes)
        errors: list[FieldError] = []
        given_id: str | None = None
        if not _blank(raw.get("event_id")):
            given_id, problems = _event_id_errors(raw["event_id"])
            errors.extend(problems)
        errors.extend(_source_org_errors(self.org, raw.get("source_org")))

        explicit_time: datetime | None = None
        if self.dataset.derive_occurred_at is not None and not _blank(raw.get("occurred_at")):
            values, problems = check_fields((OCCURRED_AT,), raw, clock)
            explicit_time = values["occurred_at"]
            errors.extend(problems)

        payload: dict[str, Any] = {}
        try:
            payload = self.dataset.validate(raw, clock)
        except RowInvalid as exc:
            errors.extend(exc.errors)
        if errors:
            rejected = self.reject(location, original, errors, given_id)
            return Rejected(rejected.errors, location, rejected.quarantine, given_id, tidied)

        hashed = dict(payload)
        if explicit_time is not None:
            hashed["occurred_at"] = explicit_time
        event_id = given_id or event_id_for(self.org, self.dataset.name, hashed)
        if explicit_time is not None:
            occurred_at = explicit_time
        elif self.dataset.derive_occurred_at is not None:
            occurred_at = self.dataset.derive_occurred_at(payload, clock)
        else:
            occurred_at = payload.pop("occurred_at")
        event = {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "source_org": self.org,
            "schema_version": SCHEMA_VERSION,
            **payload,
        }
        # Keyed by what the partner can compute itself: the event id. People are keyed
        # by their pseudonym only inside the hub, which alone holds the secret.
        return Accepted(event_id, event_id.encode(), event, location, tidied)

    def reject(
        self,
        location: Location,
        original: bytes,
        errors: list[FieldError],
        event_id: str | None = None,
    ) -> Rejected:
        """Build the quarantine entry for a record that failed (or could not even be read)."""
        reason = "; ".join(error.message for error in errors)
        kept = original
        if len(original) > MAX_ORIGINAL_BYTES:
            kept = original[:MAX_ORIGINAL_BYTES]
            reason += f" (the input was {len(original)} bytes; the first {len(kept)} are kept)"
        digest = hashlib.sha256(original).hexdigest()
        quarantine_id = uuid.uuid5(
            QUARANTINE_NAMESPACE,
            f"{self.org}|{self.dataset.name}|{location.origin}|{location.where}|{digest}",
        )
        record = {
            "quarantine_id": str(quarantine_id),
            "quarantined_at": datetime.now(UTC),
            "source_org": self.org,
            "dataset": self.dataset.name,
            "origin": location.origin,
            "location": location.where + (f" event {event_id}" if event_id else ""),
            "line_number": location.line_number,
            "original": kept,
            "reason_code": errors[0].rule,
            "reason": reason,
            "field": errors[0].field or None,
            "problems": problems_of(errors),
        }
        return Rejected(list(errors), location, record, event_id)


def problems_of(errors: list[FieldError]) -> list[dict[str, Any]]:
    """Every problem as the rejects topic, the gateway and the rejects file carry it."""
    return [
        {"field": error.field or None, "rule": error.rule, "message": error.message}
        for error in errors
    ]


def _raw_from_typed(value: Any) -> Any:
    """An Avro-decoded value in the form the row rules read (text, list or scalar)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def validate_event(
    dataset: str,
    record: Mapping[str, Any],
    *,
    org: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate an already-typed Avro record (as decoded from Kafka) with the file rules.

    Returns the record normalised (postcodes, names, phones, enums; fields this version
    does not know are kept as they are), or raises RowInvalid with every problem. With
    `org` (the owner of the topic the record came from), a `source_org` naming anyone
    else is a `source_org_mismatch`. Raises ValueError for an unknown dataset.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}")
    spec = DATASETS[dataset]
    clock = Clock(now=now) if now is not None else Clock()
    errors: list[FieldError] = []

    event_id, problems = _event_id_errors(record.get("event_id"))
    errors.extend(problems)
    source_org = record.get("source_org")
    if _blank(source_org):
        errors.append(
            FieldError("source_org", "required", "Source organisation is required but was empty.")
        )
    elif org is not None:
        errors.extend(_source_org_errors(org, source_org))
    occurred_at = record.get("occurred_at")
    if isinstance(occurred_at, datetime):
        occurred_at, problems = check_moment("occurred_at", "Occurred at", occurred_at, clock)
        errors.extend(problems)
    else:
        errors.append(
            FieldError(
                "occurred_at", "required", "Occurred at is required: a time, as Avro decodes it."
            )
        )

    raw = {name: _raw_from_typed(record.get(name)) for name in spec.fields}
    if spec.derive_occurred_at is None:
        raw["occurred_at"] = _raw_from_typed(occurred_at) if occurred_at else None
    payload: dict[str, Any] = {}
    try:
        payload = spec.validate(raw, clock)
    except RowInvalid as exc:
        errors.extend(error for error in exc.errors if error.field != "occurred_at")
    if errors:
        raise RowInvalid(errors)
    payload.pop("occurred_at", None)
    result = dict(record)
    result.update(payload, event_id=event_id, occurred_at=occurred_at)
    return result
