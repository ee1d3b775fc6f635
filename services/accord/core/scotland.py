"""Scotland's NHS health boards and the council areas each one serves.

Accord's agreements are organised around this geography: each of the 14
NHS health boards shares its shielding list with the councils whose areas
lie within the board's area. The data here is the single source of truth
for board/council names in Python code; organisation ids used on the wire
and in policy data are derived from the display names with :func:`org_id`.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BOARD_OF_COUNCIL",
    "COUNCIL_AREAS",
    "HEALTH_BOARDS",
    "org_id",
]

HEALTH_BOARDS: dict[str, tuple[str, ...]] = {
    "NHS Ayrshire and Arran": ("East Ayrshire", "North Ayrshire", "South Ayrshire"),
    "NHS Borders": ("Scottish Borders",),
    "NHS Dumfries and Galloway": ("Dumfries and Galloway",),
    "NHS Fife": ("Fife",),
    "NHS Forth Valley": ("Clackmannanshire", "Falkirk", "Stirling"),
    "NHS Grampian": ("Aberdeen City", "Aberdeenshire", "Moray"),
    "NHS Greater Glasgow and Clyde": (
        "Glasgow City",
        "East Dunbartonshire",
        "West Dunbartonshire",
        "East Renfrewshire",
        "Renfrewshire",
        "Inverclyde",
    ),
    "NHS Highland": ("Highland", "Argyll and Bute"),
    "NHS Lanarkshire": ("North Lanarkshire", "South Lanarkshire"),
    "NHS Lothian": ("City of Edinburgh", "East Lothian", "Midlothian", "West Lothian"),
    "NHS Orkney": ("Orkney Islands",),
    "NHS Shetland": ("Shetland Islands",),
    "NHS Tayside": ("Angus", "Dundee City", "Perth and Kinross"),
    "NHS Western Isles": ("Na h-Eileanan Siar",),
}
"""Health board display name -> display names of the council areas it serves.

Boards are listed in agreement order: the n-th board's agreement is
``DSA-00n`` (``DSA-001`` for NHS Ayrshire and Arran ... ``DSA-014`` for
NHS Western Isles).
"""

COUNCIL_AREAS: tuple[str, ...] = tuple(
    sorted(council for councils in HEALTH_BOARDS.values() for council in councils)
)
"""All 32 Scottish council areas (display names), sorted."""

BOARD_OF_COUNCIL: dict[str, str] = {
    council: board for board, councils in HEALTH_BOARDS.items() for council in councils
}
"""Council area display name -> display name of the health board serving it."""

_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")


def org_id(name: str) -> str:
    """Return the organisation id (slug) for a board or council display name.

    The name is lowercased, every run of characters other than ``a-z`` and
    ``0-9`` becomes a single ``-``, and leading/trailing ``-`` are stripped.

    >>> org_id("NHS Greater Glasgow and Clyde")
    'nhs-greater-glasgow-and-clyde'
    >>> org_id("Na h-Eileanan Siar")
    'na-h-eileanan-siar'
    """
    return _NON_ALNUM.sub("-", name.lower()).strip("-")


def _check() -> None:
    """Guard the invariants the rest of Accord relies on (runs at import)."""
    if len(HEALTH_BOARDS) != 14 or len(COUNCIL_AREAS) != 32:
        raise AssertionError("expected 14 health boards and 32 council areas")
    if len(set(COUNCIL_AREAS)) != len(COUNCIL_AREAS):
        raise AssertionError("a council area is listed under more than one board")
    ids = [org_id(n) for n in (*HEALTH_BOARDS, *COUNCIL_AREAS)]
    if len(set(ids)) != len(ids):
        raise AssertionError("organisation ids are not unique")


_check()
