"""Field rules of every partner dataset, and the shielding-list row built from them.

Partners send rows as CSV, JSON or spreadsheets. Before a row is shared it is
checked field by field, so that a partner's data officer gets every problem
of a row at once (not one per upload), and the row that goes on to Avro has
one canonical form. The rules for each kind of field (CHI, NHS number,
postcode, phone, dates, names, enums) live here once; `accord.ingest.datasets`
combines them per dataset and `accord.ingest.pipeline` runs them for every
way of publishing.

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

NHS numbers (England and Wales)
-------------------------------
Ten digits; the tenth is a modulus 11 check digit over the first nine with
weights 10..2: check = 11 - (sum mod 11), 11 becomes 0, and 10 means the
nine digits are not an NHS number. NHS England reserves numbers starting
999 for test systems. We accept them: they pass the check, partners' test
feeds use them, and a rule that changed with the environment would surprise.

Postcodes
---------
Royal Mail's format rules (see ``_POSTCODE``), normalised to capitals with
one space before the inward code. Special cases:

* ``GIR 0AA`` (the former Girobank, non-geographic) is a valid UK postcode
  and accepted;
* BFPO numbers are refused (``postcode_bfpo``): a British Forces Post Office
  address is not where a person can be supported;
* the postcodes of British Overseas Territories that imitate the UK format
  (``ASCN 1ZZ``, ``BIQQ 1ZZ``, ``BBND 1ZZ``, ``FIQQ 1ZZ``, ``PCRN 1ZZ``,
  ``SIQQ 1ZZ``, ``STHL 1ZZ``, ``TDCU 1ZZ``, ``TKCA 1ZZ``, and Gibraltar's
  ``GX11 1AA``) are refused (``postcode_overseas``): they are outside the UK
  and no council or health board here serves them.

Phone numbers
-------------
Parsed and formatted to E.164 by the ``phonenumbers`` library (Google's
libphonenumber metadata), as UK numbers (+44, which also covers the Channel
Islands and the Isle of Man). A number counts when a person can be called on
it: landlines, mobiles, UK-wide 03 numbers and VoIP numbers; freephone,
premium-rate, personal (070) and pager (076) numbers do not. Ofcom's ranges
reserved for drama and testing (07700 900xxx, 01632 960xxx, 0131 496 0xxx,
020 7946 0xxx, ...) are accepted although libphonenumber calls them invalid,
because synthetic and test data use them. A number written without its trunk
zero or country code is refused: it cannot be told from a typing slip.

Dates and times
---------------
Dates are written YYYY-MM-DD or DD/MM/YYYY. A date of birth is not in the
future nor before 1900; an effective date lies between 2000-01-01 and a year
ahead. Times (``occurred_at``) are ISO 8601; a time written without a zone is
UK local time (Europe/London); no time may be before 2000 or more than five
minutes ahead of the hub's clock (the allowance for clocks that drift).

Text
----
Names and addresses are trimmed, inner whitespace collapsed and Unicode
composed (NFC), keeping accents and case. Text that starts like a
spreadsheet formula (``=``, ``+``, ``-``, ``@``) is refused, since a
coordinator's export could run it, and so are control characters and
invisible ones (``invisible_characters``: bidirectional embeddings, overrides,
isolates and marks, zero-width spaces and joiners, word joiners, byte-order
marks), which could make a name display as another or reorder what a
coordinator sees. These apply to every field read as text.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType

from accord.core.errors import AccordError
from accord.core.scotland import BOARD_OF_COUNCIL, COUNCIL_AREAS, HEALTH_BOARDS
from accord.core.topics import is_org_id

__all__ = [
    "CLINICAL_RISK_GROUPS",
    "COLUMNS",
    "Clock",
    "FieldError",
    "FieldRule",
    "REQUIRED_COLUMNS",
    "RowInvalid",
    "SHIELDING_RULES",
    "SHIELDING_STATUSES",
    "check_chi_matches_dob",
    "check_fields",
    "chi_mod10_check_digit",
    "chi_mod11_check_digit",
    "nhs_check_digit",
    "normalise_phone",
    "normalise_postcode",
    "parse_datetime",
    "validate_chi",
    "validate_nhs_number",
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

NAME_MAX: Final = 100
ADDRESS_MAX: Final = 200
IDENTIFIER_MAX: Final = 64

EARLIEST_DOB: Final = date(1900, 1, 1)
EARLIEST_EFFECTIVE: Final = date(2000, 1, 1)
# A list may be dated ahead (e.g. the next review), but not by more than a year.
EFFECTIVE_MAX_AHEAD: Final = timedelta(days=366)
EARLIEST_OCCURRED: Final = datetime(2000, 1, 1, tzinfo=UTC)
# Partners' clocks drift; an event a few minutes "ahead" is a clock, not a typo.
CLOCK_SKEW: Final = timedelta(minutes=5)
UK_TIME: Final = ZoneInfo("Europe/London")

_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_UK_DATE: Final = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_UK_DATETIME: Final = re.compile(
    r"([0-9]{2})/([0-9]{2})/([0-9]{4})(?:[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?"
)
_ISO_DATETIME_START: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
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
# British Overseas Territories whose postcodes imitate the UK's (compact form).
_OVERSEAS_POSTCODES: Final[dict[str, str]] = {
    "ASCN1ZZ": "ASCN 1ZZ",  # Ascension Island
    "BBND1ZZ": "BBND 1ZZ",  # British Indian Ocean Territory
    "BIQQ1ZZ": "BIQQ 1ZZ",  # British Antarctic Territory
    "FIQQ1ZZ": "FIQQ 1ZZ",  # Falkland Islands
    "PCRN1ZZ": "PCRN 1ZZ",  # Pitcairn Islands
    "SIQQ1ZZ": "SIQQ 1ZZ",  # South Georgia and the South Sandwich Islands
    "STHL1ZZ": "STHL 1ZZ",  # St Helena
    "TDCU1ZZ": "TDCU 1ZZ",  # Tristan da Cunha
    "TKCA1ZZ": "TKCA 1ZZ",  # Turks and Caicos Islands
    "GX111AA": "GX11 1AA",  # Gibraltar
}

# Who can be called: a person's landline, mobile, UK-wide 03 or VoIP number.
_CALLABLE_PHONE_TYPES: Final = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.UAN,
        PhoneNumberType.VOIP,
    }
)
# Ofcom's numbers for drama and testing (national significant numbers), which
# libphonenumber treats as invalid because they are never allocated.
_OFCOM_DRAMA_NSN: Final = re.compile(
    r"7700900[0-9]{3}"
    r"|1632960[0-9]{3}"
    r"|1[1-6]14960[0-9]{3}"
    r"|11[3-8]4960[0-9]{3}"
    r"|1914980[0-9]{3}"
    r"|2079460[0-9]{3}"
    r"|2920180[0-9]{3}"
    r"|2896496[0-9]{3}"
    r"|3069990[0-9]{3}"
)
_PHONE_DIGITS_OR_PLUS: Final = re.compile(r"[^0-9+]")
_PHONE_PLAIN: Final = re.compile(r"[0-9+\s\-.()]+")
# A UK number in one of the usual spellings, reduced to its national significant number.
_UK_COMPACT: Final = re.compile(r"(?:\+44|0044)0?([1-9][0-9]{8,9})|0([1-9][0-9]{8,9})")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Control characters other than tab, line feed and carriage return, which a cell may
# hold (a multi-line address from a spreadsheet) and which are collapsed to a space.
# Checked before the collapse: Python counts \x1c-\x1f and \x85 as whitespace too.
_CONTROL_NOT_SPACE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Characters that change how text is shown without being seen: bidi embeddings, overrides
# and isolates (U+202A-U+202E, U+2066-U+2069) and marks (U+200E, U+200F, U+061C), which can
# make "Smith" display as another name or reorder a coordinator's screen, and zero-width
# characters (U+200B-U+200D, U+2060, U+FEFF), which make two different names look alike.
_INVISIBLE: Final = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff]"
)
# Lone UTF-16 surrogates: JSON may escape them ("\\ud800"), but they are not text and
# cannot be written as UTF-8 (Avro strings, logs, files).
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
# What names and addresses are made of: letters and marks of any script, digits, spaces
# and the punctuation real names and addresses use. Nothing else: no markup (<, >), no
# code punctuation (;, =, {, }, |, backslash, backtick, $), no symbols or emoji. Digits
# are allowed in names because partners' placeholder and test records carry them.
_NAME_PUNCTUATION: Final = frozenset(" '\u2019-.")
_ADDRESS_PUNCTUATION: Final = frozenset(" '\u2019-.,/&()#")
CHARSET_OF_FIELD: Final[dict[str, frozenset[str]]] = {
    "given_name": _NAME_PUNCTUATION,
    "family_name": _NAME_PUNCTUATION,
    "town": _NAME_PUNCTUATION,
    "address_line1": _ADDRESS_PUNCTUATION,
    "address_line2": _ADDRESS_PUNCTUATION,
}
# After NFC a real name has at most two combining marks in a row (Vietnamese, Indic
# scripts); more is stacked "zalgo" text that overwrites the lines around it on screen.
MAX_COMBINING_RUN: Final = 2
_ENUM_SEPARATORS: Final = re.compile(r"[\s\-]+")
_LIST_SEPARATORS: Final = re.compile(r"[;,|]")
_FORMULA_START: Final = ("=", "+", "-", "@")
_TRUE: Final = frozenset({"true", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "no", "n", "0"})

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


@dataclass(frozen=True)
class Clock:
    """The hub's idea of now, passed in so tests (and replays) are repeatable."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    today: date | None = None

    @property
    def date(self) -> date:
        return self.today if self.today is not None else self.now.date()


@dataclass(frozen=True)
class FieldRule:
    """How one input field is checked: its kind, whether it is required, its limits."""

    name: str
    label: str
    kind: str
    required: bool = False
    max_length: int | None = None
    symbols: tuple[str, ...] = ()


# --- CHI --------------------------------------------------------------------


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


def _chi_errors(value: str, name: str = "chi_number") -> tuple[str, list[FieldError]]:
    """Return the CHI without spaces and the problems with it."""
    digits = "".join(value.split())
    if not digits:
        return digits, [FieldError(name, "required", "CHI number is required but was empty.")]
    if not _DIGITS.fullmatch(digits) or not digits.isascii():
        return digits, [FieldError(name, "chi_format", "CHI number must contain digits only.")]
    if len(digits) != 10:
        message = f"CHI number must have exactly 10 digits, but has {len(digits)}."
        if len(digits) == 9:
            # The usual cause: a spreadsheet stored the CHI as a number.
            message += " A leading zero may have been lost in a spreadsheet."
        return digits, [FieldError(name, "chi_length", message)]
    errors: list[FieldError] = []
    if not _chi_date_is_real(digits[:6]):
        errors.append(
            FieldError(
                name,
                "chi_date",
                "The first six digits of the CHI number are not a real date (DDMMYY).",
            )
        )
    check = int(digits[9])
    if check not in (chi_mod11_check_digit(digits[:9]), chi_mod10_check_digit(digits[:9])):
        errors.append(
            FieldError(
                name,
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


# --- NHS number ---------------------------------------------------------------


def nhs_check_digit(first_nine: str) -> int | None:
    """The NHS number's modulus 11 check digit (weights 10..2), or None when it would be 10."""
    return chi_mod11_check_digit(first_nine)


def _nhs_errors(value: str, name: str = "nhs_number") -> tuple[str, list[FieldError]]:
    """Return the NHS number as 10 digits (spaces and hyphens removed) and its problems."""
    digits = "".join(value.replace("-", " ").split())
    if not digits:
        return digits, [FieldError(name, "required", "NHS number is required but was empty.")]
    if not _DIGITS.fullmatch(digits) or not digits.isascii():
        return digits, [FieldError(name, "nhs_format", "NHS number must contain digits only.")]
    if len(digits) != 10:
        return digits, [
            FieldError(
                name,
                "nhs_length",
                f"NHS number must have exactly 10 digits, but has {len(digits)}.",
            )
        ]
    if nhs_check_digit(digits[:9]) != int(digits[9]):
        return digits, [
            FieldError(
                name,
                "nhs_check_digit",
                "NHS number's check digit is wrong, so the number has probably been mistyped.",
            )
        ]
    return digits, []


def validate_nhs_number(value: str) -> str:
    """Return the NHS number as 10 digits, or raise RowInvalid saying why it is not one."""
    digits, errors = _nhs_errors(value)
    if errors:
        raise RowInvalid(errors)
    return digits


# --- text, dates, postcodes, phones -------------------------------------------


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


def parse_datetime(text: str) -> datetime | None:
    """Parse an ISO 8601 or DD/MM/YYYY [HH:MM[:SS]] time into UTC; no zone means UK time."""
    parsed: datetime | None = None
    uk = _UK_DATETIME.fullmatch(text)
    if uk:
        day, month, year, hour, minute, second = uk.groups()
        try:
            parsed = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
            )
        except ValueError:
            return None
    elif _ISO_DATETIME_START.match(text):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UK_TIME)
    return parsed.astimezone(UTC)


def normalise_postcode(text: str, name: str = "postcode") -> tuple[str | None, FieldError | None]:
    """Return the postcode as 'OUTWARD INWARD' in capitals, or the problem with it."""
    compact = "".join(text.split()).upper()
    if compact.startswith("BFPO"):
        return None, FieldError(
            name,
            "postcode_bfpo",
            "BFPO (British Forces Post Office) addresses are not accepted; "
            "give the person's home address.",
        )
    if compact in _OVERSEAS_POSTCODES:
        return None, FieldError(
            name,
            "postcode_overseas",
            "Postcode belongs to a British Overseas Territory, outside the UK; "
            "give the person's home address in the UK.",
        )
    if compact == _GIROBANK:
        return "GIR 0AA", None
    match = _POSTCODE.fullmatch(compact)
    if not match:
        return None, FieldError(
            name,
            "postcode_format",
            "Postcode is not a valid UK postcode (for example EH1 1AA or G2 3DB).",
        )
    return f"{match['outward']} {match['inward']}", None


def normalise_phone(text: str) -> str | None:
    """Return a UK number a person can be called on in E.164 form (+44...), else None."""
    compact = _PHONE_DIGITS_OR_PLUS.sub("", text.replace("(0)", ""))
    if not compact.startswith(("+", "0")):
        return None  # no trunk zero and no country code: a slip, not a number
    plain = _UK_COMPACT.fullmatch(compact) if _PHONE_PLAIN.fullmatch(text) else None
    if plain:
        # The usual case, without the cost of the general parser: digits, spaces and
        # punctuation only, +44 or 0 in front.
        national = plain[1] or plain[2]
        number = phonenumbers.PhoneNumber(country_code=44, national_number=int(national))
    else:
        try:
            number = phonenumbers.parse(text, "GB")
        except phonenumbers.NumberParseException:
            return None
        if number.country_code != 44 or number.extension:
            return None
        national = str(number.national_number)
    if not _OFCOM_DRAMA_NSN.fullmatch(national) and not (
        phonenumbers.number_type(number) in _CALLABLE_PHONE_TYPES
        and phonenumbers.is_valid_number(number)
    ):
        return None
    return "+44" + national


def _normalise_enum(text: str) -> str:
    """Upper-case and join words with underscores, so 'Severe respiratory' matches."""
    return _ENUM_SEPARATORS.sub("_", text).upper()


# --- one field ------------------------------------------------------------------


def _as_text(rule: FieldRule, raw: Any) -> tuple[str | None, FieldError | None]:
    """Turn what a reader produced (text, or a JSON/spreadsheet scalar) into clean text."""
    if raw is None:
        return None, None
    if type(raw) is str:
        if raw.isascii() and raw.isprintable():
            # The common case, from CSV: printable ASCII holds no surrogate, control or
            # invisible character and is its own NFC, so only the spaces need collapsing.
            return " ".join(raw.split()) or None, None
    elif isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif isinstance(raw, int):
        raw = str(raw)
    elif isinstance(raw, float):
        raw = str(int(raw)) if raw.is_integer() else str(raw)
    elif isinstance(raw, datetime):
        has_time = raw.time() != datetime.min.time() or raw.tzinfo is not None
        raw = raw.isoformat() if has_time else raw.date().isoformat()
    elif isinstance(raw, date):
        raw = raw.isoformat()
    elif not isinstance(raw, str):
        return None, FieldError(
            rule.name, "type", f"{rule.label} must be a single value, not a list or an object."
        )
    if _SURROGATES.search(raw):
        return None, FieldError(
            rule.name,
            "encoding",
            f"{rule.label} contains a lone surrogate (an escape such as \\ud800 that is not "
            "a character), which is not valid Unicode text.",
        )
    text = _clean(raw)
    if text is not None and (_CONTROL.search(text) or _CONTROL_NOT_SPACE.search(raw)):
        return None, FieldError(
            rule.name, "control_character", f"{rule.label} contains control characters."
        )
    if text is not None and _INVISIBLE.search(text):
        return None, FieldError(
            rule.name,
            "invisible_characters",
            f"{rule.label} contains invisible characters (bidirectional controls or "
            "zero-width characters), which can make it display as something else.",
        )
    return text, None


def _check_text(rule: FieldRule, text: str) -> tuple[Any, list[FieldError]]:
    errors = []
    if rule.max_length is not None and len(text) > rule.max_length:
        errors.append(
            FieldError(
                rule.name,
                "max_length",
                f"{rule.label} must be at most {rule.max_length} characters, but has {len(text)}.",
            )
        )
    if text.startswith(_FORMULA_START):
        errors.append(
            FieldError(
                rule.name,
                "formula_like",
                f"{rule.label} starts like a spreadsheet formula (=, +, - or @), "
                "which is not accepted.",
            )
        )
    allowed = CHARSET_OF_FIELD.get(rule.name)
    if allowed is not None and not errors:
        errors.extend(_charset_errors(rule, text, allowed))
    return (None if errors else text), errors


@lru_cache(maxsize=16)
def _ascii_allowed(punctuation: frozenset[str]) -> frozenset[str]:
    return frozenset(string.ascii_letters + string.digits) | punctuation


def _charset_errors(rule: FieldRule, text: str, punctuation: frozenset[str]) -> list[FieldError]:
    """Names and addresses hold letters, marks, digits and their usual punctuation only;
    the message names the kind of character, never the value."""
    if text.isascii() and _ascii_allowed(punctuation).issuperset(text):
        return []  # ASCII letters and digits are L* and Nd; anything else must be listed
    run = 0
    for char in text:
        category = unicodedata.category(char)
        if category in ("Mn", "Mc"):  # enclosing marks (Me) are symbols in a name
            run += 1
            if run > MAX_COMBINING_RUN:
                return [
                    FieldError(
                        rule.name,
                        "combining_marks",
                        f"{rule.label} stacks more than {MAX_COMBINING_RUN} accents on one "
                        "letter, which no name or address does.",
                    )
                ]
            continue
        run = 0
        if category.startswith("L") or category == "Nd" or char in punctuation:
            continue
        shown = "".join(sorted(punctuation - {" "}))
        return [
            FieldError(
                rule.name,
                "unexpected_character",
                f"{rule.label} may hold letters, digits, spaces and {shown} only; it holds "
                f"a character of another kind (Unicode category {category}).",
            )
        ]
    return []


def _check_enum(rule: FieldRule, text: str) -> tuple[Any, list[FieldError]]:
    symbol = _normalise_enum(text)
    if symbol in rule.symbols:
        return symbol, []
    return None, [
        FieldError(
            rule.name, "enum", f"{rule.label} must be one of: " + ", ".join(rule.symbols) + "."
        )
    ]


def _check_date(rule: FieldRule, text: str, clock: Clock) -> tuple[Any, list[FieldError]]:
    parsed = _parse_date(text)
    if parsed is None:
        return None, [
            FieldError(
                rule.name,
                "date_format",
                f"{rule.label} must be a real date written YYYY-MM-DD or DD/MM/YYYY.",
            )
        ]
    if rule.kind == "dob":
        if parsed > clock.date:
            return None, [FieldError(rule.name, "dob_future", f"{rule.label} is in the future.")]
        if parsed < EARLIEST_DOB:
            return None, [
                FieldError(
                    rule.name, "dob_range", f"{rule.label} is before {EARLIEST_DOB.isoformat()}."
                )
            ]
    elif rule.kind == "effective_date":
        latest = clock.date + EFFECTIVE_MAX_AHEAD
        if not EARLIEST_EFFECTIVE <= parsed <= latest:
            return None, [
                FieldError(
                    rule.name,
                    "effective_date_range",
                    f"{rule.label} must be between {EARLIEST_EFFECTIVE.isoformat()} "
                    f"and {latest.isoformat()}.",
                )
            ]
    return parsed, []


def _check_datetime(rule: FieldRule, text: str, clock: Clock) -> tuple[Any, list[FieldError]]:
    parsed = parse_datetime(text)
    if parsed is None:
        return None, [
            FieldError(
                rule.name,
                "datetime_format",
                f"{rule.label} must be a date and time written as ISO 8601, for example "
                "2020-04-01T10:15:00Z (a time without a zone is UK time).",
            )
        ]
    return _datetime_in_bounds(rule, parsed, clock)


def _datetime_in_bounds(
    rule: FieldRule, moment: datetime, clock: Clock
) -> tuple[Any, list[FieldError]]:
    if moment > clock.now + CLOCK_SKEW:
        return None, [
            FieldError(
                rule.name,
                "datetime_future",
                f"{rule.label} is in the future (more than five minutes ahead of the hub's clock).",
            )
        ]
    if moment < EARLIEST_OCCURRED:
        return None, [
            FieldError(rule.name, "datetime_range", f"{rule.label} is before the year 2000.")
        ]
    return moment, []


def _check_list(rule: FieldRule, raw: Any) -> tuple[Any, list[FieldError]]:
    """An enum list: a JSON list, or text separated by ; , or |."""
    if isinstance(raw, str):
        items: Sequence[Any] = [part for part in _LIST_SEPARATORS.split(raw) if part.strip()]
    elif isinstance(raw, list | tuple):
        items = raw
    else:
        items = []
    symbols: list[str] = []
    for item in items:
        text, problem = _as_text(rule, item)
        if problem is not None:
            return None, [problem]
        if text is None:
            continue
        symbol, errors = _check_enum(rule, text)
        if errors:
            return None, errors
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        return None, [
            FieldError(
                rule.name,
                "required",
                f"{rule.label} is required: give at least one of " + ", ".join(rule.symbols) + ".",
            )
        ]
    return symbols, []


def _check_value(rule: FieldRule, text: str, clock: Clock) -> tuple[Any, list[FieldError]]:
    """Check and normalise one non-blank value according to its rule's kind."""
    kind = rule.kind
    if kind in ("text", "identifier"):
        return _check_text(rule, text)
    if kind == "chi":
        digits, errors = _chi_errors(text, rule.name)
        return (None if errors else digits), errors
    if kind == "nhs":
        digits, errors = _nhs_errors(text, rule.name)
        return (None if errors else digits), errors
    if kind in ("date", "dob", "effective_date"):
        return _check_date(rule, text, clock)
    if kind == "datetime":
        return _check_datetime(rule, text, clock)
    if kind == "postcode":
        postcode, error = normalise_postcode(text, rule.name)
        return postcode, ([] if error is None else [error])
    if kind == "phone":
        phone = normalise_phone(text)
        if phone is None:
            return None, [
                FieldError(
                    rule.name,
                    "phone_format",
                    f"{rule.label} must be a UK landline or mobile number, "
                    "for example 0131 496 0000 or 07700 900123; leave it empty if unknown.",
                )
            ]
        return phone, []
    if kind == "enum":
        return _check_enum(rule, text)
    if kind == "boolean":
        folded = text.casefold()
        if folded in _TRUE or folded in _FALSE:
            return folded in _TRUE, []
        return None, [
            FieldError(rule.name, "boolean", f"{rule.label} must be yes or no (or true/false).")
        ]
    if kind == "org":
        if is_org_id(text):
            return text, []
        return None, [
            FieldError(
                rule.name,
                "org_format",
                f"{rule.label} must be an organisation id such as city-of-edinburgh.",
            )
        ]
    if kind == "council":
        council = _COUNCIL_BY_FOLDED_NAME.get(text.casefold())
        if council is None:
            return None, [
                FieldError(
                    rule.name,
                    "council_area_unknown",
                    "Council area must be one of the 32 Scottish council area names, "
                    "written in full (for example City of Edinburgh, Glasgow City, "
                    "Na h-Eileanan Siar).",
                )
            ]
        return council, []
    if kind == "board":
        board = _BOARD_BY_FOLDED_NAME.get(text.casefold())
        if board is None:
            return None, [
                FieldError(
                    rule.name,
                    "health_board_unknown",
                    "Health board must be one of the 14 NHS Scotland territorial boards, "
                    "written in full (for example NHS Lothian).",
                )
            ]
        return board, []
    raise ValueError(f"unknown field kind {kind!r}")


def check_fields(
    rules: Sequence[FieldRule], row: Mapping[str, Any], clock: Clock
) -> tuple[dict[str, Any], list[FieldError]]:
    """Check every field of a row; return the normalised values and every problem found.

    A field with a problem is None in the values, so cross-field rules can tell
    a valid value from a missing or broken one.
    """
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for rule in rules:
        raw = row.get(rule.name)
        if rule.kind == "enum_list":
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                value, problems = (
                    None,
                    (
                        [
                            FieldError(
                                rule.name, "required", f"{rule.label} is required but was empty."
                            )
                        ]
                        if rule.required
                        else []
                    ),
                )
            else:
                value, problems = _check_list(rule, raw)
        else:
            text, problem = _as_text(rule, raw)
            if problem is not None:
                value, problems = None, [problem]
            elif text is None:
                value = None
                problems = (
                    [FieldError(rule.name, "required", f"{rule.label} is required but was empty.")]
                    if rule.required
                    else []
                )
            else:
                value, problems = _check_value(rule, text, clock)
        values[rule.name] = value
        errors.extend(problems)
    return values, errors


def check_chi_matches_dob(
    values: Mapping[str, Any], errors: list[FieldError], dob_field: str = "date_of_birth"
) -> None:
    """A valid CHI and a valid date of birth must agree on DDMMYY."""
    chi, dob = values.get("chi_number"), values.get(dob_field)
    if chi is None or dob is None:
        return
    if dob.strftime("%d%m%y") != chi[:6]:
        errors.append(
            FieldError(
                dob_field,
                "chi_dob_mismatch",
                "Date of birth does not match the date held in the CHI number "
                "(its first six digits, DDMMYY).",
            )
        )


def check_council_in_board(values: Mapping[str, Any], errors: list[FieldError]) -> None:
    """A council area must be served by the health board named beside it."""
    council, board = values.get("council_area"), values.get("health_board")
    if council is not None and board is not None and BOARD_OF_COUNCIL[council] != board:
        errors.append(
            FieldError(
                "council_area",
                "council_not_in_board",
                f"Council area {council} is not served by {board}; "
                f"it is served by {BOARD_OF_COUNCIL[council]}.",
            )
        )


def check_moment(
    name: str, label: str, moment: datetime, clock: Clock
) -> tuple[datetime | None, list[FieldError]]:
    """Bounds of an already-typed time (decoded from Avro): not before 2000, not ahead."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _datetime_in_bounds(FieldRule(name, label, "datetime"), moment, clock)


# --- the shielding list -----------------------------------------------------------


def _rule(name: str, label: str, kind: str, **options: Any) -> FieldRule:
    return FieldRule(name, label, kind, **options)


SHIELDING_RULES: Final[tuple[FieldRule, ...]] = (
    _rule("chi_number", "CHI number", "chi", required=True),
    _rule("given_name", "Given name", "text", required=True, max_length=NAME_MAX),
    _rule("family_name", "Family name", "text", required=True, max_length=NAME_MAX),
    _rule("date_of_birth", "Date of birth", "dob", required=True),
    _rule("address_line1", "Address line 1", "text", required=True, max_length=ADDRESS_MAX),
    _rule("address_line2", "Address line 2", "text", max_length=ADDRESS_MAX),
    _rule("town", "Town", "text", max_length=NAME_MAX),
    _rule("postcode", "Postcode", "postcode", required=True),
    _rule("council_area", "Council area", "council", required=True),
    _rule("health_board", "Health board", "board", required=True),
    _rule(
        "clinical_risk_group",
        "Clinical risk group",
        "enum",
        required=True,
        symbols=CLINICAL_RISK_GROUPS,
    ),
    _rule(
        "shielding_status", "Shielding status", "enum", required=True, symbols=SHIELDING_STATUSES
    ),
    _rule("contact_phone", "Contact phone", "phone"),
    _rule("effective_date", "Effective date", "effective_date", required=True),
)
"""The rules of a shielding-list row, in file order (the same order as COLUMNS)."""


def validate_shielding_row(
    row: Mapping[str, Any], *, today: date | None = None, clock: Clock | None = None
) -> dict[str, object]:
    """Check one shielding-list row and return it normalised for Avro.

    Every field is checked and all problems are raised together in one
    RowInvalid, so a data officer can fix a row in one pass.
    """
    clock = clock if clock is not None else Clock(today=today if today else date.today())
    values, errors = check_fields(SHIELDING_RULES, row, clock)
    check_chi_matches_dob(values, errors)
    check_council_in_board(values, errors)
    if errors:
        raise RowInvalid(errors)
    return values
