"""A coordinator's support list, read from the recipient topic as their own system would.

The recipient topic is compacted and keyed by case: the latest record per key is the
case, a tombstone removes it (its `accord-removed-because` header says why, as a code
the recipient may know: `accord.pipeline.removal`). Exports neutralise spreadsheet
formulas, because names and addresses come from other organisations' systems and a
cell starting with `=` would run in the coordinator's spreadsheet.

Case references. A case is keyed by its pseudonymous person key (64 hex characters),
which nobody can read out on the phone. Its reference is the key's first 50 bits in
Crockford's base 32 (digits and upper-case letters without I, L, O and U, so nothing
reads as another character), grouped `XXXX-XXXX-XX`: derived from the key alone (the
same on every list and every run, no personal data), short enough to say, and read
back leniently (lower case, spaces, no dashes; I and L as 1, O as 0). Within one list
of a million cases two references collide with a chance of about 1 in 2,000; the
commands then refuse the reference as ambiguous rather than pick one.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kafka import TopicPartition

from accord.core.kafka import consumer as kafka_consumer
from accord.core.kafka import read_topic
from accord.core.orgs import suggest
from accord.core.scotland import COUNCIL_AREAS, org_id
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import Topics

PRIORITY_RANK = {"URGENT": 0, "HIGH": 1, "MEDIUM": 2, "ROUTINE": 3}
COLUMNS = (
    "reference",
    "priority",
    "needs",
    "latest_outcome",
    "latest_outcome_at",
    "given_name",
    "family_name",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "contact_phone",
    "is_shielding",
    "lives_alone",
    "priority_reasons",
    "opened_at",
    "agreement_id",
    "case_key",
)
# What `--follow` names when a case changes, in the order it says them.
WATCHED = (
    "priority",
    "needs",
    "latest_outcome",
    "given_name",
    "family_name",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "contact_phone",
    "is_shielding",
    "lives_alone",
)
LABELS = {
    "latest_outcome": "latest outcome",
    "latest_outcome_at": "outcome at",
    "given_name": "given name",
    "family_name": "family name",
    "address_line1": "address",
    "address_line2": "address line 2",
    "contact_phone": "phone",
    "is_shielding": "shielding",
    "lives_alone": "lives alone",
    "priority_reasons": "why",
    "opened_at": "opened",
}
# Why a person left the list (`accord.pipeline.removal` codes), in plain words.
REMOVED_BECAUSE = {
    "closed": "case closed: no open need left",
    "merged": "merged into another case on the list (same person)",
    "opted_out": "the person opted out or withdrew consent",
    "agreement_suspended": "the agreement was suspended",
    "agreement_expired": "the agreement expired",
    "no_longer_shared": "no longer shared with you under the agreement",
}
REMOVAL_HEADER = "accord-removed-because"

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_BITS = 50
_READ_AS = {"I": "1", "L": "1", "O": "0"}


def case_reference(case_key: str) -> str:
    """The case's reference: its key's first 50 bits in Crockford base 32, XXXX-XXXX-XX."""
    head = case_key[:13].lower()
    if len(head) < 13 or any(c not in "0123456789abcdef" for c in head):
        head = hashlib.sha256(case_key.encode()).hexdigest()[:13]  # not a hub key: still stable
    bits = int(head, 16) >> (13 * 4 - REFERENCE_BITS)
    chars = "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(REFERENCE_BITS - 5, -1, -5))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def normalise_reference(text: str) -> str:
    """A reference as typed or heard, in its printed form; ValueError if it cannot be one."""
    chars = "".join(_READ_AS.get(c, c) for c in text.upper() if c not in " -_.")
    if len(chars) != REFERENCE_BITS // 5 or any(c not in CROCKFORD for c in chars):
        raise ValueError(
            f"{text!r} is not a case reference: ten letters and digits, e.g. 7KQM-2XPA-9R "
            "(the first column of `accord cases`)"
        )
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def find_case(view: dict[str, dict[str, Any]], reference: str) -> dict[str, Any]:
    """The case on the list with this reference; LookupError naming what went wrong."""
    wanted = normalise_reference(reference)
    found = [case for key, case in view.items() if case_reference(key) == wanted]
    if not found:
        raise LookupError(f"no case {wanted} on this list (closed, removed or mistyped?)")
    if len(found) > 1:
        raise LookupError(
            f"{len(found)} cases on this list share the reference {wanted}; use the case "
            "key (the last column of the CSV export) instead"
        )
    return found[0]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def recipient_for(council: str) -> str:
    """The organisation id of a council given by name ("City of Edinburgh") or id."""
    for name in COUNCIL_AREAS:
        if council.strip().casefold() in (name.casefold(), org_id(name)):
            return org_id(name)
    raise ValueError(
        f"unknown council {council!r}; use one of Scotland's 32 council areas, e.g. 'Fife'"
    )


def apply(
    view: dict[str, dict[str, Any]], key: bytes, value: bytes | None, serde: AvroSerde
) -> dict[str, Any] | None:
    """Apply one record of the compacted topic to the view; returns the new case or None."""
    case_key = key.decode()
    if value is None:
        view.pop(case_key, None)
        return None
    case = serde.decode(value)[1]
    view[case_key] = case
    return case


@dataclass
class ListRead:
    """A recipient's list as read: the open cases, and enough to say why it is empty."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    topic_exists: bool = False
    records: int = 0  # records read (shares and tombstones)
    removed: int = 0  # people whose latest record is a tombstone
    removed_because: Counter[str] = field(default_factory=Counter)  # of those, why


def read_list(settings: Settings, serde: AvroSerde, recipient: str) -> ListRead:
    """The recipient's current list, read from the beginning of its compacted topic."""
    topic = Topics(settings).share(recipient)
    read = ListRead(topic_exists=topic_exists(settings, topic))
    if not read.topic_exists:
        return read
    gone: dict[str, str] = {}
    for message in read_topic(settings, topic):
        read.records += 1
        if apply(read.cases, message.key, message.value, serde) is None:
            gone[message.key.decode()] = removal_reason(message.headers)
        else:
            gone.pop(message.key.decode(), None)
    read.removed = len(gone)
    read.removed_because = Counter(gone.values())
    return read


def removal_reason(headers: list[tuple[str, bytes]] | None) -> str:
    """Why a tombstone removed a person, in plain words (the hub's code, when given)."""
    code = dict(headers or ()).get(REMOVAL_HEADER)
    text = code.decode(errors="replace") if isinstance(code, bytes) else ""
    return REMOVED_BECAUSE.get(text, "no reason given")


def current_list(settings: Settings, serde: AvroSerde, recipient: str) -> dict[str, dict[str, Any]]:
    return read_list(settings, serde, recipient).cases


def topic_exists(settings: Settings, topic: str) -> bool:
    reader = kafka_consumer(settings, enable_auto_commit=False)
    try:
        return bool(reader.partitions_for_topic(topic))
    finally:
        reader.close()


@dataclass(frozen=True)
class Agreement:
    id: str
    status: str
    reason: str | None
    provider: str


def agreements_naming(policies_dir: Path, recipient: str) -> list[Agreement]:
    """The agreements (as files under policies/agreements) naming `recipient`."""
    found = []
    for path in sorted((policies_dir / "agreements").glob("*.yaml")):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for agreement_id, agreement in document.items() if isinstance(document, dict) else ():
            if not isinstance(agreement, dict):
                continue
            names = {r.get("org") for r in agreement.get("recipients") or () if isinstance(r, dict)}
            if recipient in names:
                found.append(
                    Agreement(
                        str(agreement_id),
                        str(agreement.get("status") or "unknown"),
                        agreement.get("status_reason"),
                        ", ".join(agreement.get("providers") or ()),
                    )
                )
    return found


def recipients_known(policies_dir: Path) -> set[str]:
    """Every organisation an agreement names as a recipient, and every council."""
    known = {org_id(name) for name in COUNCIL_AREAS}
    for path in sorted((policies_dir / "agreements").glob("*.yaml")):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for agreement in document.values() if isinstance(document, dict) else ():
            if isinstance(agreement, dict):
                known |= {
                    r["org"]
                    for r in agreement.get("recipients") or ()
                    if isinstance(r, dict) and isinstance(r.get("org"), str)
                }
    return known


def recipient_org(policies_dir: Path, recipient: str) -> str:
    """A recipient's organisation id, checked against the agreements; ValueError with
    suggestions for one no agreement names."""
    known = recipients_known(policies_dir)
    wanted = recipient.strip().casefold()
    if wanted in known:
        return wanted
    close = suggest(wanted, known)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"no agreement names {recipient!r} as a recipient{hint}")


def empty_list_explanation(recipient: str, read: ListRead, agreements: list[Agreement]) -> str:
    """Why a recipient's list holds no open case, in one line: no agreement names it, its
    agreements are not active (draft, suspended, expired), nothing was ever shared, or
    everyone shared has left the list."""
    active = [a for a in agreements if a.status == "active"]
    if not agreements:
        return f"no agreement names {recipient} as a recipient: nothing can be shared with it"
    if not active:
        states = "; ".join(
            f"{a.id} is {a.status}" + (f" ({a.reason})" if a.reason else "") for a in agreements
        )
        return f"no active agreement shares with {recipient}: {states}"
    if not read.topic_exists:
        return f"no list yet: the hub has not made {recipient}'s list (topic) yet"
    if read.records == 0:
        names = ", ".join(a.id for a in active)
        return f"no list yet: nothing has been shared with {recipient} so far ({names} active)"
    why = ", ".join(f"{n}: {reason}" for reason, n in read.removed_because.most_common())
    return f"the list is empty: {read.removed} people were on it and have all left ({why})"


def inactive_agreements(agreements: list[Agreement]) -> list[str]:
    """A line per agreement naming the recipient that shares nothing now (draft,
    suspended, expired): why part of a list may be missing."""
    return [
        f"{a.id} ({a.provider}) is {a.status}"
        + (f": {a.reason}" if a.reason else "")
        + "; nothing is shared under it"
        for a in agreements
        if a.status != "active"
    ]


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What changed between two versions of a case, in plain words ("priority routine ->
    high", "needs + food"); empty when nothing a coordinator reads changed."""
    if old is None:
        return []
    said = []
    for column in WATCHED:
        before, after = cell(old, column), cell(new, column)
        if before == after:
            continue
        label = LABELS.get(column, column.replace("_", " "))
        if column == "needs":
            was, now = set(old.get("needs") or ()), set(new.get("needs") or ())
            parts = [f"+{n.lower().replace('_', ' ')}" for n in sorted(now - was)]
            parts += [f"-{n.lower().replace('_', ' ')}" for n in sorted(was - now)]
            said.append(f"needs {' '.join(parts)}")
        else:
            said.append(f"{label} {before or '-'} -> {after or '-'}")
    return said


def display_name(case: dict[str, Any] | None) -> str:
    """The person's name as the list shows it (the recipient was given it), or their
    case reference when the list has no name for them."""
    if not case:
        return ""
    name = " ".join(p for p in (case.get("given_name"), case.get("family_name")) if p)
    return name or case_reference(case["case_key"])


@dataclass(frozen=True)
class Update:
    """One change to the list: new, changed or removed."""

    kind: str  # "new" | "changed" | "removed"
    case_key: str
    case: dict[str, Any] | None  # the new version (None when removed)
    previous: dict[str, Any] | None
    why: str | None = None  # removed: why, in plain words, when the hub says

    def line(self) -> str:
        reference = case_reference(self.case_key)
        if self.kind == "removed":
            because = f": {self.why}" if self.why else ""
            return f"removed  {reference}  {display_name(self.previous)}{because}"
        assert self.case is not None
        if self.kind == "new":
            return (
                f"new      {reference}  {display_name(self.case)}  "
                f"{cell(self.case, 'priority') or '-'}  {cell(self.case, 'needs')}"
            )
        said = changes(self.previous, self.case) or ["no change you can see (re-confirmed)"]
        return f"changed  {reference}  {display_name(self.case)}: {'; '.join(said)}"


def update_of(
    view: dict[str, dict[str, Any]],
    key: bytes,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    serde: AvroSerde,
) -> Update | None:
    """Apply one record to the view and say what it did; None for a tombstone of a case
    the view did not hold (nothing a coordinator saw changed)."""
    case_key = key.decode()
    previous = view.get(case_key)
    case = apply(view, key, value, serde)
    if case is None:
        if previous is None:
            return None
        return Update("removed", case_key, None, previous, removal_reason(headers))
    return Update("new" if previous is None else "changed", case_key, case, previous)


def ordered(view: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        view.values(),
        key=lambda c: (
            PRIORITY_RANK.get(c.get("priority") or "ROUTINE", 9),
            c.get("opened_at") is None,
            c.get("opened_at") or 0,
            c["case_key"],
        ),
    )


def cell(case: dict[str, Any], column: str) -> str:
    if column == "reference":
        return case_reference(case["case_key"])
    value = case.get(column)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(
            str(v).lower().replace("_", " ") if column == "needs" else str(v) for v in value
        )
    if column in ("priority", "latest_outcome"):
        return str(value).lower().replace("_", " ")
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="minutes") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def neutralise(text: str) -> str:
    """Make a cell inert in spreadsheets: a leading formula character is quoted."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(cases: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for case in cases:
            writer.writerow([neutralise(cell(case, column)) for column in COLUMNS])


def follow(
    settings: Settings, serde: AvroSerde, recipient: str, view: dict[str, dict[str, Any]]
) -> Iterator[Update]:
    """Updates after the current end of the topic, as they arrive."""
    topic = Topics(settings).share(recipient)
    consumer = kafka_consumer(settings, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        while True:
            for records in consumer.poll(timeout_ms=1000).values():
                for message in records:
                    update = update_of(view, message.key, message.value, message.headers, serde)
                    if update is not None:
                        yield update
    finally:
        consumer.close()
