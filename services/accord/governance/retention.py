"""Recipients' share topics on the broker, checked and brought into line with the
retention their agreements set (`accord policy retention`). What each topic's
configuration must be is computed in `accord.pipeline.retention` (its docstring explains
the settings); the broker is read and changed with librdkafka's admin client
(DescribeConfigs, IncrementalAlterConfigs: only the named keys change).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from accord.core.credentials import CredentialError
from accord.core.errors import InfrastructureError
from accord.core.kafka import COMPACTED, Connectable, confluent_admin, ensure_topics
from accord.core.logging import get_logger
from accord.core.policy import opa_session
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.pipeline.retention import (
    CHECKED_KEYS,
    Retention,
    recipient_retention,
    share_recipient,
    share_topic_configs,
)

log = get_logger("accord.governance.retention")


def _policy_set(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def differences(broker: Mapping[str, str | None], wanted: Retention) -> dict[str, tuple[str, str]]:
    """Key -> (broker value, agreement value) for each checked key that disagrees."""
    expected = wanted.config()
    found: dict[str, tuple[str, str]] = {}
    if _policy_set(broker.get("cleanup.policy")) != _policy_set(expected["cleanup.policy"]):
        found["cleanup.policy"] = (str(broker.get("cleanup.policy")), expected["cleanup.policy"])
    if str(broker.get("retention.ms")) != expected["retention.ms"]:
        found["retention.ms"] = (str(broker.get("retention.ms")), expected["retention.ms"])
    return found


@dataclass(frozen=True)
class TopicCheck:
    """One share topic: what the broker holds and what its agreements require."""

    topic: str
    recipient: str
    broker: dict[str, str | None]
    wanted: Retention | None

    @property
    def uncovered(self) -> bool:
        return self.wanted is None

    @property
    def differences(self) -> dict[str, tuple[str, str]]:
        return differences(self.broker, self.wanted) if self.wanted else {}

    @property
    def ok(self) -> bool:
        return self.wanted is not None and not self.differences

    def line(self) -> str:
        """One line for the report: topic, broker value, agreement value, agreement id."""
        if self.wanted is None:
            return (
                f"{self.topic}  broker: cleanup.policy={self.broker.get('cleanup.policy')} "
                f"retention.ms={self.broker.get('retention.ms')}  "
                f"no agreement names {self.recipient}: no retention period to follow"
            )
        keys = self.differences or dict.fromkeys(CHECKED_KEYS)
        broker = " ".join(f"{key}={self.broker.get(key)}" for key in keys)
        wanted = " ".join(f"{key}={self.wanted.config()[key]}" for key in keys)
        return (
            f"{self.topic}  broker: {broker}  agreement: {wanted} "
            f"({self.wanted.days} days)  {self.wanted.agreement_id}"
        )


def check(
    topics: Topics, agreements: Mapping[str, Any], broker_configs: Mapping[str, Mapping[str, Any]]
) -> list[TopicCheck]:
    """Compare each share topic's broker configuration (topic -> config) with its
    recipient's agreements, in topic order."""
    wanted = recipient_retention(agreements)
    results = []
    for topic in sorted(broker_configs):
        recipient = share_recipient(topics, topic)
        if recipient is None:
            continue
        config = {key: broker_configs[topic].get(key) for key in CHECKED_KEYS}
        results.append(TopicCheck(topic, recipient, config, wanted.get(recipient)))
    return results


# --- agreements ----------------------------------------------------------------------------


def agreements_from_opa(settings: Settings) -> dict[str, Any]:
    """The agreements OPA serves (data.agreements); raises when OPA cannot say."""
    opa_url = settings.opa_url
    try:
        response = opa_session(settings).get(f"{opa_url}/v1/data/agreements", timeout=5)
        response.raise_for_status()
        result = response.json().get("result") or {}
    except (requests.RequestException, ValueError, CredentialError) as exc:
        raise InfrastructureError(f"OPA at {opa_url} did not list the agreements: {exc}") from exc
    return result if isinstance(result, dict) else {}


# --- the broker ----------------------------------------------------------------------------


def _admin(target: Connectable) -> Any:
    return confluent_admin(target)


def share_topic_names(target: Connectable, topics: Topics, timeout_s: float = 15.0) -> list[str]:
    from confluent_kafka import KafkaException

    try:
        names = _admin(target).list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise InfrastructureError(f"Kafka unreachable: {exc}") from exc
    return sorted(name for name in names if share_recipient(topics, name) is not None)


def describe(target: Connectable, names: Iterable[str], timeout_s: float = 15.0) -> dict[str, dict]:
    """Topic -> {config key: value} as the broker reports them (defaults included).

    A topic created a moment ago (by this process or by another worker starting at the
    same time) can be unknown to DescribeConfigs for a short while: such topics are asked
    again until timeout_s has passed."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import ConfigResource, ResourceType

    pending = sorted(set(names))
    configs: dict[str, dict] = {}
    admin = _admin(target)  # kept referenced: the futures fail once it is collected
    deadline = time.monotonic() + timeout_s
    while pending:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in pending]
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        unknown = []
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code == KafkaError.UNKNOWN_TOPIC_OR_PART and time.monotonic() < deadline:
                    unknown.append(resource.name)
                    continue
                raise InfrastructureError(f"describing {resource.name}: {exc}") from exc
            configs[resource.name] = {key: entry.value for key, entry in entries.items()}
        pending = sorted(unknown)
        if pending:
            time.sleep(0.5)
    return configs


def alter(
    target: Connectable, configs: Mapping[str, Mapping[str, str]], timeout_s: float = 15.0
) -> None:
    """Set each topic's named keys (IncrementalAlterConfigs; other keys stay as they are)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in config.items()
            ],
        )
        for topic, config in configs.items()
    ]
    if not resources:
        return
    admin = _admin(target)  # kept referenced: the futures fail once it is collected
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout_s)
    for resource, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise InfrastructureError(f"setting retention of {resource.name}: {exc}") from exc
        log.info("share_topic_retention_set", topic=resource.name, **configs[resource.name])


def check_broker(settings: Settings, agreements: Mapping[str, Any]) -> list[TopicCheck]:
    """Every share topic of this deployment on the broker, checked against the agreements."""
    topics = Topics(settings)
    names = share_topic_names(settings, topics)
    return check(topics, agreements, describe(settings, names))


def apply(settings: Settings, results: Iterable[TopicCheck]) -> list[TopicCheck]:
    """Bring every mismatching topic into line; returns the ones changed."""
    changed = [r for r in results if r.wanted is not None and not r.ok]
    alter(settings, {r.topic: r.wanted.config() for r in changed if r.wanted})
    return changed


def ensure_share_topics(
    settings: Settings, partitions: int, agreements: Mapping[str, Any] | None = None
) -> None:
    """Create every agreement recipient's share topic with its retention, and bring
    existing ones into line. Agreements default to those OPA serves; when OPA cannot say,
    nothing is created here (the gate creates a topic when it first shares to it)."""
    if agreements is None:
        try:
            agreements = agreements_from_opa(settings)
        except InfrastructureError as exc:
            log.warning("agreements_unreadable", opa_url=settings.opa_url, error=str(exc))
            return
    topics = Topics(settings)
    wanted = share_topic_configs(topics, agreements)
    ensure_topics(settings, wanted, partitions)
    try:
        apply(settings, check(topics, agreements, describe(settings, wanted)))
    except InfrastructureError as exc:
        # Not a reason to stop sharing: the topics exist; `accord policy retention` reports
        # and fixes any left out of line.
        log.warning("share_topic_retention_unaligned", error=str(exc))


def share_topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """The configuration a new share topic is created with: its recipient's retention from
    the agreements OPA serves; plain compaction when no agreement names the recipient or
    OPA cannot say (logged; `accord policy retention --check` reports such a topic)."""
    recipient = share_recipient(Topics(settings), topic)
    try:
        retention = recipient_retention(agreements_from_opa(settings)).get(recipient or "")
    except InfrastructureError as exc:
        log.warning("share_topic_retention_unknown", topic=topic, error=str(exc))
        return dict(COMPACTED)
    if retention is None:
        log.warning("share_topic_retention_unknown", topic=topic, error="no agreement names it")
        return dict(COMPACTED)
    return retention.config()
