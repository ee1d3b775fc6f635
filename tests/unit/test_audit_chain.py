"""The audit's hash chain, as pure functions: a chain as the worker writes it verifies; a
deleted, altered or inserted record, a forged append, a lost prefix and an unlinked record
are each found at the right offset, with the right kind."""

from __future__ import annotations

import pytest

from accord.core.auditchain import (
    GENESIS,
    UNREADABLE,
    Link,
    record_hash,
    verify_partition,
)


def chain(count: int, start_previous: str = GENESIS) -> list[Link]:
    """Records as the writer makes them: each names the hash of the one before."""
    links, previous = [], start_previous
    for n in range(count):
        key, value = f"person-{n % 3}".encode(), f"decision {n}|{previous}".encode()
        links.append(Link(n, key, value, previous))
        previous = record_hash(key, value)
    return links


def renumbered(links: list[Link]) -> list[Link]:
    """A copy of the partition as a topic copy would hold it: offsets from 0 again."""
    return [Link(n, x.key, x.value, x.previous) for n, x in enumerate(links)]


def test_the_hash_covers_key_and_value_and_cannot_be_shifted_between_them():
    assert record_hash(b"ab", b"c") != record_hash(b"a", b"bc")
    assert record_hash(b"a", b"b") != record_hash(b"a", b"c")
    assert record_hash(None, b"x") == record_hash(b"", b"x")
    assert len(record_hash(b"k", b"v")) == 64


def test_an_intact_chain_verifies_and_reports_its_head():
    links = chain(50)
    report = verify_partition(3, links)
    assert report.intact and report.checked == 50 and report.partition == 3
    assert report.head == record_hash(links[-1].key, links[-1].value)


def test_an_empty_partition_is_intact():
    report = verify_partition(0, [])
    assert report.intact and report.checked == 0 and report.head is None


def test_a_deleted_record_breaks_the_next_link():
    links = chain(20)
    copy = renumbered(links[:7] + links[8:])
    report = verify_partition(0, copy)
    assert not report.intact and report.checked == 19
    assert report.first_break.offset == 7 and report.first_break.kind == "broken"
    assert len(report.breaks) == 1  # the check resumes after the break


def test_a_deleted_first_record_is_found():
    report = verify_partition(0, renumbered(chain(5)[1:]))
    assert report.first_break.offset == 0 and report.first_break.kind == "broken"


def test_an_altered_record_breaks_the_link_of_the_one_after_it():
    links = chain(20)
    altered = links[11]
    links[11] = Link(
        11, altered.key, altered.value.replace(b"decision", b"Decision"), altered.previous
    )
    report = verify_partition(0, links)
    assert report.first_break.offset == 12 and report.first_break.kind == "broken"


def test_an_altered_key_is_found_too():
    links = chain(10)
    links[4] = Link(4, b"someone-else", links[4].value, links[4].previous)
    assert verify_partition(0, links).first_break.offset == 5


def test_an_inserted_copy_of_a_record_is_found_as_a_fork():
    links = chain(20)
    copy = renumbered(links[:10] + [links[5]] + links[10:])
    report = verify_partition(0, copy)
    assert report.first_break.offset == 10 and report.first_break.kind == "fork"
    assert "offset 4" in report.first_break.detail


def test_an_inserted_record_linked_to_its_predecessor_breaks_the_next_link():
    links = chain(20)
    forged_previous = record_hash(links[9].key, links[9].value)
    forged = Link(0, b"person-x", b"forged decision", forged_previous)
    copy = renumbered(links[:10] + [forged] + links[10:])
    report = verify_partition(0, copy)
    # The forgery links correctly, so the record after it is the one that breaks.
    assert report.first_break.offset == 11 and report.first_break.kind == "fork"


def test_a_forged_record_appended_with_a_made_up_link_is_found():
    links = chain(8)
    forged = Link(8, b"person-1", b"allow everything", "ab" * 32)
    report = verify_partition(0, [*links, forged])
    assert report.first_break.offset == 8 and report.first_break.kind == "broken"


def test_a_second_chain_from_genesis_in_the_middle_is_found():
    links = chain(6)
    restart = Link(6, b"k", b"v", GENESIS)
    assert verify_partition(0, [*links, restart]).first_break.kind == "restarted"


def test_an_unlinked_record_after_linked_ones_is_found():
    links = chain(6)
    report = verify_partition(0, [*links, Link(6, b"k", b"v", None)])
    assert report.first_break.offset == 6 and report.first_break.kind == "unlinked"


def test_an_unreadable_record_is_a_break():
    links = chain(4)
    report = verify_partition(0, [*links, Link(4, b"k", b"junk", UNREADABLE)])
    assert report.first_break.kind == "unreadable"


def test_records_from_before_the_chain_may_only_come_first():
    old = [Link(n, b"k", f"old {n}".encode(), None) for n in range(3)]
    last_old = record_hash(old[-1].key, old[-1].value)
    linked = [Link(3 + x.offset, x.key, x.value, x.previous) for x in chain(4, last_old)]
    report = verify_partition(0, old + linked)
    assert report.intact and report.unchained == 3 and report.checked == 7
    from_genesis = [Link(3 + x.offset, x.key, x.value, x.previous) for x in chain(4)]
    assert verify_partition(0, old + from_genesis).intact


@pytest.mark.parametrize("accept", [False, True])
def test_a_partition_whose_first_records_are_gone_is_a_break_unless_retention_is_accepted(
    accept,
):
    links = chain(10)[4:]  # offsets 4.. as the broker keeps them after deletion
    report = verify_partition(0, links, start_offset=4, accept_truncated=accept)
    assert report.intact is accept
    if not accept:
        assert report.first_break.kind == "truncated" and report.first_break.offset == 4
