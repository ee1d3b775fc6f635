"""Authority: who may assert what, checked at intake before a record can touch a case.

A partner writes only to its own topics, and intake already refuses a record that names
another publisher. That does not stop a partner asserting things about people it has no
say over: a charity's opt-in after a board's opt-out, another organisation's DECLINED
outcome naming a council's request, a charity's shielding-list row. The rules for who
may publish which dataset are data (`policies/authority/authority.yaml`, beside the
agreements) decided by the Rego package `accord.authority`; this module asks it about a
whole batch in one query and reads its answer.

OPA not answering, or answering in a shape this module does not expect, is an
infrastructure failure (`AuthorityUnavailable`): the batch is held and retried, never
passed and never rejected. A refused record goes to its publisher's rejects with the
rule's reason code and reason, which name organisations and datasets, never the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from accord.core.errors import PolicyUnavailableError
from accord.core.topics import SUPPORT_OUTCOME

AUTHORITY_PACKAGE = "accord.authority"


class AuthorityUnavailable(PolicyUnavailableError):
    """OPA gave no usable authority answer: hold the batch."""


class Decider(Protocol):
    async def decide(self, policy_input: dict[str, Any], package: str = ...) -> list[Any]: ...


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str
    field: str


def authority_record(record_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """What accord.authority decides on: the publisher, the dataset and, for an outcome,
    the request's owner. Nothing about the person."""
    request_org = None
    if envelope["dataset"] == SUPPORT_OUTCOME:
        request_org = envelope["data"].get("request_org") or None
    return {
        "record_id": record_id,
        "source_org": envelope["source_org"],
        "dataset": envelope["dataset"],
        "request_org": request_org,
    }


def authority_input(checked: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one query for a batch: (record id, envelope) -> input.records."""
    return {"records": [authority_record(record_id, envelope) for record_id, envelope in checked]}


def refusals(record_ids: list[str], answer: Any) -> dict[str, Refusal]:
    """Record id -> Refusal for every refused record; the others are allowed.

    Trusts nothing it did not check: one decision per record, in order, with the record's
    id, `allow` a boolean, and a refusal's code and reason non-empty text. Anything else
    raises AuthorityUnavailable (the batch is held)."""
    if not isinstance(answer, list) or len(answer) != len(record_ids):
        size = len(answer) if isinstance(answer, list) else type(answer).__name__
        raise AuthorityUnavailable(
            f"{AUTHORITY_PACKAGE}.decisions answered {size} for {len(record_ids)} records"
        )
    refused = {}
    for record_id, decision in zip(record_ids, answer, strict=True):
        if not isinstance(decision, dict) or decision.get("record_id") != record_id:
            raise AuthorityUnavailable(
                f"{AUTHORITY_PACKAGE}.decisions answered out of order or without record ids"
            )
        allow = decision.get("allow")
        if allow is True:
            continue
        code, reason = decision.get("reason_code"), decision.get("reason")
        if allow is not False or not (isinstance(code, str) and code):
            raise AuthorityUnavailable(
                f"{AUTHORITY_PACKAGE}.decisions answered a decision without a boolean "
                "allow and a reason code"
            )
        if not (isinstance(reason, str) and reason):
            raise AuthorityUnavailable(f"{AUTHORITY_PACKAGE}.decisions refused without a reason")
        field = "request_org" if code == "not_request_owner" else "source_org"
        refused[record_id] = Refusal(code, reason, field)
    return refused


async def check_authority(
    policy: Decider, checked: list[tuple[str, dict[str, Any]]]
) -> dict[str, Refusal]:
    """Ask accord.authority about a batch once; record id -> Refusal for the refused.

    Raises AuthorityUnavailable (an InfrastructureError) when OPA cannot answer or
    answers badly: the caller holds the batch."""
    # An outcome recorded against a case names no request: who may record it is decided
    # where the case is held (only an organisation whose list holds it: cases.join).
    checked = [(record_id, e) for record_id, e in checked if not e.get("case_addressed")]
    if not checked:
        return {}
    try:
        answer = await policy.decide(authority_input(checked), AUTHORITY_PACKAGE)
    except AuthorityUnavailable:
        raise
    except PolicyUnavailableError as exc:
        raise AuthorityUnavailable(str(exc)) from exc
    except Exception as exc:
        # The query holds no record, so whatever fails here is OPA's side (an unreadable
        # body, a client error): hold the batch, never set its records aside.
        raise AuthorityUnavailable(
            f"{AUTHORITY_PACKAGE} gave no usable answer ({type(exc).__name__})"
        ) from exc
    return refusals([record_id for record_id, _ in checked], answer)
