"""`accord gateway`: partners POST JSON batches; each record is accepted or rejected.

    POST /v1/datasets/{dataset}/records     Authorization: Bearer <token>
    body: a JSON array of records, or {"records": [...]}

The token decides the organisation (see `accord.gateway.tokens`): records go to
`partner.<that org>.<dataset>.v1` and nowhere else, and a record naming another
organisation in `source_org` is rejected. Records pass through the same pipeline as
`accord publish` (placeholders and synonyms, validation, normalisation, stable event ids,
rejects): each rejected record is listed with every problem (field, rule, message),
the problems are counted by field and rule, and each goes to `rejects.<org>`.

A record is reported accepted only after Kafka acknowledged it (acks=all, idempotent
producer). If Kafka cannot acknowledge the batch, the answer is 503 and no record of the
batch counts as accepted: the partner sends the batch again, and because event ids derive
from content (or are the partner's own), records that did reach Kafka the first time are
written again with the same id and key, which compacted views absorb.

Limits: at most MAX_RECORDS records and MAX_BODY_BYTES bytes per request (413 beyond).
Status codes: 200 batch processed (see each record's outcome), 400 malformed JSON or
shape or nesting deeper than MAX_DEPTH, 401 missing, unknown, expired or revoked token,
403 a dataset the organisation has no authority to publish (the authority rules, asked
of OPA and remembered for AUTHORITY_TTL_S; when OPA cannot say, the batch goes on and
the worker decides each record, as it does in any case), 404 unknown dataset, 413 too
large, 429 over the token's rate (Retry-After says when to come back), 503 Kafka or the
schema registry unavailable.

The gateway serves HTTPS only, with the stack's certificate (`accord.stack.tls`).
Failed sign-ins are counted by reason (GET /health shows the counts) and logged as
`gateway_auth_failed` with the reason and, when known, the token's id, never its secret.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter
from typing import Any, Final

from aiohttp import web

from accord.core import metrics
from accord.core.credentials import GATEWAY
from accord.core.errors import InfrastructureError
from accord.core.kafka import as_principal
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.gateway.limits import MAX_DEPTH, RateLimiter, nesting_depth, retry_after
from accord.gateway.tokens import TokenStore
from accord.governance.authority import no_authority_message, publishable
from accord.ingest.datasets import DATASETS, Dataset
from accord.ingest.habits import Habits, load_habits
from accord.ingest.mapping import load_mapping, mapping_path
from accord.ingest.pipeline import Accepted, Location, Pipeline, Rejected
from accord.ingest.publish import Deliveries, Publisher
from accord.ingest.readers import PublishInputError
from accord.ingest.validation import FieldError, FieldRule
from accord.stack.tls import server_tls

log = get_logger("accord.gateway")

MAX_RECORDS: Final = 1000
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
# Kafka must acknowledge a batch within this time, or the answer is 503.
ACK_TIMEOUT_S: Final = 15.0
# Fail fast when the broker is away, so a partner hears 503 in seconds, not minutes.
PRODUCER_CONFIG: Final = {"delivery.timeout.ms": 10000, "linger.ms": 5}

SETTINGS_KEY: Final = web.AppKey("settings", Settings)
TOKENS_KEY: Final = web.AppKey("tokens", TokenStore)
STATE_KEY: Final = web.AppKey("state", dict)
LIMITER_KEY: Final = web.AppKey("limiter", RateLimiter)
COUNTS_KEY: Final = web.AppKey("counts", Counter)


class Unavailable(Exception):
    """Kafka or the registry did not take the batch; nothing of it counts as accepted."""


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _publisher(app: web.Application) -> Publisher:
    """One producer for the process, created on first use so the gateway starts without
    Kafka and answers 503 until Kafka is there."""
    state = app[STATE_KEY]
    if state.get("publisher") is None:
        settings = as_principal(app[SETTINGS_KEY], GATEWAY)
        state["publisher"] = Publisher(settings, prepare_timeout_s=3.0, **PRODUCER_CONFIG)
    return state["publisher"]


def _habits(app: web.Application, org: str, dataset: str) -> Habits:
    """The shared synonyms and placeholders with the partner's own (its mapping's
    `values`), as `accord publish` reads them; read once per organisation and dataset."""
    cache = app[STATE_KEY].setdefault("habits", {})
    if (org, dataset) not in cache:
        settings = app[SETTINGS_KEY]
        rules = DATASETS[dataset].rules
        shared = load_habits(settings.home, rules)
        try:
            own = load_mapping(
                mapping_path(settings.home / "partners", org),
                dataset,
                DATASETS[dataset].fields,
                rules=rules,
            ).habits
        except PublishInputError as exc:
            log.warning("partner_mapping_unusable", org=org, dataset=dataset, error=str(exc)[:200])
            own = Habits(frozenset(), {})
        cache[(org, dataset)] = shared.merged(own)
    return cache[(org, dataset)]


def _outcomes(
    app: web.Application, org: str, dataset: str, records: list[Any]
) -> list[Accepted | Rejected]:
    habits = _habits(app, org, dataset) if app is not None else None
    pipeline = Pipeline(org, dataset, habits=habits)
    outcomes: list[Accepted | Rejected] = []
    for index, record in enumerate(records):
        location = Location("HTTP", f"HTTP batch record {index}", f"record {index}")
        # JSON may escape a lone surrogate ("\ud800"), which has no UTF-8 form: kept as
        # its escape, so the record still reaches the rejects with its reason.
        original = json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace")
        if not isinstance(record, dict):
            problem = FieldError("", "json_not_object", "Each record must be a JSON object.")
            outcomes.append(pipeline.reject(location, original, [problem]))
        else:
            outcomes.append(pipeline.process(record, location, original))
    return outcomes


def _publish(app: web.Application, org: str, dataset: str, records: list[Any]) -> list[Any]:
    """Runs in a worker thread: validate, send, and wait for every acknowledgement."""
    outcomes = _outcomes(app, org, dataset, records)
    try:
        publisher = _publisher(app)
        publisher.prepare(org, dataset)
        deliveries = Deliveries()
        for outcome in outcomes:
            publisher.send(org, dataset, outcome, deliveries)
        publisher.wait(deliveries, ACK_TIMEOUT_S)
    except InfrastructureError as exc:
        raise Unavailable(str(exc)) from exc
    return outcomes


def _result(index: int, outcome: Accepted | Rejected) -> dict[str, Any]:
    if isinstance(outcome, Accepted):
        return {"index": index, "status": "accepted", "event_id": outcome.event_id}
    result: dict[str, Any] = {
        "index": index,
        "status": "rejected",
        "errors": [
            # "reason" is kept for clients written before "message"; they are the same text.
            {
                "field": error.field or None,
                "rule": error.rule,
                "message": error.message,
                "reason": error.message,
            }
            for error in outcome.errors
        ],
    }
    if outcome.event_id:
        result["event_id"] = outcome.event_id
    return result


AUTHORITY_TTL_S = 30.0


async def _publishable(app: web.Application, org: str) -> set[str] | None:
    """The datasets `org` may publish (None: OPA cannot say), remembered for a while.

    Early and advisory: a refusal here saves the partner a batch the worker would set
    aside; the worker decides every record whatever this says."""
    cache = app[STATE_KEY].setdefault("authority", {})
    now = time.monotonic()
    if org in cache and now - cache[org][0] < AUTHORITY_TTL_S:
        return cache[org][1]
    allowed = await asyncio.to_thread(publishable, app[SETTINGS_KEY], org)
    if allowed is not None:
        cache[org] = (now, allowed)
    return allowed


async def post_records(request: web.Request) -> web.Response:
    app = request.app
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        verdict = app[TOKENS_KEY].check(token.strip())
        reason, token_id, org = verdict.reason, verdict.token_id, verdict.org
    else:
        reason, token_id, org = ("missing" if not header else "malformed"), None, None
    if org is None or token_id is None:
        app[COUNTS_KEY][f"auth_failed_{reason}"] += 1
        metrics.AUTH_FAILURES.labels("gateway", reason).inc()
        log.warning("gateway_auth_failed", reason=reason, token_id=token_id)
        return _error(
            401,
            "unauthorised",
            "Send 'Authorization: Bearer <token>' with your organisation's valid API token.",
            **{"WWW-Authenticate": 'Bearer realm="accord"'},
        )
    wait = app[LIMITER_KEY].take(token_id)
    if wait > 0:
        app[COUNTS_KEY]["rate_limited"] += 1
        log.warning("gateway_rate_limited", org=org, token_id=token_id)
        return _error(
            429,
            "rate_limited",
            "Too many requests for this token; retry after the time in Retry-After.",
            **{"Retry-After": retry_after(wait)},
        )
    dataset = request.match_info["dataset"]
    if dataset not in DATASETS:
        return _error(404, "unknown_dataset", f"Known datasets: {', '.join(sorted(DATASETS))}.")
    allowed = await _publishable(app, org)
    if allowed is not None and dataset not in allowed:
        app[COUNTS_KEY]["no_authority"] += 1
        log.warning("gateway_no_authority", org=org, dataset=dataset)
        return _error(403, "no_authority", no_authority_message(org, dataset, allowed))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "too_large", f"A request may carry at most {MAX_BODY_BYTES} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "malformed_json", "The body is not valid JSON.")
    except RecursionError:
        payload = None  # nested beyond what the parser follows: too deep, below
        depth = MAX_DEPTH + 1
    else:
        depth = nesting_depth(payload)
    if depth > MAX_DEPTH:
        return _error(
            400, "too_deep", f"JSON may nest at most {MAX_DEPTH} levels of arrays and objects."
        )
    records = payload.get("records") if isinstance(payload, dict) else payload
    if not isinstance(records, list):
        return _error(
            400, "bad_shape", 'The body must be a JSON array of records or {"records": [...]}.'
        )
    if len(records) > MAX_RECORDS:
        return _error(
            413, "too_many_records", f"A request may carry at most {MAX_RECORDS} records."
        )

    started = time.monotonic()
    try:
        outcomes = await asyncio.to_thread(_publish, app, org, dataset, records)
    except Unavailable as exc:
        log.warning("gateway_unavailable", org=org, dataset=dataset, error=str(exc)[:300])
        metrics.error("gateway", "kafka_unavailable")
        return _error(
            503,
            "unavailable",
            "Kafka did not acknowledge the batch; no record of it was accepted. "
            "Send the same batch again: records keep their event ids, so nothing doubles.",
            **{"Retry-After": "5"},
        )
    results = [_result(index, outcome) for index, outcome in enumerate(outcomes)]
    accepted = sum(1 for outcome in outcomes if isinstance(outcome, Accepted))
    log.info(
        "gateway_batch",
        org=org,
        dataset=dataset,
        accepted=accepted,
        rejected=len(outcomes) - accepted,
        elapsed_ms=round((time.monotonic() - started) * 1000),
    )
    problems: Counter[tuple[str, str]] = Counter()
    for outcome in outcomes:
        if isinstance(outcome, Rejected):
            problems.update((error.field or "", error.rule) for error in outcome.errors)
            metrics.QUARANTINED.labels("gateway", outcome.code).inc()
    metrics.stage_done(
        "gateway",
        "publish_records",
        len(outcomes),
        {"accepted": accepted, "rejected": len(outcomes) - accepted},
        time.monotonic() - started,
    )
    return web.json_response(
        {
            "source_org": org,
            "dataset": dataset,
            "accepted": accepted,
            "rejected": len(outcomes) - accepted,
            "problems": [
                {"field": name or None, "rule": rule, "count": count}
                for (name, rule), count in sorted(problems.items())
            ],
            "rejects_topic": Topics(app[SETTINGS_KEY]).rejects(org),
            "results": results,
        }
    )


async def health(request: web.Request) -> web.Response:
    """Liveness, with the counts of refused sign-ins (by reason) and rate-limited calls."""
    counts = request.app[COUNTS_KEY]
    failures = {
        k.removeprefix("auth_failed_"): v for k, v in counts.items() if k.startswith("auth_failed_")
    }
    return web.json_response(
        {
            "status": "ok",
            "auth_failures": sum(failures.values()),
            "auth_failures_by_reason": dict(sorted(failures.items())),
            "rate_limited": counts["rate_limited"],
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


_KIND_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "dob": {"type": "string", "description": "YYYY-MM-DD or DD/MM/YYYY; not in the future"},
    "date": {"type": "string", "description": "YYYY-MM-DD or DD/MM/YYYY"},
    "effective_date": {"type": "string", "description": "YYYY-MM-DD or DD/MM/YYYY"},
    "datetime": {
        "type": "string",
        "format": "date-time",
        "description": "ISO 8601; without a zone, UK time; at most 5 minutes ahead",
    },
    "chi": {"type": "string", "description": "CHI number, 10 digits with its check digit"},
    "nhs": {"type": "string", "description": "NHS number, 10 digits, modulus 11"},
    "postcode": {"type": "string", "description": "UK postcode; normalised to 'EH1 1AA'"},
    "phone": {"type": "string", "description": "UK phone number; normalised to E.164"},
    "boolean": {"type": "boolean"},
    "council": {"type": "string", "description": "One of Scotland's 32 council areas"},
    "board": {"type": "string", "description": "One of NHS Scotland's 14 territorial boards"},
    "org": {"type": "string", "description": "An organisation id, e.g. city-of-edinburgh"},
}


def _field_schema(rule: FieldRule) -> dict[str, Any]:
    if rule.kind == "enum":
        schema: dict[str, Any] = {"type": "string", "enum": list(rule.symbols)}
    elif rule.kind == "enum_list":
        schema = {"type": "array", "items": {"type": "string", "enum": list(rule.symbols)}}
    else:
        schema = dict(_KIND_SCHEMAS.get(rule.kind, {"type": "string"}))
    if rule.max_length:
        schema["maxLength"] = rule.max_length
    schema["title"] = rule.label
    return schema


def _record_schema(dataset: Dataset) -> dict[str, Any]:
    properties = {
        "event_id": {
            "type": "string",
            "format": "uuid",
            "description": "Your id for the event; left out, the hub derives a stable one.",
        },
        "source_org": {
            "type": "string",
            "description": "Optional; if given it must be your own organisation id.",
        },
    }
    if dataset.derive_occurred_at is not None:
        properties["occurred_at"] = {
            **_KIND_SCHEMAS["datetime"],
            "description": "Optional; by default midnight of the effective date",
        }
    properties.update({rule.name: _field_schema(rule) for rule in dataset.rules})
    return {
        "type": "object",
        "title": dataset.record_name,
        "description": "Enum values are matched ignoring case, spaces and hyphens.",
        "properties": properties,
        "required": list(dataset.required_fields),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 description served at /openapi.json; record schemas follow the rules."""
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Accord ingest gateway",
            "version": "1",
            "description": (
                "Publish records to Accord. Your API token decides your organisation. "
                f"At most {MAX_RECORDS} records and {MAX_BODY_BYTES} bytes per request. "
                "A record is accepted only once Kafka has acknowledged it; on 503 send the "
                "same batch again (event ids are stable, so nothing doubles)."
            ),
        },
        "paths": {
            "/v1/datasets/{dataset}/records": {
                "post": {
                    "summary": "Publish a batch of records",
                    "security": [{"bearerAuth": []}],
                    "parameters": [
                        {
                            "name": "dataset",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": sorted(DATASETS)},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Records"},
                                        {
                                            "type": "object",
                                            "required": ["records"],
                                            "properties": {
                                                "records": {"$ref": "#/components/schemas/Records"}
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Each record's outcome",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/BatchResult"}
                                }
                            },
                        },
                        **{
                            code: {
                                "description": text,
                                "content": {"application/json": {"schema": error}},
                            }
                            for code, text in (
                                ("400", "Malformed JSON, wrong shape, or nested too deeply"),
                                ("401", "Missing, unknown, expired or revoked API token"),
                                ("403", "The organisation may not publish this dataset"),
                                ("404", "Unknown dataset"),
                                ("413", "Too many records or too many bytes"),
                                ("429", "Over this token's request rate; see Retry-After"),
                                ("503", "Kafka unavailable; nothing was accepted"),
                            )
                        },
                    },
                }
            },
            "/health": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Records": {
                    "type": "array",
                    "maxItems": MAX_RECORDS,
                    "items": {
                        "oneOf": [
                            {"$ref": f"#/components/schemas/{spec.record_name}"}
                            for spec in DATASETS.values()
                        ]
                    },
                },
                **{spec.record_name: _record_schema(spec) for spec in DATASETS.values()},
                "RecordOutcome": {
                    "type": "object",
                    "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "string", "enum": ["accepted", "rejected"]},
                        "event_id": {"type": "string", "format": "uuid"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string", "nullable": True},
                                    "rule": {"type": "string"},
                                    "message": {"type": "string"},
                                    "reason": {
                                        "type": "string",
                                        "description": "The same as message (older name).",
                                    },
                                },
                            },
                        },
                    },
                },
                "BatchResult": {
                    "type": "object",
                    "properties": {
                        "source_org": {"type": "string"},
                        "dataset": {"type": "string"},
                        "accepted": {"type": "integer"},
                        "rejected": {"type": "integer"},
                        "problems": {
                            "type": "array",
                            "description": "Every problem of the rejected records, counted "
                            "by field and rule.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string", "nullable": True},
                                    "rule": {"type": "string"},
                                    "count": {"type": "integer"},
                                },
                            },
                        },
                        "rejects_topic": {
                            "type": "string",
                            "description": "Where each rejected record went, with its "
                            "problems (`accord rejects`).",
                        },
                        "results": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/RecordOutcome"},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


async def _close_publisher(app: web.Application) -> None:
    publisher = app[STATE_KEY].get("publisher")
    if publisher is not None:
        await asyncio.to_thread(publisher.close)


def create_app(settings: Settings, tokens: TokenStore) -> web.Application:
    """The gateway's aiohttp application (bodies above MAX_BODY_BYTES get 413)."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[metrics.count_requests("gateway")]
    )
    app[SETTINGS_KEY] = settings
    app[TOKENS_KEY] = tokens
    app[STATE_KEY] = {}
    app[LIMITER_KEY] = RateLimiter(settings.gateway_rate_per_s, settings.gateway_rate_burst)
    app[COUNTS_KEY] = Counter()
    app.router.add_post("/v1/datasets/{dataset}/records", post_records)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.on_cleanup.append(_close_publisher)
    return app


def run_gateway(settings: Settings, tokens: TokenStore, host: str, port: int) -> None:
    """Serve HTTPS until SIGTERM or Ctrl-C."""
    context: ssl.SSLContext = server_tls(settings)
    log.info("gateway_started", host=host, port=port, tls=True, tokens_file=str(tokens.path))
    health = metrics.Health("gateway", metrics.standard_checks(settings, GATEWAY))
    metrics.serve(health, settings.metrics_host, settings.gateway_metrics_port)
    web.run_app(
        create_app(settings, tokens),
        host=host,
        port=port,
        ssl_context=context,
        print=None,
        access_log=None,
    )
