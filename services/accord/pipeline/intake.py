"""Intake: partner messages in, checked events out, failures to quarantine.

Every partner message is decoded from the wire format, checked against its topic's owner
(a partner publishes only under its own name) and validated; what fails is quarantined
with its coordinates and original bytes. Whether the publisher may assert what a record
says at all (a board's list, a council's request, an outcome of a request it owns or was
referred) is asked of OPA once per batch afterwards (`accord.pipeline.authority`). What
passes becomes an event envelope (a plain JSON-able dict) that the matching and case
stages understand.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from accord.core.errors import (
    AccordError,
    ForeignSchemaError,
    InfrastructureError,
    SchemaError,
    WireFormatError,
)
from accord.core.logging import get_logger
from accord.core.pseudonym import person_key
from accord.core.serde import AvroSerde
from accord.core.topics import (
    CONSENT_CHANGE,
    DATASET_RECORDS,
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
    Topics,
)
from accord.ingest.pipeline import problems_of, validate_event
from accord.ingest.validation import RowInvalid, validate_chi

log = get_logger("accord.worker")

KIND_OF_DATASET = {
    SHIELDING_LIST: "entry",
    SUPPORT_REQUEST: "request",
    SUPPORT_OUTCOME: "outcome",
    CONSENT_CHANGE: "consent",
}
IDENTITY_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "address_line1")
# A person (case) key: hex HMAC-SHA256 (`core.pseudonym`).
PERSON_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def location(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class Rejected(AccordError):
    """Why intake refused a record: the first problem's code and field, every problem's
    plain words in `reason`, and each problem as {field, rule, message} (the rejects topic's
    `problems`; empty for a refusal that is one problem of the whole record)."""

    def __init__(
        self,
        code: str,
        reason: str,
        field: str | None = None,
        problems: tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(reason)
        self.code, self.reason, self.field = code, reason, field
        self.problems = problems


def iso(value: datetime) -> str:
    """One text form for instants, so they also sort as text."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Avro-decoded values as JSON values: dates and instants as ISO text, uuids as text."""
    safe = {}
    for name, value in record.items():
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        safe[name] = value
    return safe


def request_key(secret: str, org: str, request_id: str) -> str:
    """Pseudonymous key of a support request (the council's id could identify a case)."""
    return person_key(secret, f"{org}|{request_id}", scheme="request")


def block_key(secret: str, date_of_birth: str) -> str:
    """Matching block: people are compared with others born on the same day."""
    return person_key(secret, date_of_birth, scheme="dob")


def quarantine_record(
    message: Incoming,
    topics: Topics,
    code: str,
    reason: str,
    field: str | None,
    problems: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    record = {
        "quarantine_id": str(uuid.uuid4()),
        "quarantined_at": datetime.now(UTC),
        "source_org": None,
        "dataset": None,
        "origin": "KAFKA",
        "location": message.location,
        "line_number": None,
        "original": message.value or b"",
        "reason_code": code,
        "reason": reason,
        "field": field,
        "problems": list(problems),
    }
    try:
        record["source_org"], record["dataset"] = topics.parse_partner(message.topic)
    except ValueError:
        pass
    return record


class Intake:
    def __init__(self, serde: AvroSerde, topics: Topics, secret: str) -> None:
        self.serde = serde
        self.topics = topics
        self.secret = secret

    def check(self, message: Incoming) -> dict[str, Any]:
        """The event envelope of a partner message, or Rejected with a reason."""
        try:
            org, dataset = self.topics.parse_partner(message.topic)
        except ValueError as exc:
            raise Rejected("unknown_topic", str(exc)) from exc
        if dataset not in DATASET_RECORDS:
            raise Rejected("unknown_dataset", f"dataset {dataset} is not one the hub knows")
        try:
            _, record = self.serde.decode_as(
                message.value, Topics.subject(message.topic), DATASET_RECORDS[dataset]
            )
        except InfrastructureError:
            raise  # the registry is away: hold the batch, reject nothing
        except ForeignSchemaError as exc:
            raise Rejected("foreign_schema", str(exc)) from exc
        except WireFormatError as exc:
            raise Rejected(
                "undecodable", f"not a valid Avro message in the wire format: {exc}"
            ) from exc
        except SchemaError as exc:
            # Unknown to the registry, or not a record schema.
            raise Rejected("unknown_schema", f"schema not usable for {dataset}: {exc}") from exc
        if record.get("source_org") != org:
            raise Rejected(
                "wrong_publisher",
                f"record says it is from {record.get('source_org')!r} but was published to "
                f"{org}'s topic; a partner may only publish under its own name",
                "source_org",
            )
        # Native producers skip the gateway and the CLI; the same rules apply to them here.
        try:
            record = validate_event(dataset, record, org=org)
        except RowInvalid as exc:
            first = exc.errors[0]
            raise Rejected(
                first.rule, str(exc), first.field, tuple(problems_of(exc.errors))
            ) from exc
        data = json_safe(record)
        envelope: dict[str, Any] = {
            "kind": KIND_OF_DATASET[dataset],
            "dataset": dataset,
            "event_id": data["event_id"],
            "occurred_at": data["occurred_at"],
            "source_org": org,
            "person_key": None,
            "block_key": None,
            "request_key": None,
            "match_method": None,
            "data": data,
        }
        chi = data.get("chi_number")
        if chi:
            try:
                envelope["person_key"] = person_key(self.secret, validate_chi(chi))
            except RowInvalid as exc:
                raise Rejected(exc.errors[0].rule, str(exc), "chi_number") from exc
            envelope["match_method"] = "chi"
        elif data.get("nhs_number"):
            nhs = "".join(str(data["nhs_number"]).split())
            envelope["person_key"] = person_key(self.secret, nhs, scheme="nhs")
            envelope["match_method"] = "nhs_number"
        elif dataset == SHIELDING_LIST:
            raise Rejected("required", "chi_number is required on the shielding list", "chi_number")
        if data.get("date_of_birth"):
            envelope["block_key"] = block_key(self.secret, data["date_of_birth"])
        if dataset == SUPPORT_REQUEST:
            envelope["request_key"] = request_key(self.secret, org, data["request_id"])
        elif dataset == SUPPORT_OUTCOME:
            # Where it came from, so a later stage can send it back to its publisher's
            # rejects (no case or request to apply it to).
            envelope["origin"] = message.location
            if data.get("case_key") is not None:
                # Recorded against a case, by the reference on the recipient's list: the
                # case key is the person key (pseudonymous; the join stage checks that
                # the publisher holds the case).
                if not PERSON_KEY.match(str(data["case_key"])):
                    raise Rejected(
                        "case_key", "case_key is not a case key from a support list", "case_key"
                    )
                envelope["person_key"] = data["case_key"]
                envelope["case_addressed"] = True
            else:
                owner = data.get("request_org") or org
                envelope["request_key"] = request_key(self.secret, owner, data["request_id"])
        return envelope
