"""Which (reader, writer) pairs each compatibility level checks: transitive or latest only."""

import pytest

from accord.registry.modes import DEFAULT_LEVEL, LEVELS, Direction, Pair, pairs, parse_level

B, F = Direction.BACKWARD, Direction.FORWARD


@pytest.mark.parametrize(
    ("level", "versions", "expected"),
    [
        ("NONE", [1, 2, 3], []),
        ("BACKWARD", [1, 2, 3], [Pair(3, B)]),
        ("BACKWARD_TRANSITIVE", [3, 1, 2], [Pair(1, B), Pair(2, B), Pair(3, B)]),
        ("FORWARD", [1, 2, 3], [Pair(3, F)]),
        ("FORWARD_TRANSITIVE", [1, 2], [Pair(1, F), Pair(2, F)]),
        ("FULL", [1, 2, 3], [Pair(3, B), Pair(3, F)]),
        ("FULL_TRANSITIVE", [1, 2], [Pair(1, B), Pair(1, F), Pair(2, B), Pair(2, F)]),
        # gaps left by deleted versions: the latest live one is what counts
        ("BACKWARD", [1, 4], [Pair(4, B)]),
        # a new subject has nothing to be compatible with
        ("FULL_TRANSITIVE", [], []),
    ],
)
def test_pairs_each_level_requires(level, versions, expected):
    assert pairs(level, versions) == expected


def test_an_unknown_level_is_refused_not_treated_as_none():
    with pytest.raises(ValueError, match="unknown compatibility level"):
        pairs("SIDEWAYS", [1])


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        ("backward", "BACKWARD"),
        (" Full_Transitive ", "FULL_TRANSITIVE"),
        ("NONE", "NONE"),
        ("sideways", None),
        ("", None),
        (None, None),
        (3, None),
    ],
)
def test_parse_level(raw, level):
    assert parse_level(raw) == level


def test_partner_contracts_default_to_backward_transitive():
    assert DEFAULT_LEVEL == "BACKWARD_TRANSITIVE" and DEFAULT_LEVEL in LEVELS
