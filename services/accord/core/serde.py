"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Any standard Kafka client with a schema-registry serializer reads and writes these bytes.
Parsed schemas are cached per schema id, so decoding costs one registry call per schema,
not per record.
"""

from __future__ import annotations

import io
import json
import re
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
import requests

from accord.core.credentials import Credential, held_credential
from accord.core.errors import (
    ForeignSchemaError,
    InfrastructureError,
    SchemaError,
    WireFormatError,
)
from accord.core.settings import Settings

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
REGISTRY_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def load_schema_text(schemas_dir: Path, name: str) -> str:
    """The .avsc text of record `name` (e.g. "ShieldingListEntry")."""
    path = schemas_dir / f"{name}.avsc"
    if not path.is_file():
        raise SchemaError(f"no schema file {path}")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=256)
def parse_schema_text(text: str) -> Any:
    try:
        return fastavro.parse_schema(json.loads(text))
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc


# fastavro names the field at the end of its messages ("... on field given_name", "no value
# and no default for given_name"); everything before it may quote the value.
_FIELD_AT_END = re.compile(r"(?: on field | no default for )([A-Za-z_][A-Za-z0-9_.]*)\Z")


def _field_names(schema: Any, names: set[str] | None = None) -> set[str]:
    """Every field name of a parsed schema, nested records' included."""
    names = set() if names is None else names
    if isinstance(schema, list):
        for branch in schema:
            _field_names(branch, names)
    elif isinstance(schema, dict):
        for field in schema.get("fields") or ():
            names.add(field["name"])
            _field_names(field.get("type"), names)
        for key in ("items", "values"):
            if key in schema:
                _field_names(schema[key], names)
    return names


def encode_failure(record_name: str, exc: BaseException, schema: Any = None) -> str:
    """Why a record could not be encoded, in words that never quote it: the record type,
    the field when fastavro named one of the schema's own fields, and the error's type.
    fastavro's messages quote the offending value, which is personal data here."""
    match = _FIELD_AT_END.search(str(exc))
    field = match[1] if match else None
    if field is not None and schema is not None:
        known = _field_names(schema)
        field = field if field in known or field.rsplit(".", 1)[-1] in known else None
    where = f" (field {field})" if field else ""
    return f"a {record_name} record could not be encoded{where}: {type(exc).__name__}"


def encode_body(
    parsed_schema: Any, record: dict[str, Any], record_name: str | None = None
) -> bytes:
    """The Avro body of `record`; raises SchemaError naming the record type (`record_name`,
    else the schema's name), the field and the error type only (see `encode_failure`)."""
    buffer = io.BytesIO()
    try:
        fastavro.schemaless_writer(buffer, parsed_schema, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        if record_name is None:
            name = parsed_schema.get("name") if isinstance(parsed_schema, dict) else None
            record_name = str(name or "Avro").rsplit(".", 1)[-1]
        # Not chained: the cause's message quotes the value.
        raise SchemaError(encode_failure(record_name, exc, parsed_schema)) from None
    return buffer.getvalue()


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, bytes]:
    """Split wire-format bytes into (schema id, Avro body), or raise WireFormatError."""
    if data is None:
        raise WireFormatError("empty message (no value)")
    if len(data) < _HEADER.size:
        raise WireFormatError(f"message of {len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"unknown magic byte {magic}; expected {MAGIC_BYTE}")
    return schema_id, data[_HEADER.size :]


class SchemaRegistryClient:
    """The few calls of the Confluent Schema Registry REST API that the hub needs.

    Signs in with HTTP basic auth as `credential` and verifies the registry's TLS
    certificate against `ca` (build it with `registry_client`)."""

    def __init__(
        self, url: str, timeout_s: float = 10.0, *, credential: Credential, ca: Path | None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.principal = credential.principal
        self._session = requests.Session()
        self._session.headers["Content-Type"] = REGISTRY_CONTENT_TYPE
        self._session.auth = (credential.principal, credential.secret.get_secret_value())
        # Passed on every call: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = str(ca) if ca is not None else True

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._session.request(
                method, self.url + path, timeout=self.timeout_s, verify=self._verify, **kwargs
            )
        except requests.RequestException as exc:
            raise InfrastructureError(f"schema registry at {self.url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                message = f"{body.get('error_code')}: {body.get('message')}"
            except ValueError:
                message = response.text[:200]
            error = SchemaError if response.status_code < 500 else InfrastructureError
            raise error(f"schema registry {method} {path} failed: {message}")
        return response.json()

    def register(self, subject: str, schema_text: str) -> int:
        body = self._call("POST", f"/subjects/{subject}/versions", json={"schema": schema_text})
        return int(body["id"])

    def schema_by_id(self, schema_id: int) -> str:
        return self._call("GET", f"/schemas/ids/{schema_id}")["schema"]

    def subjects(self) -> list[str]:
        return self._call("GET", "/subjects")

    def versions(self, subject: str) -> list[int]:
        return self._call("GET", f"/subjects/{subject}/versions")

    def subjects_of(self, schema_id: int) -> list[str]:
        """The subjects under which the schema with this id is registered."""
        return self._call("GET", f"/schemas/ids/{schema_id}/subjects")


def registry_client(settings: Settings, principal: str) -> SchemaRegistryClient:
    """The registry client of a command whose own principal is `principal` (overridden
    by ACCORD_PRINCIPAL / ACCORD_CREDENTIALS_FILE, see `held_credential`)."""
    return SchemaRegistryClient(
        settings.schema_registry_url,
        credential=held_credential(settings, principal),
        ca=settings.trusted_ca,
    )


class AvroSerde:
    """Encodes records under a subject and decodes any wire-format message the registry knows."""

    def __init__(self, registry: SchemaRegistryClient, schemas_dir: Path) -> None:
        self.registry = registry
        self.schemas_dir = schemas_dir
        self._writers: dict[tuple[str, str], tuple[int, Any]] = {}
        self._readers: dict[int, Any] = {}
        self._hub_readers: dict[str, Any] = {}
        self._subjects: set[tuple[int, str]] = set()
        self._same: dict[tuple[int, str], bool] = {}
        self._lock = threading.Lock()

    def writer(self, subject: str, record_name: str) -> tuple[int, Any]:
        """(schema id, parsed schema) for writing `record_name` under `subject`; registers once."""
        cache_key = (subject, record_name)
        with self._lock:
            if cache_key not in self._writers:
                text = load_schema_text(self.schemas_dir, record_name)
                schema_id = self.registry.register(subject, text)
                self._writers[cache_key] = (schema_id, parse_schema_text(text))
                self._readers.setdefault(schema_id, self._writers[cache_key][1])
            return self._writers[cache_key]

    def encode(self, subject: str, record_name: str, record: dict[str, Any]) -> bytes:
        schema_id, parsed = self.writer(subject, record_name)
        return frame(schema_id, encode_body(parsed, record, record_name))

    def reader(self, schema_id: int) -> Any:
        with self._lock:
            parsed = self._readers.get(schema_id)
        if parsed is None:
            parsed = parse_schema_text(self.registry.schema_by_id(schema_id))
            with self._lock:
                self._readers[schema_id] = parsed
        return parsed

    def _registered_under(self, schema_id: int, subject: str) -> bool:
        with self._lock:
            if (schema_id, subject) in self._subjects:
                return True
        # Asked again each time when not (yet) registered there: a partner may register
        # the schema later. A schema id unknown to the registry is a SchemaError.
        if subject not in self.registry.subjects_of(schema_id):
            return False
        with self._lock:
            self._subjects.add((schema_id, subject))
        return True

    def _hub_reader(self, record_name: str) -> Any:
        with self._lock:
            parsed = self._hub_readers.get(record_name)
        if parsed is None:
            parsed = parse_schema_text(load_schema_text(self.schemas_dir, record_name))
            with self._lock:
                self._hub_readers[record_name] = parsed
        return parsed

    def decode_as(
        self, data: bytes | None, subject: str, record_name: str
    ) -> tuple[int, dict[str, Any]]:
        """(schema id, record) of a message published under `subject`, read as the hub's
        own `record_name` schema reads it.

        The schema id must be registered under `subject` (a partner's topic carries only
        its own subject's schemas) and be a record schema; the body is resolved against
        the hub's schema (Avro schema resolution), so fields added by an evolved schema
        are dropped and defaults fill the ones it lacks. Raises SchemaError (or its
        WireFormatError) for the message, InfrastructureError when the registry fails.
        Messages name the schema id and subject, never a value from the body.
        """
        schema_id, body = unframe(data)
        if not self._registered_under(schema_id, subject):
            raise ForeignSchemaError(
                f"schema id {schema_id} is not registered under subject {subject}"
            )
        writer = self.reader(schema_id)
        if not isinstance(writer, dict) or writer.get("type") != "record":
            kind = writer.get("type") if isinstance(writer, dict) else writer
            kind = kind if isinstance(kind, str) else type(kind).__name__
            raise SchemaError(f"schema id {schema_id} is a {kind} schema, not a record")
        hub = self._hub_reader(record_name)
        same = self._same.get((schema_id, record_name))
        if same is None:  # compared once per schema id: the parsed schemas are large
            same = self._same[(schema_id, record_name)] = writer == hub
        try:
            record = fastavro.schemaless_reader(io.BytesIO(body), writer, None if same else hub)
        except Exception as exc:  # untrusted bytes; fastavro's messages may quote values
            raise WireFormatError(
                f"Avro body of schema id {schema_id} cannot be read as {record_name} "
                f"({type(exc).__name__})"
            ) from None
        if not isinstance(record, dict):
            raise SchemaError(f"schema id {schema_id} did not yield a record")
        return schema_id, record

    def decode(self, data: bytes | None) -> tuple[int, dict[str, Any]]:
        """(schema id, record) from wire-format bytes; raises WireFormatError or SchemaError."""
        schema_id, body = unframe(data)
        parsed = self.reader(schema_id)
        try:
            return schema_id, fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
        except Exception as exc:  # untrusted bytes; fastavro's messages may quote values
            raise WireFormatError(
                f"Avro body does not match schema id {schema_id} ({type(exc).__name__})"
            ) from None
