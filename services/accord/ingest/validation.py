"""Validate and normalise one row of a health board's shielding list.

A board sends its shielding list as CSV. Before a row is shared with a
council it must be checked field by field, so that a partner's data officer
gets every problem of a row at once (not one per upload), and the row that
goes on to Avro has one canonical form.

CHI number rules
----------------
A CHI (Community Health Index) number is ten digits:

* digits 1-6: the person's date of birth as DDMMYY;
* digits 7-8: further serial digits;
* digit 9: a serial digit whose parity records sex (even female, odd male).
  This dataset carries no sex column, so the parity is not checked;
* digit 10: a check digit.

Until 2025 the check digit was always modulus 11: weights 10..2 on the first
nine digits, check = 11 - (sum mod 11), where 11 becomes 0 and 10 means the
nine digits cannot form a CHI number.

The recent change: some dates of birth have used up every nine-digit prefix
that has a modulus 11 check digit. NHS Scotland's CHI Management Board
therefore approved a second, modulus 10 check digit for new numbers on those
dates only. Public Health Scotland's ``phsmethods`` R package (its issue
"Support Modulus 10 check digit on CHI", #147, and the ``chi_check()``
documentation) quotes the decision: "Implement Modulus 10 check digit for CHI
numbers that have no available Modulus 11 check digit numbers available (i.e.
once Modulus 11 numbers are complete for a given date, then commence issuing
CHI numbers with Modulus 10 check digit for that date)". It was first planned
for 1 November 2025; the package documentation gives February 2026, and says
"From this date, CHI numbers are valid if they pass either a Mod 11 check or
a Mod 10 check". The modulus 10 digit is the Luhn digit of the first nine
digits: double the 9th, 7th, 5th, 3rd and 1st digits (subtracting 9 from
results above 9), sum all nine, and check = (10 - sum mod 10) mod 10.

What we took from that:

* a CHI number is valid if its check digit passes modulus 11 *or* modulus 10,
  so a prefix whose modulus 11 result is 10 may still be valid by modulus 10;
* the first six digits still hold the date of birth (the fix for dates that
  ran out was the second check digit, not a new date scheme), so a row's
  date of birth must still agree with the CHI's DDMMYY;
* the 9th-digit sex convention was not dropped, but is not checked here.

The same guidance gives systems that check CHI numbers two choices: add the
modulus 10 check beside the modulus 11 one, or stop checking the digit at
all. We add it: a mistyped number now slips through a little more often
than under modulus 11 alone, but most typing errors are still caught.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from accord.core.errors import AccordError
from accord.core.scotland import BOARD_OF_COUNCIL, COUNCIL_AREAS, HEALTH_BOARDS

__all__ = [
    "CLINICAL_RISK_GROUPS",
    "COLUMNS",
    "FieldError",
    "REQUIRED_COLUMNS",
    "RowInvalid",
    "SHIELDING_STATUSES",
    "chi_mod10_check_digit",
    "chi_mod11_check_digit",
    "validate_chi",
    "validate_shielding_row",
]

COLUMNS: Final[tuple[str, ...]] = (
    "chi_number",
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "council_area",
    "health_board",
    "clinical_risk_group",
    "shielding_status",
    "contact_phone",
    "effective_date",
)
"""The columns of a shielding-list row, in file order."""

REQUIRED_COLUMNS: Final[frozenset[str]] = frozenset(
    {
        "chi_number",
        "given_name",
        "family_name",
        "date_of_birth",
        "address_line1",
        "postcode",
        "council_area",
        "health_board",
        "clinical_risk_group",
        "shielding_status",
        "effective_date",
    }
)
"""Columns that must not be empty (a risk group may be ``UNKNOWN``, not blank)."""

CLINICAL_RISK_GROUPS: Final[tuple[str, ...]] = (
    "SOLID_ORGAN_TRANSPLANT",
    "SPECIFIC_CANCERS",
    "SEVERE_RESPIRATORY",
    "RARE_DISEASES",
    "IMMUNOSUPPRESSION_THERAPY",
    "PREGNANT_HEART_DISEASE",
    "CHRONIC_KIDNEY_DISEASE_STAGE_5",
    "CLINICIAN_IDENTIFIED",
    "UNKNOWN",
)

SHIELDING_STATUSES: Final[tuple[str, ...]] = ("SHIELDING", "NOT_SHIELDING", "UNKNOWN")

MAX_LENGTHS: Final[dict[str, int]] = {
    "given_name": 100,
    "family_name": 100,
    "address_line1": 200,
    "address_line2": 200,
    "town": 100,
}

EARLIEST_DOB: Final = date(1900, 1, 1)
EARLIEST_EFFECTIVE: Final = date(2000, 1, 1)
# A list may be dated ahead (e.g. the next review), but not by more than a year.
EFFECTIVE_MAX_AHEAD: Final = timedelta(days=366)

_FIELD_LABELS: Final[dict[str, str]] = {
    "chi_number": "CHI number",
    "given_name": "Given name",
    "family_name": "Family name",
    "date_of_birth": "Date of birth",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "town": "Town",
    "postcode": "Postcode",
    "council_area": "Council area",
    "health_board": "Health board",
    "clinical_risk_group": "Clinical risk group",
    "shielding_status": "Shielding status",
    "contact_phone": "Contact phone",
    "effective_date": "Effective date",
}

_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_UK_DATE: Final = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_DIGITS: Final = re.compile(r"[0-9]+")

# Royal Mail's rules for which letters may stand where: Q, V, X never open a
# postcode; I, J, Z are never second; the letter ending an A9A or AA9A
# outward code comes from short fixed lists; and the inward code never uses
# C, I, K, M, O or V (they are too easily misread).
_POSTCODE: Final = re.compile(
    r"(?P<outward>"
    r"[A-PR-UWYZ][0-9]{1,2}"
    r"|[A-PR-UWYZ][A-HK-Y][0-9]{1,2}"
    r"|[A-PR-UWYZ][0-9][A-HJKPSTUW]"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]"
    r")"
    r"(?P<inward>[0-9][ABD-HJLNP-UW-Z]{2})"
)
_GIROBANK: Final = "GIR0AA"

# UK national significant numbers (after +44 or the leading 0) that a person
# can be called on: geographic landlines (01/02, 9 or 10 digits as some small
# exchanges still have), UK-wide landlines (03) and mobiles (071-075, 077-079;
# 070 personal numbers and 076 pagers are not someone's phone).
_UK_PHONE_NSN: Final = re.compile(r"1[0-9]{8,9}|2[0-9]{9}|3[0-9]{9}|7[1-57-9][0-9]{8}")
_PHONE_PUNCTUATION: Final = re.compile(r"[\s\-.()]")
_ENUM_SEPARATORS: Final = re.compile(r"[\s\-]+")

_COUNCIL_BY_FOLDED_NAME: Final[dict[str, str]] = {name.casefold(): name for name in COUNCIL_AREAS}
_BOARD_BY_FOLDED_NAME: Final[dict[str, str]] = {name.casefold(): name for name in HEALTH_BOARDS}


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, in words a partner's data officer can act on.

    Messages never quote what was submitted: rows hold personal data and the
    errors end up in logs and emails. They may name canonical council and
    board names, which say nothing about a person on their own.
    """

    field: str
    rule: str
    message: str


class RowInvalid(AccordError):
    """A row broke one or more rules; ``errors`` lists every one of them."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        super().__init__("; ".join(error.message for error in self.errors))

    def __reduce__(self) -> tuple[type[RowInvalid], tuple[list[FieldError]]]:
        # Keep the structured errors when the exception crosses a process boundary.
        return (RowInvalid, (self.errors,))


def chi_mod11_check_digit(first_nine: str) -> int | None:
    """Return the modulus 11 check digit for nine digits, or None if there is none."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def chi_mod10_check_digit(first_nine: str) -> int:
    """Return the modulus 10 (Luhn) check digit for nine digits."""
    total = 0
    for position, digit in enumerate(first_nine, start=1):
        value = int(digit)
        if position % 2 == 1:
            # Positions 1, 3, 5, 7, 9: the ones Luhn doubles when the check digit follows.
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def _chi_date_is_real(ddmmyy: str) -> bool:
    """Tell whether DDMMYY is a calendar date in the 1900s or the 2000s."""
    day, month, year = int(ddmmyy[0:2]), int(ddmmyy[2:4]), int(ddmmyy[4:6])
    for century in (1900, 2000):
        try:
            date(century + year, month, day)
        except ValueError:
            continue
        return True
    return False


def _chi_errors(value: str) -> tuple[str, list[FieldError]]:
    """Return the CHI without spaces and the problems with it."""
    digits = "".join(value.split())
    if not digits:
        return digits, [
            FieldError("chi_number", "required", "CHI number is required but was empty.")
        ]
    if not _DIGITS.fullmatch(digits):
        return digits, [
            FieldError("chi_number", "chi_format", "CHI number must contain digits only.")
        ]
    if len(digits) != 10:
        message = f"CHI number must have exactly 10 digits, but has {len(digits)}."
        if len(digits) == 9:
            # The usual cause: a spreadsheet stored the CHI as a number.
            message += " A leading zero may have been lost in a spreadsheet."
        return digits, [FieldError("chi_number", "chi_length", message)]
    errors: list[FieldError] = []
    if not _chi_date_is_real(digits[:6]):
        errors.append(
            FieldError(
                "chi_number",
                "chi_date",
                "The first six digits of the CHI number are not a real date (DDMMYY).",
            )
        )
    check = int(digits[9])
    if check not in (chi_mod11_check_digit(digits[:9]), chi_mod10_check_digit(digits[:9])):
        errors.append(
            FieldError(
                "chi_number",
                "chi_check_digit",
                "CHI number's check digit is wrong, so the number has probably been mistyped.",
            )
        )
    return digits, errors


def validate_chi(value: str) -> str:
    """Return the CHI as 10 digits, or raise RowInvalid saying why it is not one."""
    digits, errors = _chi_errors(value)
    if errors:
        raise RowInvalid(errors)
    return digits


def _clean(value: str | None) -> str | None:
    """Trim, collapse inner whitespace and compose accents; blank becomes None.

    NFC keeps "Siobhán" one string whether the á arrived as one code point or
    two, without touching accents or case.
    """
    if value is None:
        return None
    text = " ".join(unicodedata.normalize("NFC", value).split())
    return text or None


def _parse_date(text: str) -> date | None:
    """Parse YYYY-MM-DD or DD/MM/YYYY into a real date, else None."""
    iso = _ISO_DATE.fullmatch(text)
    if iso:
        year, month, day = iso.groups()
    else:
        uk = _UK_DATE.fullmatch(text)
        if not uk:
            return None
        day, month, year = uk.groups()
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _date_format_error(field: str) -> FieldError:
    return FieldError(
        field,
        "date_format",
        f"{_FIELD_LABELS[field]} must be a real date written YYYY-MM-DD or DD/MM/YYYY.",
    )


def _normalise_postcode(text: str) -> tuple[str | None, FieldError | None]:
    """Return the postcode as 'OUTWARD INWARD' in capitals, or the problem with it."""
    compact = "".join(text.split()).upper()
    if compact.startswith("BFPO"):
        return None, FieldError(
            "postcode",
            "postcode_bfpo",
            "BFPO (British Forces Post Office) addresses are not accepted for the "
            "shielding list; give the person's home address in Scotland.",
        )
    if compact == _GIROBANK:
        return "GIR 0AA", None
    match = _POSTCODE.fullmatch(compact)
    if not match:
        return None, FieldError(
            "postcode",
            "postcode_format",
            "Postcode is not a valid UK postcode (for example EH1 1AA or G2 3DB).",
        )
    return f"{match['outward']} {match['inward']}", None


def _normalise_phone(text: str) -> str | None:
    """Return a UK landline or mobile number in E.164 form (+44...), else None."""
    compact = _PHONE_PUNCTUATION.sub("", text.replace("(0)", ""))
    if compact.startswith("+44"):
        national = compact[3:]
    elif compact.startswith("0044"):
        national = compact[4:]
    elif compact.startswith("0") and not compact.startswith("00"):
        national = compact[1:]
    else:
        return None
    if national.startswith("0"):
        # "+44 07700 900123": the trunk zero kept by mistake; the number is not in doubt.
        national = national[1:]
    if not _UK_PHONE_NSN.fullmatch(national):
        return None
    return f"+44{national}"


def _normalise_enum(text: str) -> str:
    """Upper-case and join words with underscores, so 'Severe respiratory' matches."""
    return _ENUM_SEPARATORS.sub("_", text).upper()


def validate_shielding_row(
    row: Mapping[str, str | None], *, today: date | None = None
) -> dict[str, object]:
    """Check one shielding-list row and return it normalised for Avro.

    Every field is checked and all problems are raised together in one
    RowInvalid, so a data officer can fix a row in one pass.
    """
    today = today if today is not None else date.today()
    errors: list[FieldError] = []
    text: dict[str, str | None] = {column: _clean(row.get(column)) for column in COLUMNS}

    for column in COLUMNS:
        if column in REQUIRED_COLUMNS and text[column] is None:
            errors.append(
                FieldError(
                    column, "required", f"{_FIELD_LABELS[column]} is required but was empty."
                )
            )

    for column, limit in MAX_LENGTHS.items():
        value = text[column]
        if value is not None and len(value) > limit:
            errors.append(
                FieldError(
                    column,
                    "max_length",
                    f"{_FIELD_LABELS[column]} must be at most {limit} characters, "
                    f"but has {len(value)}.",
                )
            )

    chi: str | None = None
    if text["chi_number"] is not None:
        digits, chi_errors = _chi_errors(text["chi_number"])
        errors.extend(chi_errors)
        chi = None if chi_errors else digits

    date_of_birth: date | None = None
    if text["date_of_birth"] is not None:
        date_of_birth = _parse_date(text["date_of_birth"])
        if date_of_birth is None:
            errors.append(_date_format_error("date_of_birth"))
        elif date_of_birth > today:
            errors.append(
                FieldError("date_of_birth", "dob_future", "Date of birth is in the future.")
            )
        elif date_of_birth < EARLIEST_DOB:
            errors.append(
                FieldError("date_of_birth", "dob_range", "Date of birth is before 1900-01-01.")
            )
        elif chi is not None and date_of_birth.strftime("%d%m%y") != chi[:6]:
            errors.append(
                FieldError(
                    "date_of_birth",
                    "chi_dob_mismatch",
                    "Date of birth does not match the date held in the CHI number "
                    "(its first six digits, DDMMYY).",
                )
            )

    effective_date: date | None = None
    if text["effective_date"] is not None:
        effective_date = _parse_date(text["effective_date"])
        latest = today + EFFECTIVE_MAX_AHEAD
        if effective_date is None:
            errors.append(_date_format_error("effective_date"))
        elif not EARLIEST_EFFECTIVE <= effective_date <= latest:
            errors.append(
                FieldError(
                    "effective_date",
                    "effective_date_range",
                    f"Effective date must be between {EARLIEST_EFFECTIVE.isoformat()} "
                    f"and {latest.isoformat()}.",
                )
            )

    postcode: str | None = None
    if text["postcode"] is not None:
        postcode, postcode_error = _normalise_postcode(text["postcode"])
        if postcode_error is not None:
            errors.append(postcode_error)

    contact_phone: str | None = None
    if text["contact_phone"] is not None:
        contact_phone = _normalise_phone(text["contact_phone"])
        if contact_phone is None:
            errors.append(
                FieldError(
                    "contact_phone",
                    "phone_format",
                    "Contact phone must be a UK landline or mobile number, "
                    "for example 0131 496 0000 or 07700 900123; leave it empty if unknown.",
                )
            )

    council_area: str | None = None
    if text["council_area"] is not None:
        council_area = _COUNCIL_BY_FOLDED_NAME.get(text["council_area"].casefold())
        if council_area is None:
            errors.append(
                FieldError(
                    "council_area",
                    "council_area_unknown",
                    "Council area must be one of the 32 Scottish council area names, "
                    "written in full (for example City of Edinburgh, Glasgow City, "
                    "Na h-Eileanan Siar).",
                )
            )

    health_board: str | None = None
    if text["health_board"] is not None:
        health_board = _BOARD_BY_FOLDED_NAME.get(text["health_board"].casefold())
        if health_board is None:
            errors.append(
                FieldError(
                    "health_board",
                    "health_board_unknown",
                    "Health board must be one of the 14 NHS Scotland territorial boards, "
                    "written in full (for example NHS Lothian).",
                )
            )

    if council_area is not None and health_board is not None:
        if BOARD_OF_COUNCIL[council_area] != health_board:
            errors.append(
                FieldError(
                    "council_area",
                    "council_not_in_board",
                    f"Council area {council_area} is not served by {health_board}; "
                    f"it is served by {BOARD_OF_COUNCIL[council_area]}.",
                )
            )

    clinical_risk_group: str | None = None
    if text["clinical_risk_group"] is not None:
        clinical_risk_group = _normalise_enum(text["clinical_risk_group"])
        if clinical_risk_group not in CLINICAL_RISK_GROUPS:
            errors.append(
                FieldError(
                    "clinical_risk_group",
                    "enum",
                    "Clinical risk group must be one of: " + ", ".join(CLINICAL_RISK_GROUPS) + ".",
                )
            )

    shielding_status: str | None = None
    if text["shielding_status"] is not None:
        shielding_status = _normalise_enum(text["shielding_status"])
        if shielding_status not in SHIELDING_STATUSES:
            errors.append(
                FieldError(
                    "shielding_status",
                    "enum",
                    "Shielding status must be one of: " + ", ".join(SHIELDING_STATUSES) + ".",
                )
            )

    if errors:
        raise RowInvalid(errors)

    return {
        "chi_number": chi,
        "given_name": text["given_name"],
        "family_name": text["family_name"],
        "date_of_birth": date_of_birth,
        "address_line1": text["address_line1"],
        "address_line2": text["address_line2"],
        "town": text["town"],
        "postcode": postcode,
        "council_area": council_area,
        "health_board": health_board,
        "clinical_risk_group": clinical_risk_group,
        "shielding_status": shielding_status,
        "contact_phone": contact_phone,
        "effective_date": effective_date,
    }
