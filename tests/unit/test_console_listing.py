"""The list page's filters, hidden count, sorting, columns and exports (pure functions)."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from accord.console import listing
from accord.console.lists import note_outcome
from accord.coordinator import views


def case(n: int, **fields) -> dict:
    return {
        "case_key": f"{n:064x}",
        "needs": ["FOOD"],
        "priority": "ROUTINE",
        "latest_outcome": None,
        "latest_outcome_at": None,
        "opened_at": datetime(2026, 12, 1, 9, n, tzinfo=UTC),
        "given_name": f"Given{n}",
        "family_name": f"Family{n}",
        "fields_released": ["given_name", "family_name"],
        **fields,
    }


CASES = [
    case(1, priority="URGENT", needs=["MEDICINE"]),
    case(2, priority="HIGH", latest_outcome="NO_ANSWER"),
    case(3, needs=["FOOD", "WELFARE_CHECK"], latest_outcome="DELIVERED"),
    case(4),
]


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({}, [1, 2, 3, 4], 0),
        ({"priority": ["urgent", "high"]}, [1, 2], 2),
        ({"need": ["welfare_check"]}, [3], 3),
        ({"need": ["food"]}, [2, 3, 4], 1),
        ({"outcome": ["none"]}, [1, 4], 2),
        ({"outcome": ["no_answer", "delivered"]}, [2, 3], 2),
        ({"unassigned": "1"}, [1, 4], 2),
        ({"priority": ["routine"], "unassigned": "1"}, [4], 3),
        ({"priority": ["not-a-priority"]}, [1, 2, 3, 4], 0),  # unknown values dropped
    ],
)
def test_filters_and_the_hidden_count(query, shown, hidden):
    class Query(dict):
        def getlist(self, name):
            value = self.get(name)
            return value if isinstance(value, list) else [value] if value else []

    result = listing.listing(CASES, listing.Filters.from_query(Query(query)))
    assert [int(c["case_key"], 16) for c in result.shown] == shown
    assert result.hidden == hidden and result.total == 4


@pytest.mark.parametrize(
    ("sort", "descending", "order"),
    [
        ("priority", False, [1, 2, 3, 4]),
        ("priority", True, [3, 4, 2, 1]),
        ("opened", False, [1, 2, 3, 4]),
        ("name", True, [4, 3, 2, 1]),
    ],
)
def test_sorting(sort, descending, order):
    filters = listing.Filters(sort=sort, descending=descending)
    assert [int(c["case_key"], 16) for c in listing.listing(CASES, filters).shown] == order


def test_filter_query_round_trips_and_tags_remove_one_filter():
    filters = listing.Filters(priorities=("HIGH",), needs=("FOOD",), unassigned=True, sort="name")
    assert filters.query() == "priority=high&need=food&unassigned=1&sort=name"
    tags = dict(filters.tags())
    assert tags["Priority: high"] == "need=food&unassigned=1&sort=name"


def test_columns_follow_what_was_released():
    headers = [h for h, _ in listing.columns(CASES)]
    assert "Name" in headers and "Phone" not in headers and "Address line 2" not in headers
    released = [case(9, fields_released=["address_line2", "town", "contact_phone"])]
    headers = [h for h, _ in listing.columns(released)]
    assert {"Address line 2", "Town", "Phone"} <= set(headers)


HOSTILE = [
    case(5, given_name='=HYPERLINK("http://x","y")', family_name="+SUM(A1)", town="@cmd"),
    case(6, given_name="-2+3", family_name="\tTab", address_line1="Plain \x01 text"),
]


def test_csv_export_neutralises_formulas_and_keeps_every_field():
    rows = list(csv.reader(io.StringIO(listing.to_csv(HOSTILE))))
    assert rows[0] == list(listing.EXPORT_COLUMNS)
    assert {"address_line2", "town", "reference", "case_key"} <= set(rows[0])
    cells = [cell for row in rows[1:] for cell in row]
    assert not any(cell.startswith(views.FORMULA_STARTS) for cell in cells)
    assert '\'=HYPERLINK("http://x","y")' in cells


def test_xlsx_export_stores_every_cell_as_text():
    data = listing.to_xlsx(HOSTILE, "Support list")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "HYPERLINK" in sheet_xml
    book = load_workbook(io.BytesIO(data))
    sheet = book["Support list"]
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]] == list(listing.EXPORT_COLUMNS)
    for row in rows[1:]:
        for cell in row:
            assert cell.data_type in ("s", "inlineStr"), (cell.coordinate, cell.value)
    values = {c.value for row in rows[1:] for c in row}
    assert '=HYPERLINK("http://x","y")' in values  # as text, never a formula
    assert "Plain  text" in values  # a character XML cannot hold is dropped


def test_outcomes_seen_keep_each_change_once():
    seen: dict = {}
    at = datetime(2026, 12, 1, tzinfo=UTC)
    for outcome in (None, "NO_ANSWER", "NO_ANSWER", "DELIVERED"):
        note_outcome(seen, case(1, latest_outcome=outcome, latest_outcome_at=at))
    assert [o for o, _ in seen[f"{1:064x}"]] == ["NO_ANSWER", "DELIVERED"]


def test_an_outcome_is_judged_by_the_ingestion_pipeline():
    from accord.coordinator.outcomes import OutcomeRefused, outcome_event
    from accord.ingest.pipeline import Location

    where = Location("CONSOLE", "case", "case")
    the_case = case(7, needs=["WELFARE_CHECK"])
    accepted = outcome_event(
        "city-of-edinburgh", the_case, "WELFARE_CHECK", "NO_ANSWER", None, where
    )
    event = accepted.event
    assert event["case_key"] == the_case["case_key"] and event["source_org"] == "city-of-edinburgh"
    assert event["request_id"] == views.case_reference(the_case["case_key"])
    assert event["outcome"] == "NO_ANSWER" and event["need"] == "WELFARE_CHECK"
    with pytest.raises(OutcomeRefused):
        outcome_event("city-of-edinburgh", the_case, "WELFARE_CHECK", "NOT_A_THING", None, where)
