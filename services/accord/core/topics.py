"""Every topic name in one place. Subjects follow the TopicNameStrategy (`<topic>-value`)."""

from __future__ import annotations

import re

from accord.core.settings import Settings

SHIELDING_LIST = "shielding-list"
SUPPORT_REQUEST = "support-request"
SUPPORT_OUTCOME = "support-outcome"
CONSENT_CHANGE = "consent-change"
SUPPORT_LIST = "support-list"

# Partner datasets and the Avro record each one carries.
DATASET_RECORDS = {
    SHIELDING_LIST: "ShieldingListEntry",
    SUPPORT_REQUEST: "SupportRequest",
    SUPPORT_OUTCOME: "SupportOutcome",
    CONSENT_CHANGE: "ConsentChange",
}

_ORG_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def is_org_id(value: str) -> bool:
    return bool(_ORG_ID.match(value))


# The worker's own topics under hub. (besides the audit and quarantine topics), in the
# order events flow through them: partner topics -> identity (by matching block) ->
# person-events (by person); request-events (by request) routes outcomes to their person.
IDENTITY = "identity"
REQUEST_EVENTS = "request-events"
PERSON_EVENTS = "person-events"
HUB_STAGE_TOPICS = (IDENTITY, REQUEST_EVENTS, PERSON_EVENTS)
# hub.cases: the record of each case; hub.match.review: uncertain matches for a person to
# settle; hub.audit-chain: the head of each audit partition's hash chain
# (accord.worker.auditlog).
CASES = "cases"
MATCH_REVIEW = "match.review"
AUDIT_CHAIN = "audit-chain"
HUB_COMPACTED_TOPICS = (CASES, MATCH_REVIEW, AUDIT_CHAIN)
# hub.match.decisions: reviewers' decisions on queued pairs and merges (MatchReviewDecision,
# Avro), written by the reviewer principal, applied by the worker; kept like the audit,
# since it is the record of every review.
MATCH_DECISIONS = "match.decisions"
HUB_REVIEW_TOPICS = (MATCH_DECISIONS,)
# The worker's tables; each has a changelog topic `<worker group>-<table>-changelog`, the
# group being the topic prefix then ACCORD_WORKER_ID (Settings.worker_group).
WORKER_TABLES = ("identities", "request-owners", "cases", "released")


class Topics:
    """Topic names for one deployment (one prefix)."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.topic_prefix
        self.audit = self.prefix + settings.audit_topic
        self.quarantine = self.prefix + settings.quarantine_topic

    def partner(self, org: str, dataset: str, version: int = 1) -> str:
        return f"{self.prefix}partner.{org}.{dataset}.v{version}"

    def share(self, recipient: str, dataset: str = SUPPORT_LIST) -> str:
        return f"{self.prefix}share.{recipient}.{dataset}"

    def rejects(self, org: str) -> str:
        """An organisation's rejected input, with reasons; only that organisation reads it."""
        return f"{self.prefix}rejects.{org}"

    def parse_rejects(self, topic: str) -> str | None:
        rest = topic.removeprefix(self.prefix).split(".")
        return rest[1] if len(rest) == 2 and rest[0] == "rejects" else None

    def internal(self, name: str) -> str:
        """Topics between the worker's stages, e.g. hub.cases."""
        return f"{self.prefix}hub.{name}"

    def stages(self) -> list[str]:
        """The worker's stage topics, in the order events flow through them."""
        return [self.internal(name) for name in HUB_STAGE_TOPICS]

    @staticmethod
    def changelog(worker_group: str, table: str) -> str:
        """A worker table's changelog: faust names it after the app, whose id is the
        worker group (`Settings.worker_group`, under the topic prefix)."""
        return f"{worker_group}-{table}-changelog"

    @staticmethod
    def assignor(worker_group: str) -> str:
        """faust's partition assignor topic for a worker group."""
        return f"{worker_group}-__assignor-__leader"

    def partner_pattern(self, dataset: str) -> str:
        return rf"^{re.escape(self.prefix)}partner\.[a-z0-9-]+\.{re.escape(dataset)}\.v[0-9]+$"

    def parse_partner(self, topic: str) -> tuple[str, str]:
        """(org, dataset) from a partner topic name; the org is who the topic belongs to."""
        rest = topic.removeprefix(self.prefix).split(".")
        if len(rest) != 4 or rest[0] != "partner":
            raise ValueError(f"{topic} is not a partner topic")
        return rest[1], rest[2]

    @staticmethod
    def subject(topic: str) -> str:
        return f"{topic}-value"
