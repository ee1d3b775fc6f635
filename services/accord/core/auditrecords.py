"""One audit record per case decision, and the per-recipient decisions in it.

The gate writes one DecisionRecord per case it decides in a batch: the case's version
(source, dataset, event, subject key, purpose, policy revision, time) once, and in
`recipients` every recipient's outcome (ALLOW, DENY, WITHDRAW) with its own decision id,
agreement, fields released, reasons, clauses and principles. That record alone answers
who received what about the person, under which agreement and why.

Records written before carry one recipient each in their own fields and an empty
`recipients`. Every reader goes through `recipient_decisions`, which gives the
per-recipient decisions of a record of either shape, in the old flat shape plus an
`outcome`, so the audit index, the campaigns and the demo read both.

No share offset is recorded: the audit record is committed before its shares are sent
(audit before release), so their offsets do not exist yet. A share names its decision
in the header `accord-decision-id` and in SupportCase.decision_id, which is the item's
`decision_id` here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

ALLOW, DENY, WITHDRAW, UNKNOWN = "ALLOW", "DENY", "WITHDRAW", "UNKNOWN"

# A case record's own id is derived from the decision ids it holds: the same decisions
# (a batch decided again after a crash) give the same id.
CASE_DECISION_NAMESPACE = uuid.UUID("0b6a8f53-7d2e-4f0a-b1c4-5e9d3a7c2f10")

# What a case record holds once, for all its recipients.
CASE_FIELDS = (
    "decided_at",
    "source_org",
    "dataset",
    "source_event_id",
    "purpose",
    "policy_revision",
    "subject_key",
)
# What each recipient's item holds (besides its outcome).
ITEM_FIELDS = (
    "decision_id",
    "recipient",
    "agreement_id",
    "agreement_version",
    "fields_released",
    "obligations",
    "reasons",
    "clauses",
    "principles",
)
_LISTS = ("fields_released", "obligations", "reasons", "clauses", "principles")


def outcome_of(decision: dict[str, Any]) -> str:
    """ALLOW, DENY or WITHDRAW for a per-recipient record (as written before case records:
    a withdrawal is a deny whose first reason says `withdrawn:`)."""
    if decision.get("allow"):
        return ALLOW
    reasons = decision.get("reasons") or ()
    return WITHDRAW if reasons and str(reasons[0]).startswith("withdrawn:") else DENY


def case_record(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """The one DecisionRecord of a case decision: `decisions` are that case's
    per-recipient records of one batch (`decision_record`'s, in the order decided, each
    with an `outcome`), which share the case's version, revision and time."""
    if not decisions:
        raise ValueError("a case record needs at least one decision")
    first = decisions[0]
    for decision in decisions[1:]:
        for name in CASE_FIELDS:
            if decision.get(name) != first.get(name):
                raise ValueError(f"decisions of one case record differ in {name}")
    items = []
    released: set[str] = set()
    for decision in decisions:
        outcome = decision.get("outcome") or outcome_of(decision)
        item = {name: decision.get(name) for name in ITEM_FIELDS}
        for name in _LISTS:
            item[name] = list(item[name] or ())
        item["recipient"] = item["recipient"] or None
        item["agreement_id"] = item["agreement_id"] or None
        item["decision_id"] = str(item["decision_id"])
        item["outcome"] = outcome
        if outcome == ALLOW:
            released.update(item["fields_released"])
        else:
            item["fields_released"] = []
        items.append(item)
    ids = "|".join(item["decision_id"] for item in items)
    return {
        **{name: first[name] for name in CASE_FIELDS},
        "decision_id": str(uuid.uuid5(CASE_DECISION_NAMESPACE, ids)),
        "recipient": None,
        "agreement_id": None,
        "agreement_version": None,
        "allow": any(item["outcome"] == ALLOW for item in items),
        "fields_released": sorted(released),
        "obligations": [],
        "reasons": [],
        "clauses": [],
        "principles": [],
        "recipients": items,
    }


def case_records(
    audits: Iterable[tuple[bytes, dict[str, Any]]],
) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, per-recipient record) pairs in the order decided, folded into one
    (key, case record) per key, in the order each key first appears."""
    grouped: dict[bytes, list[dict[str, Any]]] = {}
    for key, record in audits:
        grouped.setdefault(key, []).append(record)
    return [(key, case_record(records)) for key, records in grouped.items()]


def recipient_decisions(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-recipient decisions of a DecisionRecord of either shape, each in the flat
    shape of the records written before case records (decision_id, recipient, allow,
    agreement, fields, reasons ... and the case's fields), plus `outcome` and
    `case_decision_id` (the record's own id; the same as decision_id for an older record)."""
    items = record.get("recipients") or ()
    if not items:
        return [
            {**record, "outcome": outcome_of(record), "case_decision_id": record["decision_id"]}
        ]
    case = {name: record.get(name) for name in CASE_FIELDS}
    case["chain_previous"] = record.get("chain_previous")
    out = []
    for item in items:
        outcome = item.get("outcome") or UNKNOWN
        decision = {**case, **{name: item.get(name) for name in ITEM_FIELDS}}
        for name in _LISTS:
            decision[name] = list(decision[name] or ())
        decision.update(
            allow=outcome == ALLOW,
            outcome=outcome,
            case_decision_id=record["decision_id"],
        )
        out.append(decision)
    return out
