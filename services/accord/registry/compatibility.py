"""Schema compatibility, decided by Apache Avro's own checker.

`avro.compatibility.ReaderWriterCompatibilityChecker` (the Python port of Avro's Java
`SchemaCompatibility`, which Confluent's registry also uses) answers "can a reader with
schema R read data written with schema W". This module only chooses the pairs (through
`accord.registry.modes`) and turns the checker's result into messages that name the field,
because "/fields/10/type" means nothing to a partner's data officer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from accord.registry.modes import Direction, pairs


class InvalidSchema(ValueError):
    """The text is not an Avro schema Apache Avro can parse."""


def parse(text: str) -> avro.schema.Schema:
    """The schema as Apache Avro parses it (the checker needs its own schema objects)."""
    try:
        return avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError) as exc:
        raise InvalidSchema(str(exc)) from exc


@dataclass(frozen=True)
class Problem:
    """One failed check: against which version, which way, and the checker's explanation."""

    version: int
    direction: Direction
    kinds: tuple[str, ...]  # e.g. ("TYPE_MISMATCH",)
    fields: tuple[str, ...]  # e.g. ("postcode (/fields/10/type)",)
    messages: tuple[str, ...]  # the checker's own words

    def __str__(self) -> str:
        reader, writer = ("new", "old") if self.direction is Direction.BACKWARD else ("old", "new")
        where = f" at {', '.join(self.fields)}" if self.fields else ""
        return (
            f"{'/'.join(self.kinds)}{where}: {'; '.join(self.messages)} "
            f"({self.direction.value}: the {reader} schema must read data written with the "
            f"{writer} schema, version {self.version})"
        )


def field_path(schema_json: Any, location: str) -> str:
    """'address.postcode' for a checker location like '/fields/3/type/fields/1/type'."""
    names: list[str] = []
    node = schema_json
    tokens = [t for t in location.split("/") if t]
    try:
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token == "fields":
                node = node["fields"][int(tokens[index + 1])]
                names.append(node["name"])
                index += 2
                continue
            if token in ("type", "items", "values"):
                node = node[token]
            elif token.isdigit() and isinstance(node, list):
                node = node[int(token)]  # a union branch
            else:
                break  # "symbols", "name", "size": the path names the field already
            index += 1
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return ".".join(names)


def check_pair(reader_text: str, writer_text: str, version: int, direction: Direction):
    """A Problem if a reader with `reader_text` cannot read data written with `writer_text`."""
    checker = ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(parse(reader_text), parse(writer_text))
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return None
    reader_json = json.loads(reader_text)
    # The checker's result keeps locations and messages as sets; "/" is its root marker.
    locations = sorted(loc for loc in result.locations if loc != "/")
    fields = []
    for location in locations:
        path = field_path(reader_json, location)
        fields.append(f"{path} ({location})" if path else location)
    kinds = tuple(dict.fromkeys(kind.name.upper() for kind in result.incompatibilities))
    messages = sorted(result.messages)
    if "READER_FIELD_MISSING_DEFAULT_VALUE" in kinds:
        # For this kind the checker's message is the bare field name; say what it means.
        reader, writer = ("new", "old") if direction is Direction.BACKWARD else ("old", "new")
        messages = [
            f"field '{m}' has no default in the {reader} schema and is missing from the "
            f"{writer} schema"
            if m.isidentifier()
            else m
            for m in messages
        ]
    return Problem(version, direction, kinds, tuple(fields), tuple(messages))


def check(level: str, new_text: str, history: dict[int, str]) -> list[Problem]:
    """Every problem `new_text` has against the versions in `history` that `level` requires."""
    problems = []
    for pair in pairs(level, list(history)):
        old_text = history[pair.version]
        if pair.direction is Direction.BACKWARD:
            problem = check_pair(new_text, old_text, pair.version, pair.direction)
        else:
            problem = check_pair(old_text, new_text, pair.version, pair.direction)
        if problem is not None:
            problems.append(problem)
    return problems
