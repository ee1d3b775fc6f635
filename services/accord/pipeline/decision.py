"""The policy gate: case views in, minimised shares, tombstones and audit records out.

Per batch the gate asks OPA once per (source organisation, dataset) for a decision per
case and recipient, audits every decision, and releases only what a decision allows, at
one boundary: `project_case`. When a case closes, the person opts out, or a decision
turns from allow to deny (an agreement suspended or expired), the recipients that hold
the case get a tombstone, so their compacted views drop the person.

Audit before release. A batch's audit records (one per case decided, naming every
recipient's outcome: `accord.core.auditrecords`) are written first, committed and
chained per audit partition (`accord.worker.auditlog`), and only then its shares,
tombstones and the record of who holds each case. If the audit cannot be written (the
topic missing, its ACL removed, the broker away) the batch fails before anything is
shared, and it is decided and written again: no share is ever delivered without its
audit record. Measured against queuing both at once and against one transaction for
shares and audit together, see docs/performance.md ("Audit before release").

Why duplicates after a crash stay harmless. The batch's input is acknowledged only after
all of it is written, so a worker killed between the audit's commit and the shares reads
the batch again and writes it again. Its decisions come out with the same decision ids
(derived from the case version, recipient, agreement and revision), which the audit
index stores once; the re-written audit records are new links of the chain, chained from
the head that was really committed, so the chain holds; the shares are keyed by person
into compacted lists, so a recipient's list holds the person once. An audit record whose
share had not left when the worker died records a decision the replay then carries out.
If the replay decides differently (the policy changed meanwhile), the audit holds both
decisions, each with its own revision, and the list holds the later one: the record errs
towards saying more was decided, never towards a release it does not show.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from accord.core import metrics
from accord.core.auditrecords import ALLOW, DENY, WITHDRAW, case_records
from accord.core.errors import AccordError
from accord.core.logging import get_logger
from accord.core.policy import PolicyClient
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import SUPPORT_REQUEST, Topics, is_org_id
from accord.pipeline.cases import DERIVED_ATTRIBUTES, SHIELDING_FIELD, WITHOUT_SHIELDING
from accord.pipeline.removal import HEADER as REMOVAL_HEADER
from accord.pipeline.removal import removal_code

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


def derived_basis(case: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any] | None:
    """The derived attributes (needs, priority, ...) as computed from what the decision
    covers, or None when the case has no such view (then nothing derived leaves).

    A requester's own data (no agreement) is derived from its own requests only; a
    recipient not released the shielding status gets them computed without it, so no
    welfare check owed for shielding and no priority reason that reads it.
    """
    restricted = case.get("restricted") or {}
    if not decision.get("agreement_id"):
        return restricted.get(f"own:{decision.get('recipient')}")
    if SHIELDING_FIELD in set(decision.get("fields_released") or ()):
        return {name: case.get(name) for name in (*DERIVED_ATTRIBUTES, "latest_outcome_at")}
    return restricted.get(WITHOUT_SHIELDING)


def visible_to_recipient(case: dict[str, Any], decision: dict[str, Any]) -> bool:
    """Whether the case is open as the recipient may see it: with a need derived from the
    data its decision covers. A case open only for a fact the recipient may not learn
    (a welfare check owed because the person shields) is not shared at all, since its
    mere presence on the list would tell the withheld fact."""
    basis = derived_basis(case, decision)
    return basis is not None and bool(basis.get("needs"))


def project_case(
    case: dict[str, Any],
    decision: dict[str, Any],
    *,
    decision_id: str,
    policy_revision: str,
    updated_at: datetime,
) -> dict[str, Any]:
    """The SupportCase a recipient gets: only the fields and derived attributes the
    decision released, derived ones computed from what the decision covers.

    This is the one minimisation boundary: every outbound case is built here, and no
    source field or derived attribute is copied unless the decision lists it.
    """
    fields = case["source"]["fields"]
    released = set(decision.get("fields_released") or ())
    projected: dict[str, Any] = {
        name: (fields.get(name) if name in released else None) for name in CASE_FIELDS
    }
    if isinstance(projected["date_of_birth"], str):
        projected["date_of_birth"] = date.fromisoformat(projected["date_of_birth"])
    status = fields.get(SHIELDING_FIELD)
    shielding_released = SHIELDING_FIELD in released and status
    derived = derived_basis(case, decision) or {}

    def given(name: str, default: Any) -> Any:
        value = derived.get(name) if name in released else None
        return default if value is None else value

    outcome_released = "latest_outcome" in released and derived.get("latest_outcome")
    projected.update(
        case_key=case["case_key"],
        recipient=decision["recipient"],
        is_shielding=(status == "SHIELDING") if shielding_released else None,
        needs=list(given("needs", [])),
        priority=given("priority", None),
        priority_reasons=list(given("priority_reasons", [])),
        latest_outcome=given("latest_outcome", None),
        latest_outcome_at=instant(derived.get("latest_outcome_at")) if outcome_released else None,
        opened_at=instant(given("opened_at", None)),
        open_requests=int(given("open_requests", 0)),
        match_method=given("match_method", None),
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
    allow = decision.get("allow") is True
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


def derive_decision_id(
    case: dict[str, Any],
    recipient: str,
    revision: str,
    agreement_id: str = "",
    *,
    withdrawal: bool = False,
) -> str:
    """The same case version decided for the same recipient under the same agreement and
    policy revision always gets the same id; two agreements naming one recipient never
    share an id, nor a withdrawal the deny that caused it (one would overwrite the other
    in the audit index, and who-received would lose the withdrawal)."""
    version = f"{case['source']['event_id']}|{case['as_of']}|{case['status']}"
    name = f"{case['case_key']}|{version}|{recipient}|{agreement_id or ''}|{revision}"
    if withdrawal:
        name += "|withdrawal"
    return str(uuid.uuid5(DECISION_NAMESPACE, name))


def policy_input_record(case: dict[str, Any]) -> dict[str, Any]:
    """What the policy decides on: the case's source fields and its derived attributes
    (those the case has), so that the decision releases derived attributes by name too."""
    fields = dict(case["source"]["fields"])
    for name in DERIVED_ATTRIBUTES:
        value = case.get(name)
        if value is not None and value != [] and value != 0:
            fields[name] = value
    return {
        "record_id": case["case_key"],
        "subject_key": case["case_key"],
        "fields": fields,
        "subject": case["subject"],
    }


# --- what the gate accepts from OPA -----------------------------------------------

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LIST_KEYS = ("fields_released", "reasons", "obligations", "clauses", "principles")


def _safe(value: Any) -> str:
    """A name from a policy result, fit for a log line: org ids and field names as they
    are, anything else (which could be record content) only by its type."""
    if isinstance(value, str) and (_FIELD_NAME.match(value) or is_org_id(value)):
        return value
    if isinstance(value, str) and re.match(r"^DSA-[0-9]{3,}$", value):
        return value
    return f"<{type(value).__name__}>"


def agreement_fields(agreement: dict[str, Any], dataset: str, recipient: str) -> set[str]:
    """Fields and derived attributes the agreement lets `recipient` have from `dataset`
    (the same reading as the policy's accord.agreements.fields and .derived)."""
    spec = (agreement.get("datasets") or {}).get(dataset)
    if not isinstance(spec, dict):
        return set()
    names: set[str] = set()
    for list_key, per_recipient in (
        ("fields", "recipient_fields"),
        ("derived", "recipient_derived"),
    ):
        own = (spec.get(per_recipient) or {}).get(recipient)
        chosen = own if isinstance(own, list) else spec.get(list_key) or []
        names.update(n for n in chosen if isinstance(n, str))
    return names


def agreement_recipients(agreement: dict[str, Any]) -> set[str]:
    return {
        r.get("org")
        for r in agreement.get("recipients") or ()
        if isinstance(r, dict) and isinstance(r.get("org"), str)
    }


def agreement_held_under(
    agreements: dict[str, Any], source_org: str, dataset: str, recipient: str
) -> dict[str, Any] | None:
    """The agreement a withdrawal from `recipient` retracts: one naming the case's provider,
    dataset and the recipient (an active one first, then by id), as {agreement_id,
    agreement_version}; None when none does (the requester's own data)."""
    named = [
        (agreement.get("status") != "active", str(agreement_id), agreement)
        for agreement_id, agreement in (agreements or {}).items()
        if isinstance(agreement, dict)
        and source_org in (agreement.get("providers") or ())
        and dataset in (agreement.get("datasets") or {})
        and recipient in agreement_recipients(agreement)
    ]
    if not named:
        return None
    _, agreement_id, agreement = min(named, key=lambda n: n[:2])
    return {"agreement_id": agreement_id, "agreement_version": agreement.get("version")}


def check_decisions(
    decisions: Any,
    records: dict[str, dict[str, Any]],
    agreements: dict[str, Any],
    *,
    source_org: str,
    dataset: str,
    own_data: bool,
) -> list[str]:
    """Problems with a policy result, empty when the gate may act on it.

    The gate trusts nothing it did not check: every decision must be an object with a
    boolean `allow`, about a record of the query, with lists where lists belong. An
    allow must name a recipient that an active agreement served to the worker names for
    this provider and dataset, and release only fields that agreement lists for it (a
    requester's own data: only the requester, only the fields its record has). The
    problems name keys, types, agreements and recipients, never a value from a record.
    """
    if not isinstance(decisions, list):
        return [f"result is a {type(decisions).__name__}, not a list of decisions"]
    problems = []
    for number, decision in enumerate(decisions):
        where = f"decision {number}"
        if not isinstance(decision, dict):
            problems.append(f"{where} is a {type(decision).__name__}, not an object")
            continue
        if not isinstance(decision.get("record_id"), str) or decision["record_id"] not in records:
            problems.append(f"{where} is about no record of the query")
            continue
        allow = decision.get("allow")
        if not isinstance(allow, bool):
            problems.append(f"{where}: allow is a {type(allow).__name__}, not a boolean")
            continue
        recipient = decision.get("recipient")
        agreement_id = decision.get("agreement_id")
        if not isinstance(recipient, str) or not isinstance(agreement_id, str):
            problems.append(f"{where}: recipient and agreement_id must be strings")
            continue
        bad_lists = [
            key
            for key in _LIST_KEYS
            if (key in decision or key in ("fields_released", "reasons"))
            and not (
                isinstance(decision.get(key), list)
                and all(isinstance(item, str) for item in decision[key])
            )
        ]
        if bad_lists:
            problems.append(f"{where}: {', '.join(bad_lists)} must be lists of strings")
            continue
        if not allow:
            continue
        released = set(decision["fields_released"])
        if own_data:
            present = {n for n, v in records[decision["record_id"]].items() if v is not None}
            if agreement_id or recipient != source_org:
                problems.append(
                    f"{where}: own data returned to {_safe(recipient)}, not to the requester"
                )
            elif not released <= present:
                extra = ", ".join(sorted(_safe(n) for n in released - present))
                problems.append(f"{where}: releases {extra}, which the record does not have")
            continue
        agreement = agreements.get(agreement_id)
        label = f"{where} (agreement {_safe(agreement_id)}, recipient {_safe(recipient)})"
        if not isinstance(agreement, dict):
            problems.append(f"{label}: allows under an agreement the worker is not served")
        elif agreement.get("status") != "active":
            problems.append(f"{label}: allows under an agreement that is not active")
        elif not recipient or recipient not in agreement_recipients(agreement):
            problems.append(f"{label}: allows a recipient the agreement does not name")
        elif source_org not in (agreement.get("providers") or ()):
            problems.append(f"{label}: the agreement does not name the provider")
        elif not released <= agreement_fields(agreement, dataset, recipient):
            extra = released - agreement_fields(agreement, dataset, recipient)
            problems.append(
                f"{label}: releases {', '.join(sorted(_safe(n) for n in extra))}, "
                "which the agreement does not list"
            )
    return problems


def withheld_from_view(decision: dict[str, Any]) -> dict[str, Any]:
    """The deny the gate records when the policy allows a case that, as the recipient may
    see it, has no open need (see visible_to_recipient)."""
    return {
        **decision,
        "allow": False,
        "fields_released": [],
        "obligations": [],
        "reasons": [
            "withheld: no open need derived from the data the agreement releases "
            "to this recipient: data minimisation"
        ],
        "principles": ["data minimisation"],
    }


# Writes a batch's audit records (key, DecisionRecord) durably, chained per partition;
# returns once the broker has committed every one of them (see accord.worker.auditlog).
AuditWrite = Callable[[list[tuple[bytes, dict[str, Any]]]], Awaitable[None]]


class Gate:
    """Decides a batch of cases, then writes in this order: every audit record of the
    batch, committed (`audit`); then the record of who holds each case, naming its new
    recipients (`set_released`); only then the shares and tombstones (`send`), and the
    holders again as they now are. A share is never sent before its audit record
    is durable; a failed audit write fails the batch before anything is shared, and the
    batch is decided and written again (see process_until_done)."""

    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        policy: PolicyClient,
        send: Send,
        released: Callable[[str], list[str]],
        set_released: Callable[[str, list[str]], Awaitable[Awaitable[Any]]],
        audit: AuditWrite,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.serde = serde
        self.policy = policy
        self.send = send
        self.released = released
        self.set_released = set_released
        self.audit = audit

    async def process(self, cases: list[dict[str, Any]]) -> dict[str, int]:
        """Decide and release a batch of case views; returns counts for the log."""
        latest: dict[str, dict[str, Any]] = {}
        for case in cases:  # only the newest version of each case in the batch matters
            latest[case["case_key"]] = case
        out = _Outputs()
        counts = {"cases": len(latest), "allowed": 0, "denied": 0, "withdrawn": 0}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for case in latest.values():
            if case["status"] != "CLOSED":
                groups[(case["source"]["org"], case["source"]["dataset"])].append(case)
        inputs = [
            {
                "source_org": org,
                "dataset": dataset,
                "purpose": self.settings.purpose,
                "records": [policy_input_record(case) for case in batch],
            }
            for (org, dataset), batch in groups.items()
        ]
        revision = None
        if inputs:
            answers, revision, decided_at = await self._decide(inputs)
            for batch, decisions in zip(groups.values(), answers, strict=True):
                self._release(batch, decisions, revision, decided_at, counts, out)
        closed = [case for case in latest.values() if case["status"] == "CLOSED"]
        if closed:
            revision = revision or await self._revision()
            for case in closed:
                self._withdraw_all(case, revision, counts, out)
        # Audit before release: the decisions are durable before any share leaves, one
        # record per case decided, naming every recipient's outcome.
        if out.audits:
            await self.audit(case_records(out.audits))
        # Who holds each case, before any share: the record names every new recipient
        # (and still the old ones), so that a share is never out without it. A crash
        # between a share and its record would otherwise leave a case no later closing
        # (a merge, an opt-out) could withdraw; naming a recipient that never got the
        # case only costs a tombstone for nothing.
        ahead = []
        for key, holders in out.holders:
            held = self.released(key)
            if not set(holders) <= set(held):
                ahead.append(await self.set_released(key, sorted({*held, *holders})))
        await asyncio.gather(*ahead)
        pending: list[Awaitable[Any]] = []
        for topic, key, value, headers in out.shares:
            pending.append(await self.send(topic, key, value, headers))
        for key, holders in out.holders:
            pending.append(await self.set_released(key, holders))
        await asyncio.gather(*pending)  # done only when the broker has everything
        count_written(out, self.topics.share(""))
        return counts

    async def _decide(
        self, inputs: list[dict[str, Any]]
    ) -> tuple[list[list[dict[str, Any]]], str, datetime]:
        """OPA's decisions for each group of cases (one source and dataset each, asked
        together), the revision that made them all (read around the queries:
        `PolicyClient.decide_all_with_revision`) and when OPA answered (each decision's
        `decided_at`: the checks and projection after it take time of their own).

        A result the gate cannot trust (see check_decisions) is treated as deny-and-hold:
        nothing of the batch is released, the queries are asked again, like OPA being
        down, and the problems are logged once per group, without record content.
        """
        queries = [
            (each, OWN_DATA_PACKAGE if each["dataset"] == SUPPORT_REQUEST else SHARING_PACKAGE)
            for each in inputs
        ]
        held: set[tuple[str, str]] = set()
        while True:
            answers, revision = await self.policy.decide_all_with_revision(
                queries, self.settings.opa_retry_s
            )
            answered_at = now_utc()
            rejected = False
            for (policy_input, package), decisions in zip(queries, answers, strict=True):
                org, dataset = policy_input["source_org"], policy_input["dataset"]
                records = {r["record_id"]: r["fields"] for r in policy_input["records"]}
                problems = check_decisions(
                    decisions,
                    records,
                    self.policy.agreements,
                    source_org=org,
                    dataset=dataset,
                    own_data=package == OWN_DATA_PACKAGE,
                )
                if problems:
                    rejected = True
                    if (org, dataset) not in held:
                        held.add((org, dataset))
                        log.warning(
                            "policy_result_rejected",
                            source_org=org,
                            dataset=dataset,
                            held=len(records),
                            problems=len(problems),
                            first=problems[:3],
                        )
                elif (org, dataset) in held:
                    held.discard((org, dataset))
                    log.info("policy_result_accepted", source_org=org, dataset=dataset)
            if not rejected:
                return answers, revision, answered_at
            self.policy.forget_revision()  # ask for the agreements again, too
            await asyncio.sleep(self.settings.opa_retry_s)

    async def _revision(self) -> str:
        """The revision OPA serves now, read fresh: what a withdrawal of a closed case
        (which asks no policy) records."""
        logged = False
        while True:
            try:
                return await self.policy.fresh_revision()
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

    def _audit(
        self,
        case: dict[str, Any],
        decision: dict[str, Any],
        decision_id: str,
        revision: str,
        decided_at: datetime,
        out: _Outputs,
        outcome: str | None = None,
    ) -> None:
        audit = decision_record(
            case,
            decision,
            decision_id=decision_id,
            purpose=self.settings.purpose,
            policy_revision=revision,
            decided_at=decided_at,
        )
        audit["outcome"] = outcome or (ALLOW if audit["allow"] else DENY)
        out.audits.append((case["case_key"].encode(), audit))

    def _tombstone(
        self,
        case: dict[str, Any],
        recipient: str,
        reason: str,
        revision: str,
        decided_at: datetime,
        out: _Outputs,
        cause: dict[str, Any] | None = None,
    ) -> None:
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
        decision_id = derive_decision_id(
            case, recipient, revision, withdrawal["agreement_id"], withdrawal=True
        )
        share_topic = self.topics.share(recipient)
        headers = self._headers(decision_id, revision, withdrawal["agreement_id"])
        why = removal_code(reason, cause, getattr(self.policy, "agreements", {}))
        headers.append((REMOVAL_HEADER, why.encode()))  # what `accord cases --follow` says
        out.shares.append((share_topic, case["case_key"].encode(), None, headers))
        self._audit(case, withdrawal, decision_id, revision, decided_at, out, WITHDRAW)

    def _withdraw_all(
        self, case: dict[str, Any], revision: str, counts: dict[str, int], out: _Outputs
    ) -> None:
        decided_at = now_utc()
        holders = self.released(case["case_key"])
        source = case["source"]
        for recipient in holders:
            # Audited under the agreement the recipient held the case by (an opt-out
            # retracts every agreement's shares), not under none.
            held_under = agreement_held_under(
                getattr(self.policy, "agreements", {}), source["org"], source["dataset"], recipient
            )
            self._tombstone(
                case, recipient, case["closed_reason"], revision, decided_at, out, held_under
            )
            counts["withdrawn"] += 1
        if holders:
            out.holders.append((case["case_key"], []))

    def _release(
        self,
        batch: list[dict[str, Any]],
        decisions: list[dict[str, Any]],
        revision: str,
        decided_at: datetime,
        counts: dict[str, int],
        out: _Outputs,
    ) -> None:
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for decision in decisions:
            by_case[decision.get("record_id", "")].append(decision)
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
                decision_id = derive_decision_id(
                    case, recipient, revision, decision.get("agreement_id") or ""
                )
                allowed = decision.get("allow") is True and bool(recipient)
                if allowed and not visible_to_recipient(case, decision):
                    decision = withheld_from_view(decision)
                    allowed = False
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
                    out.shares.append((share_topic, key.encode(), value, headers))
                    now_holding.add(recipient)
                    counts["allowed"] += 1
                elif recipient in holders:
                    reason = (decision.get("reasons") or ["no longer allowed"])[0]
                    self._tombstone(
                        case, recipient, reason, revision, decided_at, out, cause=decision
                    )
                    counts["withdrawn"] += 1
                else:
                    counts["denied"] += 1
                self._audit(case, decision, decision_id, revision, decided_at, out)
            # Holders the policy no longer names at all lose the case too.
            for recipient in holders - now_holding - {d.get("recipient") for d in case_decisions}:
                self._tombstone(case, recipient, "no longer covered", revision, decided_at, out)
                counts["withdrawn"] += 1
            if now_holding != holders:
                out.holders.append((key, sorted(now_holding)))


def count_written(out: _Outputs, share_stem: str) -> None:
    """Count what a batch wrote, once the broker has it: decisions by outcome and
    agreement, share-topic records by recipient (ids only: no person key in a label)."""
    for _, audit in out.audits:
        metrics.DECISIONS.labels(audit["outcome"], audit.get("agreement_id") or "none").inc()
    for topic, _, value, _ in out.shares:
        kind = "tombstone" if value is None else "share"
        metrics.SHARE_RECORDS.labels(recipient_of(topic, share_stem), kind).inc()


def recipient_of(topic: str, share_stem: str) -> str:
    """The recipient a share topic (`<prefix>share.<recipient>.<dataset>`) is for, given
    the topic name of the empty recipient (`<prefix>share..<dataset>`)."""
    start = share_stem.index("..") + 1
    return topic[start:].split(".", 1)[0]


class _Outputs:
    """What a batch's decisions produced, written by Gate.process in audit-first order."""

    def __init__(self) -> None:
        # Per-recipient records in the order decided; folded into one per case on writing.
        self.audits: list[tuple[bytes, dict[str, Any]]] = []
        self.shares: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.holders: list[tuple[str, list[str]]] = []
