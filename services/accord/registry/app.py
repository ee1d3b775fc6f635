"""A schema registry that speaks the Confluent Schema Registry REST API.

Schemas are kept in a compacted Kafka topic (`_schemas` by default) in the same key/value
shape Confluent uses, so the registry survives restarts by replaying that topic. One
instance writes; ids are global and the same schema text under two subjects shares an id,
as standard serializers expect. Compatibility rules (`/compatibility`, `/config`) are a
later step; `/config` already answers with the default level so clients can ask.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from accord.core.errors import SchemaError
from accord.core.kafka import COMPACTED, acknowledged_producer, ensure_topics, read_topic
from accord.core.logging import get_logger
from accord.core.serde import REGISTRY_CONTENT_TYPE, parse_schema_text
from accord.core.settings import Settings

log = get_logger("accord.registry")

DEFAULT_COMPATIBILITY = "BACKWARD_TRANSITIVE"


def canonical(schema_text: str) -> str:
    """One text per schema regardless of whitespace and key order, for de-duplication."""
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))


@dataclass
class SchemaStore:
    """In-memory view of the `_schemas` topic."""

    schemas: dict[int, str] = field(default_factory=dict)  # id -> canonical text
    ids_by_text: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, dict[int, int]] = field(default_factory=dict)  # subject -> version -> id

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        if key.get("keytype") != "SCHEMA" or value is None:
            return
        text = canonical(value["schema"])
        schema_id = int(value["id"])
        self.schemas[schema_id] = text
        self.ids_by_text.setdefault(text, schema_id)
        versions = self.subjects.setdefault(value["subject"], {})
        if value.get("deleted"):
            versions.pop(int(value["version"]), None)
        else:
            versions[int(value["version"])] = schema_id

    def next_id(self) -> int:
        return max(self.schemas, default=0) + 1


def error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"error_code": code, "message": message}, status=status, content_type=REGISTRY_CONTENT_TYPE
    )


def ok(body: Any) -> web.Response:
    return web.json_response(body, content_type=REGISTRY_CONTENT_TYPE)


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.schemas_topic
        self.store = SchemaStore()
        self._lock = asyncio.Lock()
        self._producer = None

    def load(self) -> None:
        bootstrap = self.settings.bootstrap_servers
        ensure_topics(bootstrap, {self.topic: COMPACTED}, partitions=1)
        count = 0
        for record in read_topic(bootstrap, self.topic):
            key = json.loads(record.key) if record.key else {}
            value = json.loads(record.value) if record.value else None
            self.store.apply(key, value)
            count += 1
        self._producer = acknowledged_producer(bootstrap, linger_ms=0, compression_type=None)
        log.info("registry_loaded", records=count, schemas=len(self.store.schemas))

    def _write(self, key: dict[str, Any], value: dict[str, Any]) -> None:
        future = self._producer.send(
            self.topic,
            key=json.dumps(key, sort_keys=True).encode(),
            value=json.dumps(value).encode(),
        )
        future.get(timeout=30)  # acknowledged before the client hears "registered"

    async def register(self, subject: str, schema_text: str) -> int:
        text = canonical(schema_text)
        async with self._lock:
            versions = self.store.subjects.get(subject, {})
            for schema_id in versions.values():
                if self.store.schemas[schema_id] == text:
                    return schema_id
            schema_id = self.store.ids_by_text.get(text) or self.store.next_id()
            version = max(versions, default=0) + 1
            key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
            value = {
                "subject": subject,
                "version": version,
                "id": schema_id,
                "schema": text,
                "deleted": False,
            }
            await asyncio.get_running_loop().run_in_executor(None, self._write, key, value)
            self.store.apply(key, value)
            log.info("schema_registered", subject=subject, version=version, id=schema_id)
            return schema_id

    # --- handlers ---------------------------------------------------------------------

    async def list_subjects(self, request: web.Request) -> web.Response:
        return ok(sorted(s for s, v in self.store.subjects.items() if v))

    async def list_versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.store.subjects.get(subject)
        if not versions:
            return error(404, 40401, f"Subject '{subject}' not found.")
        return ok(sorted(versions))

    def _version(self, request: web.Request) -> tuple[str, int, int] | web.Response:
        subject = request.match_info["subject"]
        versions = self.store.subjects.get(subject)
        if not versions:
            return error(404, 40401, f"Subject '{subject}' not found.")
        raw = request.match_info["version"]
        if raw in ("latest", "-1"):
            version = max(versions)
        else:
            try:
                version = int(raw)
            except ValueError:
                return error(
                    422,
                    42202,
                    f"The specified version '{raw}' is not a valid version id. Allowed values"
                    ' are between [1, 2^31-1] and the string "latest"',
                )
        if version not in versions:
            return error(404, 40402, f"Version {version} not found.")
        return subject, version, versions[version]

    async def get_version(self, request: web.Request) -> web.Response:
        found = self._version(request)
        if isinstance(found, web.Response):
            return found
        subject, version, schema_id = found
        return ok(
            {
                "subject": subject,
                "version": version,
                "id": schema_id,
                "schema": self.store.schemas[schema_id],
            }
        )

    async def get_version_schema(self, request: web.Request) -> web.Response:
        found = self._version(request)
        if isinstance(found, web.Response):
            return found
        return ok(json.loads(self.store.schemas[found[2]]))

    async def get_schema(self, request: web.Request) -> web.Response:
        try:
            schema_id = int(request.match_info["id"])
        except ValueError:
            return error(404, 40403, "Schema not found")
        text = self.store.schemas.get(schema_id)
        if text is None:
            return error(404, 40403, "Schema not found")
        return ok({"schema": text})

    async def _read_schema(self, request: web.Request) -> str | web.Response:
        try:
            body = await request.json()
            schema_text = body["schema"]
        except (ValueError, KeyError, TypeError):
            return error(422, 42201, "Invalid schema: the body must be JSON with a 'schema' string")
        if body.get("schemaType", "AVRO") != "AVRO":
            return error(422, 42201, f"Invalid schema: schemaType {body['schemaType']} unsupported")
        try:
            parse_schema_text(canonical(schema_text))
        except (SchemaError, ValueError) as exc:
            return error(422, 42201, f"Invalid schema: {exc}")
        return schema_text

    async def post_version(self, request: web.Request) -> web.Response:
        schema_text = await self._read_schema(request)
        if isinstance(schema_text, web.Response):
            return schema_text
        try:
            schema_id = await self.register(request.match_info["subject"], schema_text)
        except Exception as exc:  # the store (Kafka) failed: say so, register nothing
            log.error("schema_store_failed", error=str(exc))
            return error(500, 50001, f"Error in the backend data store: {exc}")
        return ok({"id": schema_id})

    async def lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        schema_text = await self._read_schema(request)
        if isinstance(schema_text, web.Response):
            return schema_text
        versions = self.store.subjects.get(subject)
        if not versions:
            return error(404, 40401, f"Subject '{subject}' not found.")
        text = canonical(schema_text)
        for version, schema_id in sorted(versions.items()):
            if self.store.schemas[schema_id] == text:
                return ok({"subject": subject, "version": version, "id": schema_id, "schema": text})
        return error(404, 40403, "Schema not found")

    async def get_config(self, request: web.Request) -> web.Response:
        return ok({"compatibilityLevel": DEFAULT_COMPATIBILITY})

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/", lambda r: ok({})),
                web.get("/subjects", self.list_subjects),
                web.get("/subjects/{subject}/versions", self.list_versions),
                web.post("/subjects/{subject}/versions", self.post_version),
                web.get("/subjects/{subject}/versions/{version}", self.get_version),
                web.get("/subjects/{subject}/versions/{version}/schema", self.get_version_schema),
                web.post("/subjects/{subject}", self.lookup),
                web.get("/schemas/ids/{id}", self.get_schema),
                web.get("/config", self.get_config),
            ]
        )
        return app


def serve(settings: Settings, host: str, port: int) -> None:
    registry = Registry(settings)
    registry.load()
    log.info("registry_listening", address=f"{host}:{port}")
    web.run_app(registry.app(), host=host, port=port, print=None, access_log=None)
