"""One typed, frozen settings object, read from ACCORD_* environment variables.

Every setting documents its variable and default here; `accord settings` prints them
(secrets masked). Outside the `dev` environment a missing or placeholder pseudonymisation
key is a startup failure, because a guessable key would make person keys reversible.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from accord.core.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[3]

# The key of a well-known placeholder that earlier versions shipped; refused outright.
RETIRED_PSEUDONYM_KEYS = frozenset({"dev-only-pseudonym-key-not-for-real-data"})
MIN_PSEUDONYM_KEY_BYTES = 32


class Settings(BaseSettings):
    """Accord configuration. Each field is read from ACCORD_<FIELD NAME IN CAPITALS>."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_", frozen=True, extra="ignore")

    env: str = Field("dev", description="Deployment environment: dev, test or prod.")

    # Where things live.
    home: Path = Field(REPO_ROOT, description="Project root (policies/, schemas/, deploy/).")
    cache_dir: Path = Field(
        REPO_ROOT / ".cache", description="Downloaded tools: Kafka jars and the OPA binary."
    )
    state_dir: Path = Field(
        REPO_ROOT / ".state", description="Kafka data, process ids and logs of the local stack."
    )

    # Endpoints. Left unset, each points at the local stack's port below.
    bootstrap_servers: str = Field(
        "", description="Kafka bootstrap servers [default: 127.0.0.1:<kafka_port>]."
    )
    schema_registry_url: str = Field(
        "",
        description="Confluent-compatible schema registry, over TLS "
        "[default: https://127.0.0.1:<registry_port>].",
    )
    opa_url: str = Field("", description="OPA server URL [default: local opa_port].")

    # Local stack.
    kafka_version: str = Field("4.4.0", description="Apache Kafka version (3.9.x also works).")
    opa_version: str = Field("v1.22.3", description="OPA version built with go install.")
    kafka_port: int = Field(19092, description="Local broker port.")
    kafka_controller_port: int = Field(19093, description="Local KRaft controller port.")
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=9,
        description="Kafka nodes of the local stack (combined broker and controller, KRaft) "
        "[default: as many as its Kafka was formatted with (<state_dir>/kafka/nodes), else "
        "1]; `accord stack up --brokers 3` sets it. Node i (from 0) listens on "
        "kafka_port + i*kafka_port_step and its controller on kafka_controller_port + "
        "i*kafka_port_step.",
    )
    kafka_port_step: int = Field(
        10,
        ge=2,
        description="Distance between the ports of successive local Kafka nodes (node 1: "
        "19092/19093, node 2: 19102/19103, node 3: 19112/19113 by default).",
    )
    kafka_heap: str = Field(
        "-Xms512m -Xmx2g",
        description="JVM heap flags for the broker (hundreds of partitions need more than 512m).",
    )
    registry_port: int = Field(18081, description="Local schema registry port.")
    opa_port: int = Field(18181, description="Local OPA port.")
    stack_timeout_s: float = Field(90.0, description="Seconds to wait for each component.")
    tls_names: str = Field(
        "",
        description="More host names or IP addresses, comma-separated, for the stack's server "
        "certificate beyond localhost, 127.0.0.1 and ::1 (docker-compose.yml sets "
        "kafka,registry,gateway,opa).",
    )

    # Topics.
    topic_prefix: str = Field(
        "", description="Prefix of every hub topic; lets tests and tenants run side by side."
    )
    quarantine_topic: str = Field("hub.quarantine", description="Rejected input, with reasons.")
    audit_topic: str = Field("hub.audit.decisions", description="Every policy decision.")
    schemas_topic: str = Field("_schemas", description="Compacted topic of the registry.")
    audit_retention_ms: int = Field(
        -1,
        description="How long the audit topic keeps decisions, in ms; -1 keeps them forever "
        "(set it to what the law requires of you, never shorter).",
    )
    audit_transaction_timeout_ms: int = Field(
        10_000,
        description="Longest an audit write's transaction may stay open: a killed worker's "
        "open transaction holds back read-committed readers of the audit at most this long "
        "(less when another worker takes its partitions over and fences it).",
    )
    transit_retention_ms: int = Field(
        7 * 86_400_000,
        description="How long partner and stage topics keep a record in transit, in ms (it "
        "holds personal data until the worker has it; longer than any outage you plan for).",
    )
    rejects_retention_ms: int = Field(
        30 * 86_400_000, description="How long rejected input is kept for its publisher, in ms."
    )
    topic_partitions: int = Field(6, description="Partitions for topics the hub creates.")
    topic_replication_factor: int = Field(
        0,
        ge=0,
        description="Replicas of each topic the hub creates; 0: min(3, brokers in the "
        "cluster). With 3 or more replicas a topic also gets min.insync.replicas=2, so an "
        "acknowledged record (acks=all) is on two brokers at least.",
    )
    partner_topic_partitions: int = Field(
        2,
        description="Partitions of each partner topic: many partners each publish little, and "
        "the worker repartitions by person, so more would only add fetch work.",
    )

    # Governance.
    pseudonym_key: SecretStr | None = Field(
        None,
        description="HMAC key of pseudonymous person keys: at least 32 random bytes, e.g. "
        "`openssl rand -hex 32`. No default: the hub refuses to start without one (only "
        "`accord demo` makes a throwaway key of its own).",
    )
    pseudonym_key_file: Path | None = Field(
        None, description="File holding ACCORD_PSEUDONYM_KEY (instead of the variable)."
    )
    purpose: str = Field("shielding-support", description="Purpose the worker shares for.")
    match_model_file: Path | None = Field(
        None,
        description=(
            "Trained matching model the worker scores with (written by `accord match train`)"
            " [default: the model shipped in accord/matching/models/default.json]."
        ),
    )
    worker_id: str = Field(
        "accord-worker",
        description="Name of the worker's consumer group; the group (and the names of its "
        "table changelogs, assignor topic, audit producers and local tables) is "
        "ACCORD_TOPIC_PREFIX followed by this, so each prefix has its own.",
    )
    worker_batch_size: int = Field(500, description="Records per OPA query.")
    worker_batch_timeout_s: float = Field(
        0.02,
        description="Max wait to fill a batch, per stage: the latency each stage adds at a "
        "low rate (under load batches fill before it, and larger ones form while a batch "
        "is processed).",
    )
    worker_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="Where the worker's tables live: rocksdb (on disk under the state dir, "
        "memory bounded) or memory (every entry in the process, for comparisons only).",
    )
    worker_store_memory_mb: int = Field(
        64,
        ge=8,
        description="RocksDB's memory for all of a worker's tables: block cache, index and "
        "filter blocks, and write buffers (charged to the same cache).",
    )
    producer_delivery_timeout_s: float = Field(
        120.0,
        gt=0,
        description="How long the worker's producers (its stage, table and share writes, "
        "and the audit's) try to have a record acknowledged by every in-sync replica before "
        "the send fails; a failed send fails its batch, which is retried whole until Kafka "
        "takes it (nothing is acknowledged upstream or dropped meanwhile).",
    )
    opa_timeout_s: float = Field(5.0, description="Timeout of one OPA query.")
    partner_discovery_interval_s: float = Field(
        5.0, description="How often the worker looks for new partner topics to consume."
    )
    policy_sweep_interval_s: float = Field(
        1.0, description="How often the worker checks for a policy change to re-decide cases."
    )
    opa_retry_s: float = Field(1.0, description="Pause between retries while OPA is down.")
    skipped_records_check_s: float = Field(
        5.0, description="How often an idle worker checks for fetched records never processed."
    )
    priority_rules_file: Path | None = Field(
        None,
        description="Priority rules of support cases (default: config/priority.yaml); their "
        "days are data.",
    )
    reassess_interval_s: float = Field(
        300.0,
        description="How often the worker looks for open cases whose priority a timed rule "
        "(e.g. no contact for 3 days) has changed since, and for outcomes held too long.",
    )
    outcome_hold_s: float = Field(
        86400.0,
        description="How long an outcome that came before its request is held; then it goes "
        "to its publisher's rejects (no_such_request).",
    )

    # Access. Every client signs in; there is no unauthenticated mode.
    principal: str = Field(
        "",
        description="Principal this process signs in as [default: the command's own: the "
        "worker's for `accord worker`, the organisation's for `accord publish --as`].",
    )
    secret: SecretStr | None = Field(None, description="Secret of ACCORD_PRINCIPAL.")
    secret_file: Path | None = Field(None, description="File holding ACCORD_PRINCIPAL's secret.")
    credentials_file: Path | None = Field(
        None, description='JSON file {"principal": ..., "secret": ...} to sign in with.'
    )
    secrets_dir: Path | None = Field(
        None,
        description="Directory of one file per principal, named after it and holding its "
        "secret (a deployment's mounted Secrets: the console's recipients and accord-audit); "
        "tried before the saved credentials for a principal given no secret of its own.",
    )
    credentials_dir: Path | None = Field(
        None, description="Saved credentials of the local stack [default: <state_dir>/credentials]."
    )
    ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that verifies Kafka's, the registry's and the gateway's TLS "
        "certificates [default: <state_dir>/tls/ca.pem, the local stack's CA].",
    )

    opa_token: SecretStr | None = Field(
        None, description="Bearer token every OPA client sends [default: read from opa_token_file]."
    )
    opa_token_file: Path | None = Field(
        None,
        description="File holding the OPA token [default: <state_dir>/opa/token, which "
        "`accord stack up` generates 0600].",
    )
    registry_users_file: Path | None = Field(
        None,
        description="The registry's user store (scrypt hashes) "
        "[default: <state_dir>/registry/users.json].",
    )
    gateway_token_ttl_days: float = Field(
        90.0, description="Lifetime of a newly issued gateway token, in days."
    )
    gateway_rate_per_s: float = Field(
        20.0, description="Requests per second each gateway token may make, on average."
    )
    gateway_rate_burst: int = Field(
        40, description="Requests a gateway token may make at once before being limited."
    )

    # The console (`accord console`): coordinators' and IG officers' web pages.
    console_host: str = Field(
        "127.0.0.1", description="Address the console listens on (loopback unless set)."
    )
    console_port: int = Field(18080, description="Port of the console.")
    console_tls: bool = Field(
        True,
        description="Serve the console over HTTPS with the stack's certificate (cookies are "
        "then Secure); false only behind a TLS-terminating proxy on the same host.",
    )
    console_users_file: Path | None = Field(
        None,
        description="The console's local users (Argon2id hashes) "
        "[default: <state_dir>/console/users.json].",
    )
    console_access_log_file: Path | None = Field(
        None,
        description="The console's access log: refused attempts and page views of personal "
        "data, JSON lines, pseudonymous keys only [default: <state_dir>/console/access.jsonl].",
    )
    console_reviewer_secret_file: Path | None = Field(
        None,
        description="File holding the accord-reviewer principal's secret, with which the "
        "console's review pages publish decisions (where ACCORD_PRINCIPAL names the console's "
        "own principal, as in a deployment) [default: the local stack's saved credential].",
    )
    console_session_idle_s: float = Field(
        1800.0, description="A console session ends after this many seconds without a request."
    )
    console_session_max_s: float = Field(
        8 * 3600.0, description="A console session ends this many seconds after sign-in."
    )
    console_login_per_minute: float = Field(
        5.0,
        description="Sign-in attempts per minute allowed per user name and per client address "
        "(a burst of the same number), beyond which the console answers 429.",
    )
    console_local_users: bool = Field(
        True,
        description="Offer sign-in with the console's local users (the users file). Set false "
        "where everyone signs in through the council's OpenID Connect provider.",
    )
    # Sign-in through a council's OpenID Connect provider (Entra ID): on when the issuer,
    # client id, client secret file and redirect URL are all set (docs/operators.md).
    console_oidc_issuer: str | None = Field(
        None,
        description="The OpenID Connect issuer, e.g. https://login.microsoftonline.com/"
        "<tenant id>/v2.0 (its .well-known/openid-configuration is read at sign-in).",
    )
    console_oidc_client_id: str | None = Field(
        None, description="The console's client (application) id at the provider."
    )
    console_oidc_client_secret_file: Path | None = Field(
        None,
        description="A file (0600) holding the console's client secret; never the value itself.",
    )
    console_oidc_redirect_url: str | None = Field(
        None,
        description="The redirect URI registered at the provider: the console's address "
        "followed by /sign-in/oidc/callback.",
    )
    console_oidc_provider_name: str = Field(
        "Microsoft Entra ID",
        description="The provider's name on the sign-in button (Sign in with <name>).",
    )
    console_oidc_roles_file: Path | None = Field(
        None,
        description="Which app roles or group object ids give which console role and "
        "organisation [default: <state_dir>/console/oidc-roles.json].",
    )
    console_oidc_scopes: str = Field(
        "openid profile", description="The scopes the console asks the provider for."
    )

    # Partners' files: what a workbook may inflate to before it is parsed.
    xlsx_max_inflated_bytes: int = Field(
        200 * 1024 * 1024,
        description="Largest total an .xlsx workbook's members may inflate to, in bytes; a "
        "larger workbook is refused before parsing.",
    )
    xlsx_max_ratio: float = Field(
        100.0,
        description="Largest ratio of an .xlsx workbook's inflated to compressed size; a "
        "workbook that compresses better (a zip bomb) is refused before parsing.",
    )

    # Metrics, health and readiness (accord.core.metrics): GET /metrics, /healthz, /readyz.
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address the services' metrics endpoints bind to (0.0.0.0 in a container "
        "whose port only the cluster's network reaches).",
    )
    worker_metrics_port: int = Field(
        19301,
        description="The worker's metrics port; 0 disables. A second worker on the host takes "
        "the next free port (up to +15).",
    )
    gateway_metrics_port: int = Field(19291, description="The gateway's metrics port; 0 disables.")
    registry_metrics_port: int = Field(
        19292, description="The schema registry's metrics port; 0 disables."
    )
    console_metrics_port: int = Field(19293, description="The console's metrics port; 0 disables.")
    lag_interval_s: float = Field(
        15.0, description="How often the worker reads its group's lag per partition for /metrics."
    )

    log_format: str = Field("auto", description="auto, json or console.")
    log_level: str = Field("INFO", description="Log level.")

    @model_validator(mode="before")
    @classmethod
    def _default_endpoints_follow_local_ports(cls, values: dict) -> dict:
        values = dict(values)
        if not values.get("kafka_brokers"):
            # As many nodes as the local stack's Kafka was formatted with (`accord stack up
            # --brokers 3` records it), so every command bootstraps from all of them.
            state = Path(values.get("state_dir") or cls.model_fields["state_dir"].default)
            try:
                values["kafka_brokers"] = int((state / "kafka" / "nodes").read_text().strip())
            except (OSError, ValueError):
                pass
        ports = {
            name: int(values.get(name) or cls.model_fields[name].default)
            for name in ("kafka_port", "registry_port", "opa_port", "kafka_brokers")
        }
        step = int(values.get("kafka_port_step") or cls.model_fields["kafka_port_step"].default)
        values["bootstrap_servers"] = values.get("bootstrap_servers") or ",".join(
            f"127.0.0.1:{ports['kafka_port'] + i * step}" for i in range(ports["kafka_brokers"])
        )
        values["schema_registry_url"] = (
            values.get("schema_registry_url") or f"https://127.0.0.1:{ports['registry_port']}"
        )
        values["opa_url"] = values.get("opa_url") or f"http://127.0.0.1:{ports['opa_port']}"
        return values

    def require_pseudonym_key(self) -> str:
        """The pseudonymisation key, or a startup failure saying what to set. A guessable
        or short key would make person keys reversible by anyone who can list CHIs."""
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else ""
        if not key and self.pseudonym_key_file is not None:
            try:
                key = self.pseudonym_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"ACCORD_PSEUDONYM_KEY_FILE {self.pseudonym_key_file} is unreadable: "
                    f"{exc.strerror}"
                ) from None
        if not key:
            raise ConfigurationError(
                "no pseudonymisation key: set ACCORD_PSEUDONYM_KEY or ACCORD_PSEUDONYM_KEY_FILE "
                "to at least 32 random bytes (e.g. `openssl rand -hex 32`)"
            )
        if key in RETIRED_PSEUDONYM_KEYS or len(set(key)) < 8:
            raise ConfigurationError("ACCORD_PSEUDONYM_KEY is a placeholder, not a secret")
        if len(key.encode()) < MIN_PSEUDONYM_KEY_BYTES:
            raise ConfigurationError(
                f"ACCORD_PSEUDONYM_KEY is {len(key.encode())} bytes; at least "
                f"{MIN_PSEUDONYM_KEY_BYTES} random bytes are needed"
            )
        return key

    @property
    def worker_group(self) -> str:
        """The worker's consumer group (and faust app id): the topic prefix, then
        ACCORD_WORKER_ID. Changelogs, faust's assignor topic, the audit's transactional
        ids and the local tables' directory are named after it, so two prefixes on one
        cluster share nothing."""
        return f"{self.topic_prefix}{self.worker_id}"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def trusted_ca(self) -> Path:
        return self.ca_file or self.tls_dir / "ca.pem"

    @property
    def opa_token_path(self) -> Path:
        return self.opa_token_file or self.state_dir / "opa" / "token"

    @property
    def registry_users_path(self) -> Path:
        return self.registry_users_file or self.state_dir / "registry" / "users.json"

    @property
    def console_users_path(self) -> Path:
        return self.console_users_file or self.state_dir / "console" / "users.json"

    @property
    def console_oidc_roles_path(self) -> Path:
        return self.console_oidc_roles_file or self.console_dir / "oidc-roles.json"

    @property
    def console_dir(self) -> Path:
        """The console's own state (0700): its users, demo sign-ins and access log."""
        return self.state_dir / "console"

    @property
    def console_access_log_path(self) -> Path:
        return self.console_access_log_file or self.console_dir / "access.jsonl"

    @property
    def kafka_dir(self) -> Path:
        return self.cache_dir / "kafka" / self.kafka_version

    @property
    def opa_binary(self) -> Path:
        return self.cache_dir / "opa" / self.opa_version / "opa"

    @property
    def policies_dir(self) -> Path:
        return self.home / "policies"

    @property
    def schemas_dir(self) -> Path:
        return self.home / "schemas" / "avro"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead."""
    return Settings()


def describe_settings() -> list[tuple[str, str, str]]:
    """(env var, current value, description) for every setting, secrets masked."""
    settings = get_settings()
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "**********" if isinstance(value, SecretStr) else str(value)
        rows.append((f"ACCORD_{name.upper()}", shown, field.description or ""))
    return rows
