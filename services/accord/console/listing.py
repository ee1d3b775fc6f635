"""What a coordinator's list page shows: filters, sorting, columns and exports (pure
functions of the cases, tested without Kafka).

Filters: priority, need, latest outcome (or none yet), and "unassigned": cases nobody has
recorded an outcome against yet, i.e. nobody has picked up. The page says how many cases
the filters hide. Exports (CSV and .xlsx) hold the filtered list in the page's order with
every released field; a cell that a spreadsheet would run as a formula is made inert (CSV:
a leading quote, `accord.coordinator.views.neutralise`; .xlsx: the cell is stored as text,
never as a formula).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from accord.coordinator import views
from accord.ingest.datasets import OUTCOMES, SUPPORT_NEEDS

PRIORITIES: Final = ("URGENT", "HIGH", "MEDIUM", "ROUTINE")
NO_OUTCOME: Final = "NONE"
OUTCOME_CHOICES: Final = tuple(o for o in OUTCOMES if o != "UNKNOWN")
NEED_CHOICES: Final = tuple(SUPPORT_NEEDS)
PAGE_ROWS: Final = 200  # rows on the page; the export has them all

# (header, field) of the list page; a source field's column appears only when some case
# on the list was released it. `reference` and the hub's own columns always appear.
LIST_COLUMNS: Final = (
    ("Reference", "reference"),
    ("Priority", "priority"),
    ("Needs", "needs"),
    ("Latest outcome", "latest_outcome"),
    ("Name", "name"),
    ("Date of birth", "date_of_birth"),
    ("Address", "address_line1"),
    ("Address line 2", "address_line2"),
    ("Town", "town"),
    ("Postcode", "postcode"),
    ("Phone", "contact_phone"),
    ("Shielding", "is_shielding"),
    ("Opened", "opened_at"),
)
HUB_COLUMNS: Final = {"reference", "priority", "needs", "latest_outcome", "opened_at"}
# The source field that releases a column, where it is not the column's own name.
RELEASED_AS: Final = {
    "is_shielding": "shielding_status",
    "name": "family_name",
}
EXPORT_COLUMNS: Final = (*views.COLUMNS[:-2], "council_area", "date_of_birth", *views.COLUMNS[-2:])

SORTS: Final = {
    "priority": lambda c: (views.PRIORITY_RANK.get(c.get("priority") or "ROUTINE", 9),),
    "opened": lambda c: (_stamp(c.get("opened_at")),),
    "outcome": lambda c: (c.get("latest_outcome") or "", _stamp(c.get("latest_outcome_at"))),
    "name": lambda c: ((c.get("family_name") or "").casefold(), (c.get("given_name") or "")),
    "reference": lambda c: (views.case_reference(c["case_key"]),),
}
SORT_LABELS: Final = {
    "priority": "Priority",
    "opened": "Opened",
    "outcome": "Latest outcome",
    "name": "Name",
    "reference": "Reference",
}


def _stamp(value: Any) -> float:
    if value is None:
        return float("inf")
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return float("inf")


@dataclass(frozen=True)
class Filters:
    priorities: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()  # NO_OUTCOME for "none yet"
    unassigned: bool = False
    sort: str = "priority"
    descending: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> Filters:
        """From the page's query string (unknown values are dropped, not errors: a
        bookmarked filter of a retired symbol still opens the list)."""
        getlist = getattr(query, "getlist", None)

        def values(name: str) -> list[str]:
            raw = getlist(name) if getlist else [query.get(name)] if query.get(name) else []
            return [str(v).strip().upper() for v in raw if v]

        sort = str(query.get("sort") or "priority")
        return cls(
            priorities=tuple(v for v in values("priority") if v in PRIORITIES),
            needs=tuple(v for v in values("need") if v in NEED_CHOICES),
            outcomes=tuple(v for v in values("outcome") if v in (*OUTCOME_CHOICES, NO_OUTCOME)),
            unassigned=str(query.get("unassigned") or "") in ("1", "on", "yes", "true"),
            sort=sort if sort in SORTS else "priority",
            descending=str(query.get("order") or "") == "desc",
        )

    @property
    def active(self) -> bool:
        return bool(self.priorities or self.needs or self.outcomes or self.unassigned)

    def query(self, **change: Any) -> str:
        """This filter's query string, with `change` applied (for sort links)."""
        pairs: list[tuple[str, str]] = []
        pairs += [("priority", p.lower()) for p in self.priorities]
        pairs += [("need", n.lower()) for n in self.needs]
        pairs += [("outcome", o.lower()) for o in self.outcomes]
        if self.unassigned:
            pairs.append(("unassigned", "1"))
        sort = change.get("sort", self.sort)
        descending = change.get("descending", self.descending)
        if sort != "priority":
            pairs.append(("sort", sort))
        if descending:
            pairs.append(("order", "desc"))
        from urllib.parse import urlencode

        return urlencode(pairs)

    def tags(self) -> list[tuple[str, str]]:
        """(label, query without it) for each active filter, for the selected-filters box."""
        tags = []
        for p in self.priorities:
            rest = tuple(x for x in self.priorities if x != p)
            tags.append(("Priority: " + label(p), _without(self, priorities=rest)))
        for n in self.needs:
            rest = tuple(x for x in self.needs if x != n)
            tags.append(("Need: " + label(n), _without(self, needs=rest)))
        for o in self.outcomes:
            rest = tuple(x for x in self.outcomes if x != o)
            text = "none yet" if o == NO_OUTCOME else label(o)
            tags.append(("Latest outcome: " + text, _without(self, outcomes=rest)))
        if self.unassigned:
            tags.append(("Unassigned", _without(self, unassigned=False)))
        return tags


def _without(filters: Filters, **change: Any) -> str:
    from dataclasses import replace

    return replace(filters, **change).query()


def label(symbol: str | None) -> str:
    """A dataset symbol in plain words: WELFARE_CHECK -> welfare check."""
    return (symbol or "").lower().replace("_", " ")


def matches(case: Mapping[str, Any], filters: Filters) -> bool:
    if filters.priorities and (case.get("priority") or "") not in filters.priorities:
        return False
    if filters.needs and not set(case.get("needs") or ()) & set(filters.needs):
        return False
    outcome = case.get("latest_outcome") or NO_OUTCOME
    if filters.outcomes and outcome not in filters.outcomes:
        return False
    if filters.unassigned and case.get("latest_outcome"):
        return False
    return True


@dataclass
class Listing:
    shown: list[dict[str, Any]]
    total: int
    hidden: int  # by the filters
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # facet -> value -> n


def listing(cases: Iterable[dict[str, Any]], filters: Filters) -> Listing:
    """The cases the filters let through, sorted, and how many they hide."""
    every = list(cases)
    shown = [case for case in every if matches(case, filters)]
    key = SORTS[filters.sort]
    # A stable order under every sort: the list's own order breaks ties.
    shown = views.ordered({c["case_key"]: c for c in shown})
    shown.sort(key=key, reverse=filters.descending)
    counts: dict[str, dict[str, int]] = {"priority": {}, "need": {}, "outcome": {}}
    for case in every:
        p = case.get("priority") or ""
        counts["priority"][p] = counts["priority"].get(p, 0) + 1
        for n in case.get("needs") or ():
            counts["need"][n] = counts["need"].get(n, 0) + 1
        o = case.get("latest_outcome") or NO_OUTCOME
        counts["outcome"][o] = counts["outcome"].get(o, 0) + 1
    return Listing(shown, len(every), len(every) - len(shown), counts)


def columns(cases: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The list page's columns: the hub's, and each field some case was released."""
    released = {name for case in cases for name in case.get("fields_released") or ()}
    return [
        (header, column)
        for header, column in LIST_COLUMNS
        if column in HUB_COLUMNS or RELEASED_AS.get(column, column) in released
    ]


def cell(case: Mapping[str, Any], column: str) -> str:
    """One cell as the page shows it (plain text; the template escapes it)."""
    if column == "name":
        return " ".join(p for p in (case.get("given_name"), case.get("family_name")) if p)
    if column in ("opened_at", "latest_outcome_at"):
        value = case.get(column)
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%d %b %Y %H:%M")
        return ""
    return views.cell(dict(case), column)


# --- exports ----------------------------------------------------------------------------------


def export_rows(cases: Iterable[dict[str, Any]]) -> Iterable[list[str]]:
    yield list(EXPORT_COLUMNS)
    for case in cases:
        yield [views.cell(case, column) for column in EXPORT_COLUMNS]


def to_csv(cases: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in export_rows(cases):
        writer.writerow([views.neutralise(value) for value in row])
    return buffer.getvalue()


def to_xlsx(cases: Iterable[dict[str, Any]], title: str) -> bytes:
    """The list as a workbook; every cell is text (data type `s`), so nothing in it is
    ever evaluated as a formula, and characters XML cannot hold are dropped."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "Cases")
    for row in export_rows(cases):
        cells = []
        for value in row:
            cell_ = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
            cell_.data_type = "s"
            cells.append(cell_)
        sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
