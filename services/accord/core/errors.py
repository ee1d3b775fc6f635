"""One exception tree. Messages name what failed and where."""

from __future__ import annotations


class AccordError(Exception):
    """Root of every error Accord raises on purpose."""


class ConfigurationError(AccordError):
    """A setting is missing or unusable; the process refuses to start."""


class StackError(AccordError):
    """The local stack could not be set up, started or reached."""


class MissingToolError(StackError):
    """A required tool (java, mvn, go) is not installed."""


class PortInUseError(StackError):
    """A port the stack needs is taken by another process."""


class InfrastructureError(AccordError):
    """Kafka, the schema registry or OPA failed; the operation released nothing."""


class PolicyUnavailableError(InfrastructureError):
    """OPA did not answer; nothing is shared until it does (fail closed)."""


class SchemaError(AccordError):
    """A schema is invalid, unknown to the registry, or a payload does not match it."""


class WireFormatError(SchemaError):
    """Bytes are not in the Confluent wire format (magic byte, schema id, Avro body)."""


class ForeignSchemaError(SchemaError):
    """A message's schema id is not registered under its topic's subject (`<topic>-value`)."""
