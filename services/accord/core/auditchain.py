"""The audit's hash chain: each decision record names the hash of the record before it in
its partition, so a record deleted, altered or inserted breaks a link.

A record's hash is SHA-256 over a version tag and the record's key and value bytes
exactly as they are stored (length-prefixed), so it covers the schema id framing, every
field and the pseudonymous key, and needs no canonical re-encoding. The record carries
its predecessor's hash in `chain_previous` (DecisionRecord); the first record of a
partition names GENESIS. A record is protected by the next one's link; the newest record
of a partition only by the head `accord audit verify` prints, which an officer can keep
elsewhere.

The chain is not a signature: whoever can write the audit topic and recomputes every
later link could rewrite its tail. Under the ACLs only the worker writes it and only the
administrator can delete from it; the chain makes any other change visible.

`verify_partition` is the pure verifier behind `accord audit verify`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

GENESIS = "0" * 64
_TAG = b"accord-audit-chain-v1\x00"


def record_hash(key: bytes | None, value: bytes | None) -> str:
    """The hex SHA-256 of one audit record as stored (key and value bytes)."""
    digest = hashlib.sha256(_TAG)
    for part in (key or b"", value or b""):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# A record whose link could not be read (not a DecisionRecord, unknown schema id).
UNREADABLE = "<unreadable>"


@dataclass(frozen=True)
class Link:
    """One audit record as the verifier sees it: where it is, its bytes, and the hash it
    names as its predecessor (None: written before the chain existed; UNREADABLE)."""

    offset: int
    key: bytes | None
    value: bytes | None
    previous: str | None


@dataclass(frozen=True)
class Break:
    offset: int
    kind: str
    detail: str


@dataclass
class PartitionReport:
    partition: int
    start_offset: int = 0
    checked: int = 0
    unchained: int = 0
    breaks: list[Break] = field(default_factory=list)
    head: str | None = None

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


def verify_partition(
    partition: int, links: Iterable[Link], *, start_offset: int = 0, accept_truncated: bool = False
) -> PartitionReport:
    """Check every link of one partition, read in offset order from `start_offset` (the
    partition's first offset still stored).

    Each record must name the hash of the record just before it; the first record of the
    partition names GENESIS. Records written before chaining (no link) may only come
    before the first linked one, which may then name either GENESIS or the last of them.
    A break is classified by what the link names: no record of the partition (the record
    before was deleted or altered), an earlier record (one was inserted before it, or a
    second writer forked the chain), GENESIS again (a chain restarted: inserted, or a
    writer that lost its head), or no link after linked records (inserted). When the
    first stored offset is past 0, the records before it are gone: a break unless
    `accept_truncated` (a finite retention removed them). After a break the check goes on
    from the record that broke, so later breaks are found too.
    """
    report = PartitionReport(partition, start_offset)
    seen: dict[str, int] = {}
    before: str | None = None  # the hash of the record just read
    before_linked = False
    chained = False
    for link in links:
        report.checked += 1
        here = record_hash(link.key, link.value)
        problem: tuple[str, str] | None = None
        if link.previous == UNREADABLE:
            problem = ("unreadable", "not a decision record the verifier can read")
        elif link.previous is None:
            if chained:
                problem = ("unlinked", "a record without a link after linked ones: inserted")
            else:
                report.unchained += 1
        else:
            if before is None:
                expected = {GENESIS} if link.offset == 0 else set()
            elif not before_linked and not chained:
                expected = {before, GENESIS}  # the chain began after older, unlinked records
            else:
                expected = {before}
            if link.previous in expected:
                pass
            elif before is None and link.offset > 0 and not accept_truncated:
                problem = (
                    "truncated",
                    f"the records before offset {link.offset} are gone (deleted, or past a "
                    "finite retention: --accept-truncated)",
                )
            elif before is None and link.offset > 0:
                pass
            elif link.previous == GENESIS:
                problem = ("restarted", "a second chain begins here: inserted, or a lost head")
            elif link.previous in seen:
                problem = (
                    "fork",
                    f"links to the record at offset {seen[link.previous]}, not to the one "
                    "before it: a record was inserted before this one, or a second writer",
                )
            else:
                problem = (
                    "broken",
                    "links to no record of the partition: the record before it was "
                    "altered or deleted",
                )
            chained = True
        if problem is not None:
            report.breaks.append(Break(link.offset, *problem))
        seen.setdefault(here, link.offset)
        before, before_linked = here, link.previous not in (None, UNREADABLE)
        report.head = here
    return report
