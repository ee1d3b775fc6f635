"""Small, deterministic people and the partner records written about them, for tests.

`lothian_people` is a shielding list a test can reason about: people in NHS Lothian's
four council areas in turn, named Given<i> Family<i>, with valid CHI numbers. The
builders make the records a partner's own system would write to its topic (Avro
values: dates as dates, times as datetimes), each with a fresh event id; a test
changes what it needs with keyword arguments.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from accord.core.scotland import org_id
from accord.synthetic.people import chi_for

LOTHIAN: Final = ("City of Edinburgh", "East Lothian", "Midlothian", "West Lothian")
POSTCODES: Final = {
    "City of Edinburgh": "EH1 1AA",
    "East Lothian": "EH21 6AA",
    "Midlothian": "EH22 1AA",
    "West Lothian": "EH54 6AA",
}
START: Final = datetime(2020, 6, 1, tzinfo=UTC)
SCHEMA_VERSION: Final = 1


def lothian_people(count: int) -> list[dict[str, str]]:
    """`count` shielding-list rows (CSV text) for NHS Lothian, the same every time."""
    rows, serial = [], 0
    for i in range(count):
        dob = date(1940 + i % 40, 1 + i % 12, 1 + i % 28)
        chi = None
        while chi is None:
            chi = chi_for(dob, serial % 1000)
            serial += 1
        council = LOTHIAN[i % len(LOTHIAN)]
        rows.append(
            {
                "chi_number": chi,
                "given_name": f"Given{i}",
                "family_name": f"Family{i}",
                "date_of_birth": dob.isoformat(),
                "address_line1": f"{i} High Street",
                "address_line2": "",
                "town": "",
                "postcode": POSTCODES[council],
                "council_area": council,
                "health_board": "NHS Lothian",
                "clinical_risk_group": "SPECIFIC_CANCERS",
                "shielding_status": "SHIELDING",
                "contact_phone": "",
                "effective_date": "2020-06-01",
            }
        )
    return rows


def event_base(org: str, at: datetime) -> dict[str, Any]:
    """The envelope every partner record carries, with a new event id."""
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "source_org": org,
        "schema_version": SCHEMA_VERSION,
    }


def shielding_entry(
    row: dict[str, str], org: str = "nhs-lothian", *, at: datetime = START, **changes: Any
) -> dict[str, Any]:
    """A ShieldingListEntry for a listed person, as their board's system writes it."""
    return {
        **event_base(org, at),
        "chi_number": row["chi_number"],
        "given_name": row["given_name"],
        "family_name": row["family_name"],
        "date_of_birth": date.fromisoformat(row["date_of_birth"]),
        "address_line1": row["address_line1"],
        "address_line2": None,
        "town": None,
        "postcode": row["postcode"],
        "council_area": row["council_area"],
        "health_board": "NHS Lothian",
        "clinical_risk_group": "UNKNOWN",
        "shielding_status": "SHIELDING",
        "contact_phone": None,
        "effective_date": date(2020, 6, 1),
        **changes,
    }


def support_request(
    row: dict[str, str],
    request_id: str,
    *,
    at: datetime,
    org: str | None = None,
    with_chi: bool = True,
    **changes: Any,
) -> dict[str, Any]:
    """A SupportRequest about a listed person from their council (or `org`), with or
    without the CHI number; routine food and medicine from the helpline unless changed."""
    return {
        **event_base(org or org_id(row["council_area"]), at),
        "request_id": request_id,
        "chi_number": row["chi_number"] if with_chi else None,
        "nhs_number": None,
        "given_name": row["given_name"],
        "family_name": row["family_name"],
        "date_of_birth": date.fromisoformat(row["date_of_birth"]),
        "address_line1": row["address_line1"],
        "postcode": row["postcode"],
        "council_area": row["council_area"],
        "contact_phone": None,
        "lives_alone": None,
        "needs": ["FOOD", "MEDICINE"],
        "urgency": "ROUTINE",
        "channel": "HELPLINE",
        **changes,
    }


def support_outcome(
    org: str,
    request_id: str,
    *,
    at: datetime,
    outcome: str = "DELIVERED",
    request_org: str | None = None,
    need: str = "FOOD",
) -> dict[str, Any]:
    """A SupportOutcome for a request; `request_org` when the request is another org's."""
    return {
        **event_base(org, at),
        "request_id": request_id,
        "request_org": request_org,
        "need": need,
        "outcome": outcome,
    }


def consent_change(
    row: dict[str, str], org: str, change: str, *, at: datetime, with_chi: bool = True
) -> dict[str, Any]:
    """A ConsentChange for all sharing: by CHI number, or by name, birth date and postcode."""
    return {
        **event_base(org, at),
        "chi_number": row["chi_number"] if with_chi else None,
        "nhs_number": None,
        "given_name": None if with_chi else row["given_name"],
        "family_name": None if with_chi else row["family_name"],
        "date_of_birth": None if with_chi else date.fromisoformat(row["date_of_birth"]),
        "postcode": None if with_chi else row["postcode"],
        "scope": "ALL_SHARING",
        "change": change,
    }


def requests_for(rows: list[dict[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """(council org, SupportRequest) for every second person, hours apart, all with CHI."""
    out = []
    for i, row in enumerate(rows):
        if i % 2:
            continue
        request = support_request(
            row,
            f"REQ-{i}",
            at=START + timedelta(hours=i),
            lives_alone=i % 6 == 0,
            needs=["FOOD", "MEDICINE"] if i % 4 == 0 else ["FOOD"],
            urgency="IMMEDIATE" if i % 8 == 0 else "ROUTINE",
        )
        out.append((request["source_org"], request))
    return out


def outcomes_for(requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """A food delivery, a day later, for every second request."""
    return [
        (
            org,
            support_outcome(
                org, request["request_id"], at=request["occurred_at"] + timedelta(days=1)
            ),
        )
        for n, (org, request) in enumerate(requests)
        if n % 2 == 0
    ]
