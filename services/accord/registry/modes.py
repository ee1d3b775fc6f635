"""Compatibility levels, and which (reader, writer) pairs each level checks.

Pure and small on purpose: which pairs a level requires is the part of the Confluent
contract that is easy to get subtly wrong (transitive against every version, otherwise
the latest only), so it lives here with its own table of tests. Whether a pair is
compatible is Apache Avro's business (`accord.registry.compatibility`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Who reads whom. BACKWARD: the new schema reads data written with an old one."""

    BACKWARD = "BACKWARD"  # reader = new schema, writer = old schema
    FORWARD = "FORWARD"  # reader = old schema, writer = new schema


LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)

# Partner subjects are contracts between organisations: every old version stays readable.
DEFAULT_LEVEL = "BACKWARD_TRANSITIVE"

INVALID_LEVEL_MESSAGE = (
    "Invalid compatibility level. Valid values are none, backward, forward, full, "
    "backward_transitive, forward_transitive, and full_transitive"
)


def parse_level(value: object) -> str | None:
    """The canonical level name for `value` (case-insensitive), or None if it is not one."""
    if not isinstance(value, str):
        return None
    level = value.strip().upper()
    return level if level in LEVELS else None


@dataclass(frozen=True)
class Pair:
    """One check: the old version it concerns and which way the data flows."""

    version: int
    direction: Direction


def pairs(level: str, versions: list[int]) -> list[Pair]:
    """The checks `level` requires of a new schema against a subject's live `versions`.

    Transitive levels check every version, the others only the latest; FULL checks both
    directions; NONE checks nothing. Versions are returned oldest first.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}")
    if level == "NONE" or not versions:
        return []
    against = sorted(versions) if level.endswith("_TRANSITIVE") else [max(versions)]
    base = level.removesuffix("_TRANSITIVE")
    directions = {
        "BACKWARD": [Direction.BACKWARD],
        "FORWARD": [Direction.FORWARD],
        "FULL": [Direction.BACKWARD, Direction.FORWARD],
    }[base]
    return [Pair(version, direction) for version in against for direction in directions]
