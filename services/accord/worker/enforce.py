"""Enforcing agreements on a batch of partner records.

The faust agent hands each batch here. Per batch: decode and check every message
(failures go to quarantine with their coordinates), ask OPA once per (source, dataset)
for a decision per record and recipient, audit every decision, and release only the
fields a decision allows, at one boundary: `project_case`. The batch is done only when
the broker has acknowledged every output; until then its input stays unacknowledged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from accord.core.errors import AccordError
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient
from accord.core.pseudonym import person_key
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics
from accord.ingest.validation import RowInvalid, validate_chi

log = get_logger("accord.worker")

# Decision ids are derived, not random, so re-deciding the same record under the same
# policy revision after a crash yields the same id: duplicates are recognisable.
DECISION_NAMESPACE = uuid.UUID("6f1d2a4e-3b7c-4c1e-9a52-0d6c1f3e8b71")

# Source fields a SupportCase can carry; anything else is never copied out.
CASE_FIELDS = (
    "council_area",
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "contact_phone",
)

# Sends one (topic, key, value) and resolves when the broker has acknowledged it.
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


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


@dataclass
class Checked:
    message: Incoming
    source_org: str
    dataset: str
    subject_key: str
    record: dict[str, Any]


class Rejected(AccordError):
    def __init__(self, code: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.field = code, reason, field


def now_utc() -> datetime:
    return datetime.now(UTC)


def policy_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record as policy input: JSON-safe values, dates as ISO strings."""
    fields = {}
    for name, value in record.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        fields[name] = value
    return fields


def project_case(
    record: dict[str, Any],
    decision: dict[str, Any],
    *,
    subject_key: str,
    decision_id: str,
    policy_revision: str,
    updated_at: datetime,
) -> dict[str, Any]:
    """The SupportCase a recipient gets: only the fields the decision released.

    This is the one minimisation boundary: every outbound case is built here, from the
    decision's `fields_released`, and nothing else is copied.
    """
    released = set(decision.get("fields_released") or ())
    case: dict[str, Any] = {
        name: (record.get(name) if name in released else None) for name in CASE_FIELDS
    }
    status = record.get("shielding_status")
    case["is_shielding"] = (
        (status == "SHIELDING") if "shielding_status" in released and status else None
    )
    case.update(
        case_key=subject_key,
        recipient=decision["recipient"],
        needs=[],
        priority=None,
        latest_outcome=None,
        fields_released=sorted(released),
        agreement_id=decision["agreement_id"],
        policy_revision=policy_revision,
        decision_id=decision_id,
        source_event_id=str(record["event_id"]),
        updated_at=updated_at,
    )
    return case


def decision_record(
    checked: Checked,
    decision: dict[str, Any],
    *,
    decision_id: str,
    purpose: str,
    policy_revision: str,
    decided_at: datetime,
) -> dict[str, Any]:
    """The audit record of one decision; holds the pseudonymous key, never identifiers."""
    return {
        "decision_id": decision_id,
        "decided_at": decided_at,
        "source_org": checked.source_org,
        "dataset": checked.dataset,
        "source_event_id": str(checked.record["event_id"]),
        "recipient": decision.get("recipient") or None,
        "purpose": purpose,
        "agreement_id": decision.get("agreement_id") or None,
        "agreement_version": decision.get("agreement_version"),
        "allow": bool(decision.get("allow")),
        "fields_released": sorted(decision.get("fields_released") or ())
        if decision.get("allow")
        else [],
        "obligations": list(decision.get("obligations") or ()),
        "reasons": list(decision.get("reasons") or ()),
        "policy_revision": policy_revision,
        "subject_key": checked.subject_key,
    }


def derive_decision_id(event_id: str, recipient: str, revision: str) -> str:
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{event_id}|{recipient}|{revision}"))


class Enforcer:
    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        policy: PolicyClient,
        send: Send,
        ensure_topic: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.serde = serde
        self.policy = policy
        self.send = send
        self.ensure_topic = ensure_topic
        self.secret = settings.pseudonym_key.get_secret_value()

    # --- checking -------------------------------------------------------------------------

    def check(self, message: Incoming) -> Checked:
        try:
            org, dataset = self.topics.parse_partner(message.topic)
        except ValueError as exc:
            raise Rejected("unknown_topic", str(exc)) from exc
        if dataset not in DATASET_RECORDS:
            raise Rejected("unknown_dataset", f"dataset {dataset} is not one the hub knows")
        try:
            _, record = self.serde.decode(message.value)
        except AccordError as exc:
            raise Rejected(
                "undecodable", f"not a valid Avro message in the wire format: {exc}"
            ) from exc
        if record.get("source_org") != org:
            raise Rejected(
                "wrong_publisher",
                f"record says it is from {record.get('source_org')!r} but was published to "
                f"{org}'s topic; a partner may only publish under its own name",
                "source_org",
            )
        try:
            chi = validate_chi(str(record.get("chi_number") or ""))
        except RowInvalid as exc:
            raise Rejected(exc.errors[0].rule, str(exc), "chi_number") from exc
        return Checked(message, org, dataset, person_key(self.secret, chi), record)

    async def quarantine(
        self, message: Incoming, code: str, reason: str, field: str | None
    ) -> Awaitable[Any]:
        record = {
            "quarantine_id": str(uuid.uuid4()),
            "quarantined_at": now_utc(),
            "source_org": None,
            "dataset": None,
            "origin": "KAFKA",
            "location": message.location,
            "line_number": None,
            "original": message.value or b"",
            "reason_code": code,
            "reason": reason,
            "field": field,
        }
        try:
            record["source_org"], record["dataset"] = self.topics.parse_partner(message.topic)
        except ValueError:
            pass
        log.warning("record_quarantined", location=message.location, reason_code=code)
        topic = self.topics.quarantine
        value = self.serde.encode(Topics.subject(topic), "QuarantinedRecord", record)
        return await self.send(topic, message.location.encode(), value)

    # --- deciding -------------------------------------------------------------------------

    async def process(self, messages: list[Incoming]) -> dict[str, int]:
        pending: list[Awaitable[Any]] = []
        groups: dict[tuple[str, str], list[Checked]] = defaultdict(list)
        for message in messages:
            try:
                checked = self.check(message)
            except Rejected as exc:
                pending.append(await self.quarantine(message, exc.code, exc.reason, exc.field))
                continue
            groups[(checked.source_org, checked.dataset)].append(checked)

        counts = {"records": len(messages), "quarantined": len(pending), "allowed": 0, "denied": 0}
        for (org, dataset), batch in groups.items():
            policy_input = {
                "source_org": org,
                "dataset": dataset,
                "purpose": self.settings.purpose,
                "records": [
                    {
                        "record_id": str(c.record["event_id"]),
                        "subject_key": c.subject_key,
                        "fields": policy_fields(c.record),
                    }
                    for c in batch
                ],
            }
            decisions = await self.policy.decide_when_available(
                policy_input, self.settings.opa_retry_s
            )
            revision = await self._revision()
            pending.extend(await self._release(batch, decisions, revision, counts))
        # The batch counts as done only when every output is acknowledged by the broker.
        await asyncio.gather(*pending)
        return counts

    async def _revision(self) -> str:
        while True:
            try:
                return await self.policy.revision()
            except AccordError as exc:
                log.warning("opa_unavailable", error=str(exc))
                await asyncio.sleep(self.settings.opa_retry_s)

    async def _release(
        self,
        batch: list[Checked],
        decisions: list[dict[str, Any]],
        revision: str,
        counts: dict[str, int],
    ) -> list[Awaitable[Any]]:
        by_record: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for decision in decisions:
            by_record[decision.get("record_id", "")].append(decision)
        pending = []
        decided_at = now_utc()
        for checked in batch:
            event_id = str(checked.record["event_id"])
            record_decisions = by_record.get(event_id) or [
                {
                    "recipient": "",
                    "agreement_id": "",
                    "allow": False,
                    "fields_released": [],
                    "reasons": [
                        "denied: the policy returned no decision for this record (fail closed)"
                    ],
                }
            ]
            for decision in record_decisions:
                recipient = decision.get("recipient") or ""
                decision_id = derive_decision_id(event_id, recipient, revision)
                audit = decision_record(
                    checked,
                    decision,
                    decision_id=decision_id,
                    purpose=self.settings.purpose,
                    policy_revision=revision,
                    decided_at=decided_at,
                )
                allowed = audit["allow"] and bool(recipient)
                if allowed:
                    case = project_case(
                        checked.record,
                        decision,
                        subject_key=checked.subject_key,
                        decision_id=decision_id,
                        policy_revision=revision,
                        updated_at=decided_at,
                    )
                    share_topic = self.topics.share(recipient)
                    await self.ensure_topic(share_topic)
                    value = self.serde.encode(Topics.subject(share_topic), "SupportCase", case)
                    pending.append(
                        await self.send(share_topic, checked.subject_key.encode(), value)
                    )
                counts["allowed" if allowed else "denied"] += 1
                value = self.serde.encode(
                    Topics.subject(self.topics.audit), "DecisionRecord", audit
                )
                pending.append(
                    await self.send(self.topics.audit, checked.subject_key.encode(), value)
                )
        return pending
