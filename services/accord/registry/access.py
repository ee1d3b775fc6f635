"""Who may do what in the schema registry: pure rules over (principal, action, subject).

- `admin` may do everything; it alone changes compatibility (global or per subject) and
  deletes subjects or versions.
- The hub's services (worker, registry, gateway, console, audit) read every schema, by
  id and by subject. The worker registers the subjects of the topics it writes (`hub.*`,
  `share.*`, `rejects.*`); the gateway those it publishes to for partners (`partner.*`,
  `rejects.*`); the reviewer only `hub.match.decisions`.
- An organisation reads and registers only the subjects of its own partner topics
  (`[<prefix>]partner.<org>.*-value`) and of its own rejects (`rejects.<org>`, where
  `accord publish` sends its rejected rows), and reads those of its own lists
  (`share.<org>.*`).
- Anyone signed in may read the global compatibility level and the schema types.

A subject is read as `[<prefix>]<family>.<...>-value|-key`, where the prefix is any run of
dot-ended segments none of which names a family (so tenants and tests may prefix topics).
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.core.credentials import ADMIN, AUDIT, CONSOLE, GATEWAY, REGISTRY, REVIEWER, WORKER

READ, REGISTER, ADMINISTER = "read", "register", "administer"
FAMILIES = ("partner", "share", "rejects", "hub")
OWNED = ("partner", "share", "rejects")  # families whose second segment is an organisation
SERVICE_READERS = frozenset({WORKER, REGISTRY, GATEWAY, CONSOLE, AUDIT, REVIEWER})
SERVICE_WRITERS = {
    WORKER: frozenset({"hub", "share", "rejects"}),
    GATEWAY: frozenset({"partner", "rejects"}),
}


@dataclass(frozen=True)
class Subject:
    family: str | None  # partner, share, hub, or None for anything else
    org: str | None  # the organisation of a partner or share subject
    name: str  # the topic part after the family, e.g. "quarantine"


def parse_subject(subject: str) -> Subject:
    topic = subject.removesuffix("-value").removesuffix("-key")
    parts = topic.split(".")
    for index, part in enumerate(parts):
        if part in FAMILIES:
            rest = parts[index + 1 :]
            org = rest[0] if part in OWNED and rest else None
            return Subject(part, org or None, ".".join(rest))
    return Subject(None, None, topic)


def is_quarantine(subject: Subject) -> bool:
    return subject.family == "hub" and subject.name == "quarantine"


def reads_everything(principal: str) -> bool:
    return principal == ADMIN or principal in SERVICE_READERS


def may(principal: str, action: str, subject: str | None = None) -> bool:
    """Whether `principal` may `action` (read, register, administer) on `subject`.

    `subject` None means a subject-less route (global config, schema types)."""
    if principal == ADMIN:
        return True
    if action == ADMINISTER:
        return False
    if subject is None:
        return action == READ
    parsed = parse_subject(subject)
    if principal in SERVICE_READERS:
        if action == READ:
            return True
        families = SERVICE_WRITERS.get(principal, frozenset())
        if principal == REVIEWER:  # only the review decisions' subject
            return parsed.family == "hub" and parsed.name == "match.decisions"
        return parsed.family in families or (principal == GATEWAY and is_quarantine(parsed))
    # An organisation: only what is its own.
    if parsed.org != principal:
        return False
    if action == READ:
        return parsed.family in OWNED
    return parsed.family in ("partner", "rejects")
