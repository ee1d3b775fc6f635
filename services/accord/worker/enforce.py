"""The policy gate: case views in, minimised shares, tombstones and audit records out.

Per batch the gate asks OPA once per (source organisation, dataset) for a decision per
case and recipient, audits every decision, and releases only what a decision allows, at
one boundary: `project_case`. When a case closes, the person opts out, or a decision
turns from allow to deny (an agreement suspended or expired), the recipients that hold
the case get a tombstone, so their compacted views drop the person.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from accord.core.errors import AccordError
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import SUPPORT_REQUEST, Topics

log = get_logger("accord.worker")

# Decision ids are derived, not random, so re-deciding the same case version under the
# same policy revision after a crash yields the same id: duplicates are recognisable.
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
OWN_DATA_PACKAGE = "accord.own_data"
SHARING_PACKAGE = "accord.sharing"

# Sends (topic, key, value or None for a tombstone, headers); resolves on broker ack.
Send = Callable[[str, bytes, bytes | None, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]


def now_utc() -> datetime:
    return datetime.now(UTC)


def instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def project_case(
    case: dict[str, Any],
    decision: dict[str, Any],
    *,
    decision_id: str,
    policy_revision: str,
    updated_at: datetime,
) -> dict[str, Any]:
    """The SupportCase a recipient gets: only the source fields the decision released.

    This is the one minimisation boundary: every outbound case is built here, and no
    source field is copied unless the decision lists it.
    """
    fields = case["source"]["fields"]
    released = set(decision.get("fields_released") or ())
    projected: dict[str, Any] = {
        name: (fields.get(name) if name in released else None) for name in CASE_FIELDS
    }
    if isinstance(projected["date_of_birth"], str):
        projected["date_of_birth"] = date.fromisoformat(projected["date_of_birth"])
    status = fields.get("shielding_status")
    shielding_released = "shielding_status" in released and status
    projected.update(
        case_key=case["case_key"],
        recipient=decision["recipient"],
        is_shielding=(status == "SHIELDING") if shielding_released else None,
        needs=list(case["needs"]),
        priority=case["priority"],
        priority_reasons=list(case["priority_reasons"]),
        latest_outcome=case["latest_outcome"],
        latest_outcome_at=instant(case["latest_outcome_at"]),
        opened_at=instant(case["opened_at"]),
        open_requests=case["open_requests"],
        match_method=case["match_method"],
        fields_released=sorted(released),
        agreement_id=decision.get("agreement_id") or "own-data",
        policy_revision=policy_revision,
        decision_id=decision_id,
        source_event_id=case["source"]["event_id"],
        updated_at=updated_at,
    )
    return projected


def decision_record(
    case: dict[str, Any],
    decision: dict[str, Any],
    *,
    decision_id: str,
    purpose: str,
    policy_revision: str,
    decided_at: datetime,
) -> dict[str, Any]:
    """The audit record of one decision; holds the pseudonymous key, never identifiers."""
    allow = bool(decision.get("allow"))
    return {
        "decision_id": decision_id,
        "decided_at": decided_at,
        "source_org": case["source"]["org"],
        "dataset": case["source"]["dataset"],
        "source_event_id": case["source"]["event_id"],
        "recipient": decision.get("recipient") or None,
        "purpose": purpose,
        "agreement_id": decision.get("agreement_id") or None,
        "agreement_version": decision.get("agreement_version"),
        "allow": allow,
        "fields_released": sorted(decision.get("fields_released") or ()) if allow else [],
        "obligations": list(decision.get("obligations") or ()),
        "reasons": list(decision.get("reasons") or ()),
        "clauses": list(decision.get("clauses") or ()),
        "principles": list(decision.get("principles") or ()),
        "policy_revision": policy_revision,
        "subject_key": case["case_key"],
    }


def derive_decision_id(case: dict[str, Any], recipient: str, revision: str) -> str:
    version = f"{case['source']['event_id']}|{case['as_of']}|{case['status']}"
    return str(
        uuid.uuid5(DECISION_NAMESPACE, f"{case['case_key']}|{version}|{recipient}|{revision}")
    )


def policy_input_record(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_id": case["case_key"],
        "subject_key": case["case_key"],
        "fields": case["source"]["fields"],
        "subject": case["subject"],
    }


class Gate:
    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        policy: PolicyClient,
        send: Send,
        released: Callable[[str], list[str]],
        set_released: Callable[[str, list[str]], Awaitable[Awaitable[Any]]],
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.serde = serde
        self.policy = policy
        self.send = send
        self.released = released
        self.set_released = set_released

    async def process(self, cases: list[dict[str, Any]]) -> dict[str, int]:
        """Decide and release a batch of case views; returns counts for the log."""
        latest: dict[str, dict[str, Any]] = {}
        for case in cases:  # only the newest version of each case in the batch matters
            latest[case["case_key"]] = case
        pending: list[Awaitable[Any]] = []
        counts = {"cases": len(latest), "allowed": 0, "denied": 0, "withdrawn": 0}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        revision = await self._revision()
        for case in latest.values():
            if case["status"] == "CLOSED":
                pending.extend(await self._withdraw_all(case, revision, counts))
            else:
                groups[(case["source"]["org"], case["source"]["dataset"])].append(case)
        for (org, dataset), batch in groups.items():
            policy_input = {
                "source_org": org,
                "dataset": dataset,
                "purpose": self.settings.purpose,
                "records": [policy_input_record(case) for case in batch],
            }
            package = OWN_DATA_PACKAGE if dataset == SUPPORT_REQUEST else SHARING_PACKAGE
            decisions = await self.policy.decide_when_available(
                policy_input, self.settings.opa_retry_s, package=package
            )
            revision = await self._revision()
            pending.extend(await self._release(batch, decisions, revision, counts))
        await asyncio.gather(*pending)  # done only when the broker has everything
        return counts

    async def _revision(self) -> str:
        logged = False
        while True:
            try:
                return await self.policy.revision()
            except AccordError as exc:
                if not logged:
                    log.warning("opa_unavailable", error=str(exc))
                    logged = True
                await asyncio.sleep(self.settings.opa_retry_s)

    def _headers(self, decision_id: str, revision: str, agreement: str) -> list[tuple[str, bytes]]:
        return [
            ("accord-decision-id", decision_id.encode()),
            ("accord-policy-revision", revision.encode()),
            ("accord-agreement", agreement.encode()),
        ]

    async def _audit(
        self,
        case: dict[str, Any],
        decision: dict[str, Any],
        decision_id: str,
        revision: str,
        decided_at: datetime,
    ) -> Awaitable[Any]:
        audit = decision_record(
            case,
            decision,
            decision_id=decision_id,
            purpose=self.settings.purpose,
            policy_revision=revision,
            decided_at=decided_at,
        )
        value = self.serde.encode(Topics.subject(self.topics.audit), "DecisionRecord", audit)
        return await self.send(self.topics.audit, case["case_key"].encode(), value, [])

    async def _tombstone(
        self,
        case: dict[str, Any],
        recipient: str,
        reason: str,
        revision: str,
        decided_at: datetime,
        cause: dict[str, Any] | None = None,
    ) -> list[Awaitable[Any]]:
        """Withdraw the case from the recipient; `cause` is the deny that made it necessary,
        whose clauses and principles the audit record cites."""
        withdrawal = {
            "recipient": recipient,
            "agreement_id": (cause or {}).get("agreement_id") or "",
            "agreement_version": (cause or {}).get("agreement_version"),
            "allow": False,
            "fields_released": [],
            "reasons": [f"withdrawn: {reason}"],
            "clauses": list((cause or {}).get("clauses") or ()),
            "principles": list((cause or {}).get("principles") or ()),
        }
        decision_id = derive_decision_id(case, recipient, revision)
        share_topic = self.topics.share(recipient)
        headers = self._headers(decision_id, revision, "")
        return [
            await self.send(share_topic, case["case_key"].encode(), None, headers),
            await self._audit(case, withdrawal, decision_id, revision, decided_at),
        ]

    async def _withdraw_all(
        self, case: dict[str, Any], revision: str, counts: dict[str, int]
    ) -> list[Awaitable[Any]]:
        pending: list[Awaitable[Any]] = []
        decided_at = now_utc()
        holders = self.released(case["case_key"])
        for recipient in holders:
            pending.extend(
                await self._tombstone(case, recipient, case["closed_reason"], revision, decided_at)
            )
            counts["withdrawn"] += 1
        if holders:
            pending.append(await self.set_released(case["case_key"], []))
        return pending

    async def _release(
        self,
        batch: list[dict[str, Any]],
        decisions: list[dict[str, Any]],
        revision: str,
        counts: dict[str, int],
    ) -> list[Awaitable[Any]]:
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for decision in decisions:
            by_case[decision.get("record_id", "")].append(decision)
        pending: list[Awaitable[Any]] = []
        decided_at = now_utc()
        for case in batch:
            key = case["case_key"]
            case_decisions = by_case.get(key) or [
                {
                    "recipient": "",
                    "agreement_id": "",
                    "allow": False,
                    "fields_released": [],
                    "reasons": [
                        "denied: the policy returned no decision for this case (fail closed)"
                    ],
                }
            ]
            holders = set(self.released(key))
            now_holding = set()
            for decision in case_decisions:
                recipient = decision.get("recipient") or ""
                decision_id = derive_decision_id(case, recipient, revision)
                allowed = bool(decision.get("allow")) and bool(recipient)
                if allowed:
                    projected = project_case(
                        case,
                        decision,
                        decision_id=decision_id,
                        policy_revision=revision,
                        updated_at=decided_at,
                    )
                    share_topic = self.topics.share(recipient)
                    value = self.serde.encode(Topics.subject(share_topic), "SupportCase", projected)
                    headers = self._headers(
                        decision_id, revision, decision.get("agreement_id") or ""
                    )
                    pending.append(await self.send(share_topic, key.encode(), value, headers))
                    now_holding.add(recipient)
                    counts["allowed"] += 1
                elif recipient in holders:
                    reason = (decision.get("reasons") or ["no longer allowed"])[0]
                    pending.extend(
                        await self._tombstone(
                            case, recipient, reason, revision, decided_at, cause=decision
                        )
                    )
                    counts["withdrawn"] += 1
                else:
                    counts["denied"] += 1
                pending.append(await self._audit(case, decision, decision_id, revision, decided_at))
            # Holders the policy no longer names at all lose the case too.
            for recipient in holders - now_holding - {d.get("recipient") for d in case_decisions}:
                pending.extend(
                    await self._tombstone(
                        case, recipient, "no longer covered", revision, decided_at
                    )
                )
                counts["withdrawn"] += 1
            if now_holding != holders:
                pending.append(await self.set_released(key, sorted(now_holding)))
        return pending
