"""A schema registry that speaks the Confluent Schema Registry REST API.

State lives in a compacted Kafka topic (`_schemas` by default) in the key/value shape
Confluent uses (SCHEMA records per subject version, CONFIG records per compatibility level),
so the registry survives restarts by replaying that topic. One instance writes; ids are
global and the same schema text under two subjects shares an id, as standard serializers
expect. New versions are checked with Apache Avro's own compatibility checker against the
versions the subject's level requires (default BACKWARD_TRANSITIVE); errors carry
Confluent's error codes and messages so standard clients understand them.

It serves HTTPS only (the stack's certificate, `accord.stack.tls`), and every route but
`GET /` (a liveness probe that says nothing) needs HTTP basic auth checked against the
user store (`accord.registry.users`); what each principal may do is
`accord.registry.access`. 401 means not signed in, 403 signed in but not allowed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from accord.core import metrics
from accord.core.credentials import REGISTRY
from accord.core.errors import SchemaError
from accord.core.kafka import acknowledged_producer, connection, read_topic
from accord.core.logging import get_logger
from accord.core.serde import REGISTRY_CONTENT_TYPE, parse_schema_text
from accord.core.settings import Settings
from accord.registry import access, compatibility
from accord.registry.modes import DEFAULT_LEVEL, INVALID_LEVEL_MESSAGE, parse_level
from accord.registry.users import UserStore
from accord.stack.tls import server_tls

log = get_logger("accord.registry")

MAX_VERSION = 2**31 - 1


def canonical(schema_text: str) -> str:
    """One text per schema regardless of whitespace and key order, for de-duplication."""
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))


@dataclass
class SchemaStore:
    """In-memory view of the `_schemas` topic; `apply` is the only way it changes."""

    schemas: dict[int, str] = field(default_factory=dict)  # id -> canonical text
    ids_by_text: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, dict[int, int]] = field(default_factory=dict)  # live: version -> id
    deleted: dict[str, dict[int, int]] = field(default_factory=dict)  # soft-deleted versions
    global_level: str | None = None
    subject_levels: dict[str, str] = field(default_factory=dict)

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value)
        elif keytype == "CONFIG":
            level = parse_level((value or {}).get("compatibilityLevel"))
            subject = key.get("subject")
            if subject is None:
                self.global_level = level
            elif level is None:
                self.subject_levels.pop(subject, None)
            else:
                self.subject_levels[subject] = level

    def _apply_schema(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject, version = key["subject"], int(key["version"])
        live = self.subjects.setdefault(subject, {})
        deleted = self.deleted.setdefault(subject, {})
        live.pop(version, None)
        deleted.pop(version, None)
        if value is None:  # a tombstone: the version was deleted permanently
            return
        text = canonical(value["schema"])
        schema_id = int(value["id"])
        self.schemas[schema_id] = text
        self.ids_by_text.setdefault(text, schema_id)
        (deleted if value.get("deleted") else live)[version] = schema_id

    def next_id(self) -> int:
        return max(self.schemas, default=0) + 1

    def next_version(self, subject: str) -> int:
        """Versions are never reused, not even those of soft-deleted schemas."""
        used = [*self.subjects.get(subject, {}), *self.deleted.get(subject, {})]
        return max(used, default=0) + 1

    def level(self, subject: str) -> str:
        return self.subject_levels.get(subject) or self.global_level or DEFAULT_LEVEL

    def history(self, subject: str) -> dict[int, str]:
        """Live version -> schema text: what a new version is checked against."""
        return {v: self.schemas[i] for v, i in sorted(self.subjects.get(subject, {}).items())}


class RegistryError(Exception):
    """An answer in Confluent's error shape: HTTP status, error_code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def invalid_version(raw: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{raw}' is not a valid version id. Allowed values are between"
        ' [1, 2^31-1] and the string "latest"',
    )


def ok(body: Any) -> web.Response:
    return web.json_response(body, content_type=REGISTRY_CONTENT_TYPE)


@web.middleware
async def confluent_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every refusal leaves as {"error_code", "message"}, as Confluent's clients expect."""
    try:
        return await handler(request)
    except RegistryError as exc:
        return web.json_response(
            {"error_code": exc.code, "message": exc.message},
            status=exc.status,
            content_type=REGISTRY_CONTENT_TYPE,
        )


PRINCIPAL_KEY = "accord.principal"
OPEN_ROUTES = {("GET", "/")}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep and user else None


def unauthorised() -> web.Response:
    return web.json_response(
        {"error_code": 40101, "message": "Unauthorized: sign in with HTTP basic auth"},
        status=401,
        content_type=REGISTRY_CONTENT_TYPE,
        headers={"WWW-Authenticate": 'Basic realm="accord-registry"'},
    )


def forbidden(principal: str, action: str, subject: str | None) -> RegistryError:
    target = f"subject '{subject}'" if subject else "this registry"
    return RegistryError(403, 40301, f"User {principal} is denied operation {action} on {target}")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.schemas_topic
        self.store = SchemaStore()
        self._lock = asyncio.Lock()
        self._producer = None
        self.users = UserStore(settings.registry_users_path)

    def _action(self, request: web.Request) -> tuple[str, str | None] | None:
        """(action, subject) a request needs, or None for schema-id routes."""
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        method = request.method
        subject = request.match_info.get("subject")
        if template.startswith("/schemas/ids/"):
            return None
        if template.startswith("/config"):
            return (access.READ if method == "GET" else access.ADMINISTER), subject
        if method == "DELETE":
            return access.ADMINISTER, subject
        if method == "POST" and template == "/subjects/{subject}/versions":
            return access.REGISTER, subject
        return access.READ, subject

    def _may_read_id(self, principal: str, raw_id: str) -> bool:
        if access.reads_everything(principal):
            return True
        try:
            schema_id = int(raw_id)
        except ValueError:
            return False
        uses = {
            subject
            for table in (self.store.subjects, self.store.deleted)
            for subject, versions in table.items()
            if schema_id in versions.values()
        }
        return any(access.may(principal, access.READ, subject) for subject in uses)

    @web.middleware
    async def authorise(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (request.method, request.path) in OPEN_ROUTES:
            return await handler(request)
        credentials = basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None or not await asyncio.get_running_loop().run_in_executor(
            None, self.users.verify, *credentials
        ):
            log.warning(
                "registry_unauthenticated",
                principal=credentials[0][:64] if credentials else None,
                method=request.method,
                path=request.path[:200],
            )
            return unauthorised()
        principal = credentials[0]
        request[PRINCIPAL_KEY] = principal
        needed = self._action(request)
        if needed is None:
            allowed = self._may_read_id(principal, request.match_info.get("id", ""))
            needed = (access.READ, None)
        else:
            allowed = access.may(principal, *needed)
        if not allowed:
            log.warning("registry_denied", principal=principal, action=needed[0], subject=needed[1])
            raise forbidden(principal, *needed)
        return await handler(request)

    def load(self) -> None:
        # The administrator creates the topic (accord.access.provision); the registry's
        # principal may only read and write it.
        conn = connection(self.settings)
        count = skipped = 0
        for record in read_topic(conn, self.topic):
            try:
                key = json.loads(record.key) if record.key else {}
                value = json.loads(record.value) if record.value else None
                if not isinstance(key, dict) or not isinstance(value, dict | None):
                    raise ValueError("not a registry record")
            except ValueError:
                # Not ours (only the registry may write here, but a store must not be
                # stopped by one bad record): skipped, and counted.
                skipped += 1
                log.warning("schema_store_record_skipped", offset=record.offset)
                continue
            self.store.apply(key, value)
            count += 1
        self._producer = acknowledged_producer(conn, linger_ms=0, compression_type=None)
        log.info(
            "registry_loaded",
            records=count,
            schemas=len(self.store.schemas),
            level=self.store.global_level or DEFAULT_LEVEL,
        )

    def _write(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        future = self._producer.send(
            self.topic,
            key=json.dumps(key, sort_keys=True).encode(),
            value=None if value is None else json.dumps(value).encode(),
        )
        future.get(timeout=30)  # acknowledged before the client hears "done"

    async def _store(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Write one record to `_schemas`, then apply it: memory never runs ahead of Kafka."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._write, key, value)
        except Exception as exc:  # the store (Kafka) failed: say so, change nothing
            log.error("schema_store_failed", keytype=key.get("keytype"), error=str(exc))
            raise RegistryError(500, 50001, f"Error in the backend data store: {exc}") from exc
        self.store.apply(key, value)

    @staticmethod
    def _schema_key(subject: str, version: int) -> dict[str, Any]:
        return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}

    async def register(self, subject: str, schema_text: str) -> int:
        """The id of `schema_text` under `subject`, registering a new version if allowed."""
        text = canonical(schema_text)
        async with self._lock:
            for schema_id in self.store.subjects.get(subject, {}).values():
                if self.store.schemas[schema_id] == text:
                    return schema_id
            level = self.store.level(subject)
            problems = compatibility.check(level, text, self.store.history(subject))
            if problems:
                log.info("schema_refused", subject=subject, level=level, problems=len(problems))
                details = ", ".join(f"{{{p}}}" for p in problems)
                raise RegistryError(
                    409,
                    409,
                    "Schema being registered is incompatible with an earlier schema for subject"
                    f" \"{subject}\", details: [{details}, {{compatibility: '{level}'}}]",
                )
            schema_id = self.store.ids_by_text.get(text) or self.store.next_id()
            version = self.store.next_version(subject)
            value = {
                "subject": subject,
                "version": version,
                "id": schema_id,
                "schema": text,
                "deleted": False,
            }
            await self._store(self._schema_key(subject, version), value)
            log.info("schema_registered", subject=subject, version=version, id=schema_id)
            return schema_id

    # --- reading requests ------------------------------------------------------------

    def _live(self, subject: str) -> dict[int, int]:
        versions = self.store.subjects.get(subject)
        if not versions:
            raise subject_not_found(subject)
        return versions

    def _version(self, subject: str, raw: str, versions: dict[int, int]) -> int:
        """The version a path names ("latest", -1 or 1..2^31-1) among `versions`."""
        if raw in ("latest", "-1"):
            return max(versions)
        try:
            version = int(raw)
        except ValueError:
            raise invalid_version(raw) from None
        if not 1 <= version <= MAX_VERSION:
            raise invalid_version(raw)
        if version not in versions:
            raise RegistryError(404, 40402, f"Version {version} not found.")
        return version

    async def _read_schema(self, request: web.Request) -> str:
        """The canonical text of the request's Avro schema, or a 42201 refusal."""
        try:
            body = await request.json()
            schema_text = body["schema"]
            if not isinstance(schema_text, str):
                raise TypeError("schema must be a string")
        except (ValueError, KeyError, TypeError):
            raise RegistryError(
                422, 42201, "Invalid schema: the body must be JSON with a 'schema' string"
            ) from None
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type != "AVRO":
            raise RegistryError(422, 42201, f"Invalid schema: schemaType {schema_type} unsupported")
        if body.get("references"):
            raise RegistryError(422, 42201, "Invalid schema: schema references are unsupported")
        try:
            text = canonical(schema_text)
            parse_schema_text(text)
            compatibility.parse(text)
        except (SchemaError, compatibility.InvalidSchema, ValueError) as exc:
            raise RegistryError(422, 42201, f"Invalid schema: {exc}") from None
        return text

    async def _read_level(self, request: web.Request) -> str:
        try:
            body = await request.json()
            level = parse_level(body.get("compatibility") or body.get("compatibilityLevel"))
        except (ValueError, AttributeError):
            level = None
        if level is None:
            raise RegistryError(422, 42203, INVALID_LEVEL_MESSAGE)
        return level

    # --- subjects and versions -------------------------------------------------------

    async def list_subjects(self, request: web.Request) -> web.Response:
        names = {s for s, v in self.store.subjects.items() if v}
        if _flag(request, "deleted"):
            names |= {s for s, v in self.store.deleted.items() if v}
        return ok(sorted(s for s in names if self._readable(request, s)))

    @staticmethod
    def _readable(request: web.Request, subject: str) -> bool:
        return access.may(request[PRINCIPAL_KEY], access.READ, subject)

    async def list_versions(self, request: web.Request) -> web.Response:
        return ok(sorted(self._live(request.match_info["subject"])))

    async def post_version(self, request: web.Request) -> web.Response:
        text = await self._read_schema(request)
        return ok({"id": await self.register(request.match_info["subject"], text)})

    async def get_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self._live(subject)
        version = self._version(subject, request.match_info["version"], versions)
        schema_id = versions[version]
        body = {"subject": subject, "version": version, "id": schema_id}
        return ok({**body, "schema": self.store.schemas[schema_id]})

    async def get_version_schema(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self._live(subject)
        version = self._version(subject, request.match_info["version"], versions)
        return ok(json.loads(self.store.schemas[versions[version]]))

    async def lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        text = await self._read_schema(request)
        versions = dict(self.store.subjects.get(subject, {}))
        if _flag(request, "deleted"):
            versions |= self.store.deleted.get(subject, {})
        if not versions:
            raise subject_not_found(subject)
        for version, schema_id in sorted(versions.items()):
            if self.store.schemas[schema_id] == text:
                return ok({"subject": subject, "version": version, "id": schema_id, "schema": text})
        raise RegistryError(404, 40403, "Schema not found")

    async def delete_subject(self, request: web.Request) -> web.Response:
        """Soft delete (versions hidden, ids kept), or with ?permanent=true, tombstones."""
        subject = request.match_info["subject"]
        async with self._lock:
            live = self.store.subjects.get(subject, {})
            deleted = self.store.deleted.get(subject, {})
            if not live and not deleted:
                raise subject_not_found(subject)
            if _flag(request, "permanent"):
                if live:
                    raise RegistryError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently"
                        " deleted",
                    )
                versions = sorted(deleted)
                for version in versions:
                    await self._store(self._schema_key(subject, version), None)
            else:
                if not live:
                    raise RegistryError(
                        404,
                        40404,
                        f"Subject '{subject}' was soft deleted.Set permanent=true to delete"
                        " permanently",
                    )
                versions = sorted(live)
                for version in versions:
                    await self._soft_delete(subject, version, live[version])
        log.info("subject_deleted", subject=subject, permanent=_flag(request, "permanent"))
        return ok(versions)

    async def delete_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        raw = request.match_info["version"]
        permanent = _flag(request, "permanent")
        async with self._lock:
            live = self.store.subjects.get(subject, {})
            deleted = self.store.deleted.get(subject, {})
            if not live and not deleted:
                raise subject_not_found(subject)
            if permanent:
                version = self._version(subject, raw, {**live, **deleted})
                if version in live:
                    raise RegistryError(
                        404,
                        40407,
                        f"Subject '{subject}' Version {version} was not deleted first before"
                        " being permanently deleted",
                    )
                await self._store(self._schema_key(subject, version), None)
            else:
                version = self._version(subject, raw, {**live, **deleted})
                if version in deleted:
                    raise RegistryError(
                        404,
                        40406,
                        f"Subject '{subject}' Version {version} was soft deleted.Set"
                        " permanent=true to delete permanently",
                    )
                await self._soft_delete(subject, version, live[version])
        log.info("version_deleted", subject=subject, version=version, permanent=permanent)
        return ok(version)

    async def _soft_delete(self, subject: str, version: int, schema_id: int) -> None:
        value = {
            "subject": subject,
            "version": version,
            "id": schema_id,
            "schema": self.store.schemas[schema_id],
            "deleted": True,
        }
        await self._store(self._schema_key(subject, version), value)

    # --- schemas by id ---------------------------------------------------------------

    def _schema_id(self, request: web.Request) -> int:
        raw = request.match_info["id"]
        schema_id = int(raw) if raw.isdigit() else None
        if schema_id is None or schema_id not in self.store.schemas:
            raise RegistryError(404, 40403, f"Schema {raw} not found")
        return schema_id

    async def get_schema(self, request: web.Request) -> web.Response:
        return ok({"schema": self.store.schemas[self._schema_id(request)]})

    async def get_schema_text(self, request: web.Request) -> web.Response:
        return ok(json.loads(self.store.schemas[self._schema_id(request)]))

    def _uses(self, schema_id: int) -> list[tuple[str, int]]:
        return sorted(
            (subject, version)
            for subject, versions in self.store.subjects.items()
            for version, sid in versions.items()
            if sid == schema_id
        )

    async def get_schema_versions(self, request: web.Request) -> web.Response:
        uses = [u for u in self._uses(self._schema_id(request)) if self._readable(request, u[0])]
        return ok([{"subject": s, "version": v} for s, v in uses])

    async def get_schema_subjects(self, request: web.Request) -> web.Response:
        uses = self._uses(self._schema_id(request))
        return ok(sorted({s for s, _ in uses if self._readable(request, s)}))

    async def get_schema_types(self, request: web.Request) -> web.Response:
        return ok(["AVRO"])

    # --- compatibility ---------------------------------------------------------------

    def _verdict(self, request: web.Request, problems: list) -> web.Response:
        body: dict[str, Any] = {"is_compatible": not problems}
        if _flag(request, "verbose"):
            body["messages"] = [str(p) for p in problems]
        return ok(body)

    async def check_all(self, request: web.Request) -> web.Response:
        """The check registering would make: every version the subject's level requires."""
        subject = request.match_info["subject"]
        text = await self._read_schema(request)
        level = self.store.level(subject)
        return self._verdict(request, compatibility.check(level, text, self.store.history(subject)))

    async def check_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        text = await self._read_schema(request)
        versions = self._live(subject)
        version = self._version(subject, request.match_info["version"], versions)
        old = {version: self.store.schemas[versions[version]]}
        return self._verdict(request, compatibility.check(self.store.level(subject), text, old))

    # --- config ----------------------------------------------------------------------

    @staticmethod
    def _config_key(subject: str | None) -> dict[str, Any]:
        return {"keytype": "CONFIG", "subject": subject, "magic": 0}

    async def get_config(self, request: web.Request) -> web.Response:
        return ok({"compatibilityLevel": self.store.global_level or DEFAULT_LEVEL})

    async def put_config(self, request: web.Request) -> web.Response:
        level = await self._read_level(request)
        await self._store(self._config_key(None), {"compatibilityLevel": level})
        log.info("compatibility_set", subject=None, level=level)
        return ok({"compatibility": level})

    async def delete_config(self, request: web.Request) -> web.Response:
        old = self.store.global_level or DEFAULT_LEVEL
        await self._store(self._config_key(None), None)
        log.info("compatibility_reset", subject=None, level=DEFAULT_LEVEL)
        return ok({"compatibilityLevel": old})

    def _subject_level(self, subject: str) -> str:
        level = self.store.subject_levels.get(subject)
        if level is None:
            raise RegistryError(
                404,
                40408,
                f"Subject '{subject}' does not have subject-level compatibility configured",
            )
        return level

    async def get_subject_config(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if _flag(request, "defaultToGlobal"):
            return ok({"compatibilityLevel": self.store.level(subject)})
        return ok({"compatibilityLevel": self._subject_level(subject)})

    async def put_subject_config(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        level = await self._read_level(request)
        await self._store(self._config_key(subject), {"compatibilityLevel": level})
        log.info("compatibility_set", subject=subject, level=level)
        return ok({"compatibility": level})

    async def delete_subject_config(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        old = self._subject_level(subject)
        await self._store(self._config_key(subject), None)
        log.info("compatibility_reset", subject=subject)
        return ok({"compatibilityLevel": old})

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[metrics.count_requests("registry"), confluent_errors, self.authorise]
        )
        app.add_routes(
            [
                web.get("/", lambda r: ok({})),
                web.get("/subjects", self.list_subjects),
                web.get("/subjects/{subject}/versions", self.list_versions),
                web.post("/subjects/{subject}/versions", self.post_version),
                web.get("/subjects/{subject}/versions/{version}", self.get_version),
                web.delete("/subjects/{subject}/versions/{version}", self.delete_version),
                web.get("/subjects/{subject}/versions/{version}/schema", self.get_version_schema),
                web.post("/subjects/{subject}", self.lookup),
                web.delete("/subjects/{subject}", self.delete_subject),
                web.get("/schemas/types", self.get_schema_types),
                web.get("/schemas/ids/{id}", self.get_schema),
                web.get("/schemas/ids/{id}/schema", self.get_schema_text),
                web.get("/schemas/ids/{id}/versions", self.get_schema_versions),
                web.get("/schemas/ids/{id}/subjects", self.get_schema_subjects),
                web.post("/compatibility/subjects/{subject}/versions", self.check_all),
                web.post(
                    "/compatibility/subjects/{subject}/versions/{version}", self.check_version
                ),
                web.get("/config", self.get_config),
                web.put("/config", self.put_config),
                web.delete("/config", self.delete_config),
                web.get("/config/{subject}", self.get_subject_config),
                web.put("/config/{subject}", self.put_subject_config),
                web.delete("/config/{subject}", self.delete_subject_config),
            ]
        )
        return app


def serve(settings: Settings, host: str, port: int) -> None:
    registry = Registry(settings)
    registry.load()
    log.info("registry_listening", address=f"{host}:{port}", tls=True)
    # Ready when Kafka answers (its store is the _schemas topic); it never asks OPA.
    health = metrics.Health("registry", metrics.standard_checks(settings, REGISTRY, opa=False))
    metrics.serve(health, settings.metrics_host, settings.registry_metrics_port)
    web.run_app(
        registry.app(),
        host=host,
        port=port,
        ssl_context=server_tls(settings),
        print=None,
        access_log=None,
    )
