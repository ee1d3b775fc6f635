"""Recording an outcome against a case on a coordinator's list, for `accord cases outcome`
and the console alike.

The outcome is a SupportOutcome of the coordinator's own organisation, judged by the
ingestion pipeline's rules (`accord.ingest.pipeline.Pipeline`, as a file or the gateway
would be) and published to that organisation's partner topic as the organisation itself:
the worker then checks its authority, audits it and applies it to the case, which comes
back on the list. The request id is the case's reference; `case_key` says which case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord.coordinator import views
from accord.core.settings import Settings
from accord.core.topics import SUPPORT_OUTCOME
from accord.ingest.pipeline import Accepted, Location, Pipeline, Rejected
from accord.ingest.publish import Deliveries, Publisher, PublishInputError, signed_in_as


class OutcomeRefused(ValueError):
    """The outcome is not valid (the pipeline's problems, in plain words)."""


@dataclass(frozen=True)
class Recorded:
    event_id: str
    reference: str
    need: str
    outcome: str
    publisher: str


def outcome_event(
    publisher_org: str,
    case: dict[str, Any],
    need: str,
    outcome: str,
    moment: datetime | None,
    location: Location,
) -> Accepted:
    """The outcome as the pipeline accepts it, with its case key; OutcomeRefused with
    every problem otherwise."""
    reference = views.case_reference(case["case_key"])
    moment = moment or datetime.now(UTC)
    raw = {
        "request_id": reference,
        "need": need,
        "outcome": outcome,
        "occurred_at": moment.isoformat(),
    }
    judged = Pipeline(publisher_org, SUPPORT_OUTCOME).process(
        raw, location, json.dumps(raw).encode()
    )
    if isinstance(judged, Rejected):
        raise OutcomeRefused("; ".join(error.message for error in judged.errors))
    judged.event["case_key"] = case["case_key"]
    return judged


def publish_outcome(
    settings: Settings,
    publisher_org: str,
    case: dict[str, Any],
    need: str,
    outcome: str,
    moment: datetime | None = None,
    location: Location | None = None,
) -> Recorded:
    """Publish the outcome as `publisher_org`, acknowledged by Kafka (acks=all) before
    this returns. PublishInputError when the organisation cannot publish (no topic, no
    credential), OutcomeRefused when the outcome is invalid."""
    reference = views.case_reference(case["case_key"])
    location = location or Location("CONSOLE", f"case {reference}", f"case {reference}")
    accepted = outcome_event(publisher_org, case, need, outcome, moment, location)
    publisher = Publisher(signed_in_as(settings, publisher_org))
    try:
        publisher.prepare(publisher_org, SUPPORT_OUTCOME)
        deliveries = Deliveries()
        publisher.send(publisher_org, SUPPORT_OUTCOME, accepted, deliveries)
        publisher.wait(deliveries)
    finally:
        publisher.close()
    return Recorded(accepted.event_id, reference, need, outcome, publisher_org)


__all__ = ["OutcomeRefused", "PublishInputError", "Recorded", "outcome_event", "publish_outcome"]
