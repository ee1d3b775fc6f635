"""Field rules beyond the shielding list, and the other datasets: tables of good and bad."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from accord.ingest.datasets import DATASETS
from accord.ingest.validation import (
    Clock,
    FieldRule,
    RowInvalid,
    check_fields,
    nhs_check_digit,
    normalise_phone,
    normalise_postcode,
    parse_datetime,
    validate_nhs_number,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLOCK = Clock(now=NOW, today=NOW.date())


def nhs_reference(first_nine: str) -> int | None:
    """Independent modulus 11 (weights 10..2; 11 -> 0; 10 -> no number)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return {11: 0, 10: None}.get(check, check)


def with_nhs_digit(first_nine: str) -> str:
    check = nhs_reference(first_nine)
    assert check is not None
    return first_nine + str(check)


# A prefix whose check would be 10: no NHS number can start with it.
NO_DIGIT_PREFIX = next(
    f"{n:09d}" for n in range(400000000, 400001000) if nhs_reference(f"{n:09d}") is None
)


# --- NHS numbers ------------------------------------------------------------------


def test_nhs_reference_agrees_with_the_published_example() -> None:
    # NHS Digital's example 943 476 5919: 9*10+4*9+3*8+4*7+7*6+6*5+5*4+9*3+1*2 = 299;
    # 299 mod 11 = 2; 11 - 2 = 9.
    assert nhs_reference("943476591") == 9
    assert nhs_check_digit("943476591") == 9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9434765919", "9434765919"),
        ("943 476 5919", "9434765919"),
        ("943-476-5919", "9434765919"),
        (with_nhs_digit("401023213"), with_nhs_digit("401023213")),
        (with_nhs_digit("999000001"), with_nhs_digit("999000001")),  # test range: accepted
        (with_nhs_digit("600000001"), with_nhs_digit("600000001")),
    ],
)
def test_nhs_number_accepted(value: str, expected: str) -> None:
    assert validate_nhs_number(value) == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("9434765918", "nhs_check_digit"),
        ("9434765910", "nhs_check_digit"),
        (NO_DIGIT_PREFIX + "0", "nhs_check_digit"),  # check would be 10: never valid
        (NO_DIGIT_PREFIX + "1", "nhs_check_digit"),
        ("943476591", "nhs_length"),
        ("94347659190", "nhs_length"),
        ("943476591X", "nhs_format"),
        ("９４３４７６５９１９", "nhs_format"),
        ("", "required"),
    ],
)
def test_nhs_number_rejected(value: str, rule: str) -> None:
    with pytest.raises(RowInvalid) as caught:
        validate_nhs_number(value)
    assert [e.rule for e in caught.value.errors] == [rule]
    assert "9434" not in str(caught.value)


def test_every_nhs_digit_but_the_right_one_is_refused() -> None:
    for digit in range(10):
        number = f"943476591{digit}"
        if digit == 9:
            assert validate_nhs_number(number) == number
        else:
            with pytest.raises(RowInvalid):
                validate_nhs_number(number)


# --- postcodes: special cases --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "rule"),
    [
        ("gir0aa", "GIR 0AA", None),
        ("GIR 0AA", "GIR 0AA", None),
        ("ze1 0aa", "ZE1 0AA", None),
        ("BFPO 57", None, "postcode_bfpo"),
        ("bfpo57", None, "postcode_bfpo"),
        ("ASCN 1ZZ", None, "postcode_overseas"),
        ("biqq1zz", None, "postcode_overseas"),
        ("BBND 1ZZ", None, "postcode_overseas"),
        ("FIQQ 1ZZ", None, "postcode_overseas"),
        ("PCRN 1ZZ", None, "postcode_overseas"),
        ("SIQQ 1ZZ", None, "postcode_overseas"),
        ("STHL 1ZZ", None, "postcode_overseas"),
        ("TDCU 1ZZ", None, "postcode_overseas"),
        ("TKCA 1ZZ", None, "postcode_overseas"),
        ("GX11 1AA", None, "postcode_overseas"),  # Gibraltar fits the UK pattern
        ("SAN TA1", None, "postcode_format"),
        ("KY1-1234", None, "postcode_format"),  # Cayman Islands style
    ],
)
def test_postcode_special_cases(value: str, expected: str | None, rule: str | None) -> None:
    postcode, error = normalise_postcode(value)
    assert postcode == expected
    assert (error.rule if error else None) == rule


# --- phones ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("07911 123456", "+447911123456"),  # a real mobile range
        ("0131 225 1234", "+441312251234"),  # a real Edinburgh landline range
        ("+44 (0) 131 225 1234", "+441312251234"),
        ("01534 123456", "+441534123456"),  # Jersey: +44 too
        ("07700 900000", "+447700900000"),  # Ofcom drama range, invalid to libphonenumber
        ("01632 960999", "+441632960999"),
        ("020 7946 0123", "+442079460123"),
        ("0113 496 0000", "+441134960000"),
    ],
)
def test_phone_accepted(value: str, expected: str) -> None:
    assert normalise_phone(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "7911 123456",  # no trunk zero: cannot tell from a slip
        "0800 123 4567",  # freephone
        "0906 123 4567",  # premium rate
        "07000 123456",  # personal numbering
        "07600 123456",  # pager
        "+353 1 234 5678",
        "+1 202 555 0100",
        "0131 225 1234 ext 5",
        "phone me",
        "",
    ],
)
def test_phone_refused(value: str) -> None:
    assert normalise_phone(value) is None


# --- times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-04-01T10:15:00Z", datetime(2020, 4, 1, 10, 15, tzinfo=UTC)),
        ("2020-04-01T10:15:00+00:00", datetime(2020, 4, 1, 10, 15, tzinfo=UTC)),
        ("2020-07-01 10:15", datetime(2020, 7, 1, 9, 15, tzinfo=UTC)),  # BST, no zone given
        ("2020-01-15 10:15", datetime(2020, 1, 15, 10, 15, tzinfo=UTC)),  # GMT
        ("01/07/2020 10:15", datetime(2020, 7, 1, 9, 15, tzinfo=UTC)),
        ("01/07/2020 10:15:30", datetime(2020, 7, 1, 9, 15, 30, tzinfo=UTC)),
        ("01/07/2020", datetime(2020, 6, 30, 23, 0, tzinfo=UTC)),
        ("2020-04-01", datetime(2020, 3, 31, 23, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime(value: str, expected: datetime) -> None:
    assert parse_datetime(value) == expected


OCCURRED = (FieldRule("occurred_at", "Occurred at", "datetime", required=True),)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ((NOW + timedelta(minutes=4)).isoformat(), None),  # within the clock skew
        (NOW.isoformat(), None),
        ((NOW + timedelta(minutes=6)).isoformat(), "datetime_future"),
        ("2030-01-01T00:00:00Z", "datetime_future"),
        ("1999-12-31T23:59:59Z", "datetime_range"),
        ("2000-01-01T00:00:00Z", None),
        ("yesterday", "datetime_format"),
        ("2020-02-30T10:00", "datetime_format"),
        ("31/02/2020 10:00", "datetime_format"),
        ("2020-04-01T25:00", "datetime_format"),
        ("", "required"),
    ],
)
def test_occurred_at_bounds(value: str, rule: str | None) -> None:
    _, errors = check_fields(OCCURRED, {"occurred_at": value}, CLOCK)
    assert [e.rule for e in errors] == ([rule] if rule else [])


# --- text, lists, booleans, types --------------------------------------------------

TEXT = (FieldRule("family_name", "Family name", "text", max_length=10),)


@pytest.mark.parametrize(
    ("value", "expected", "rule"),
    [
        ("  Ó   Briain ", "Ó Briain", None),
        ("Siobha\u0301n", "Siobhán", None),  # composed to NFC
        ("MacAoidh", "MacAoidh", None),
        ('=HYP("x")', None, "formula_like"),
        ("+1+2", None, "formula_like"),
        ("-Smith", None, "formula_like"),
        ("@SUM(A1)", None, "formula_like"),
        ("Kerr\x00", None, "control_character"),
        ("Kerr\x1b[31m", None, "control_character"),
        ("Ke\x1crr", None, "control_character"),  # Python's str.split() counts it as space
        ("Ke\x85rr", None, "control_character"),
        ("Ó\r\nBriain\t", "Ó Briain", None),  # a multi-line cell: collapsed
        ("Kerr\u202e", None, "invisible_characters"),  # right-to-left override
        ("\u202dKerr\u202c", None, "invisible_characters"),  # LRO ... PDF
        ("Ke\u2067rr\u2069", None, "invisible_characters"),  # RLI ... PDI
        ("\u2066Kerr", None, "invisible_characters"),
        ("\u2068Kerr", None, "invisible_characters"),
        ("Ke\u200brr", None, "invisible_characters"),  # zero-width space
        ("Ke\u200crr", None, "invisible_characters"),
        ("Ke\u200drr", None, "invisible_characters"),
        ("Ke\u2060rr", None, "invisible_characters"),  # word joiner
        ("\ufeffKerr", None, "invisible_characters"),  # a byte-order mark inside a cell
        ("Kerr\u200f", None, "invisible_characters"),  # right-to-left mark
        ("\u0645\u062d\u0645\u062f", "\u0645\u062d\u0645\u062f", None),  # right-to-left script
        ("Ó'Néill", "Ó'Néill", None),
        ("Nguyễn", "Nguyễn", None),
        ("Ōtake-Ní", "Ōtake-Ní", None),
        ("x" * 11, None, "max_length"),
        ("<b>Kerr", None, "unexpected_character"),  # markup
        ("Kerr');--", None, "unexpected_character"),  # SQL punctuation
        ("Kerr|cmd", None, "unexpected_character"),
        ("Ke{rr}", None, "unexpected_character"),
        ("Kerr\U0001f600", None, "unexpected_character"),  # an emoji is no letter
        ("Ke\u0336\u0336\u0336rr", None, "combining_marks"),  # stacked "zalgo" marks
        ("K\u20dderr", None, "unexpected_character"),  # an enclosing circle
        ("Kerr\ud800", None, "encoding"),  # a lone surrogate, as JSON can escape one
        ("Kerr2", "Kerr2", None),  # placeholder records carry digits
        ("O\u2019Neill", "O\u2019Neill", None),
        ("St. Clair", "St. Clair", None),
        (["Kerr"], None, "type"),
        ({"name": "Kerr"}, None, "type"),
    ],
)
def test_text_fields(value: object, expected: str | None, rule: str | None) -> None:
    values, errors = check_fields(TEXT, {"family_name": value}, CLOCK)
    assert values["family_name"] == expected
    assert [e.rule for e in errors] == ([rule] if rule else [])


ADDRESS = (FieldRule("address_line1", "Address line 1", "text", max_length=60),)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("Flat 0/1, 12 High Street", None),
        ("3F2 (rear), 7 Marchmont Road", None),
        ("Unit #4 & 5", None),
        ("1 <script>alert(1)</script> Road", "unexpected_character"),
        ("1 Road'; DROP TABLE cases; --", "unexpected_character"),
        ("1' OR '1'='1", "unexpected_character"),
        ("${jndi:ldap://x}", "unexpected_character"),
    ],
)
def test_address_characters(value: str, rule: str | None) -> None:
    _, errors = check_fields(ADDRESS, {"address_line1": value}, CLOCK)
    assert [e.rule for e in errors] == ([rule] if rule else [])
    assert all(value not in e.message for e in errors)  # the message never quotes it


NEEDS = (
    FieldRule("needs", "Needs", "enum_list", required=True, symbols=("FOOD", "MEDICINE", "OTHER")),
)


@pytest.mark.parametrize(
    ("value", "expected", "rule"),
    [
        ("food", ["FOOD"], None),
        ("Food; medicine", ["FOOD", "MEDICINE"], None),
        ("food,MEDICINE|other", ["FOOD", "MEDICINE", "OTHER"], None),
        (["food", "Food", "medicine"], ["FOOD", "MEDICINE"], None),
        ("", None, "required"),
        ([], None, "required"),
        ("food; cake", None, "enum"),
        ([{"a": 1}], None, "type"),
    ],
)
def test_enum_lists(value: object, expected: list[str] | None, rule: str | None) -> None:
    values, errors = check_fields(NEEDS, {"needs": value}, CLOCK)
    assert values["needs"] == expected
    assert [e.rule for e in errors] == ([rule] if rule else [])


LIVES_ALONE = (FieldRule("lives_alone", "Lives alone", "boolean"),)


@pytest.mark.parametrize(
    ("value", "expected", "rule"),
    [
        ("yes", True, None),
        ("Y", True, None),
        (True, True, None),
        ("false", False, None),
        ("0", False, None),
        (0, False, None),
        ("", None, None),
        ("sometimes", None, "boolean"),
    ],
)
def test_booleans(value: object, expected: bool | None, rule: str | None) -> None:
    values, errors = check_fields(LIVES_ALONE, {"lives_alone": value}, CLOCK)
    assert values["lives_alone"] is expected
    assert [e.rule for e in errors] == ([rule] if rule else [])


def test_spreadsheet_numbers_and_dates_become_text() -> None:
    rules = (
        FieldRule("chi_number", "CHI number", "chi"),
        FieldRule("date_of_birth", "Date of birth", "dob"),
    )
    values, errors = check_fields(
        rules, {"chi_number": 1403521239.0, "date_of_birth": datetime(1952, 3, 14)}, CLOCK
    )
    assert errors == []
    assert values == {"chi_number": "1403521239", "date_of_birth": date(1952, 3, 14)}
    _, errors = check_fields(rules, {"chi_number": 101011237, "date_of_birth": None}, CLOCK)
    assert [e.rule for e in errors] == ["chi_length"]  # the spreadsheet ate the leading zero


# --- the other datasets ----------------------------------------------------------------


def request(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "occurred_at": "2020-04-01T10:15:00Z",
        "request_id": "EDI-2020-000123",
        "chi_number": "1403521239",
        "nhs_number": "",
        "given_name": "Siobhán",
        "family_name": "Ó Briain",
        "date_of_birth": "1952-03-14",
        "address_line1": "12 Marchmont Road",
        "postcode": "eh9 1hb",
        "council_area": "city of edinburgh",
        "contact_phone": "0131 496 0000",
        "lives_alone": "yes",
        "needs": "food; medicine",
        "urgency": "within 48 hours",
        "channel": "helpline",
    }
    row.update(overrides)
    return row


def rules_of(dataset: str, row: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(RowInvalid) as caught:
        DATASETS[dataset].validate(row, CLOCK)
    return [(e.field, e.rule) for e in caught.value.errors]


def test_support_request_is_normalised() -> None:
    assert DATASETS["support-request"].validate(request(), CLOCK) == {
        "occurred_at": datetime(2020, 4, 1, 10, 15, tzinfo=UTC),
        "request_id": "EDI-2020-000123",
        "chi_number": "1403521239",
        "nhs_number": None,
        "given_name": "Siobhán",
        "family_name": "Ó Briain",
        "date_of_birth": date(1952, 3, 14),
        "address_line1": "12 Marchmont Road",
        "postcode": "EH9 1HB",
        "council_area": "City of Edinburgh",
        "contact_phone": "+441314960000",
        "lives_alone": True,
        "needs": ["FOOD", "MEDICINE"],
        "urgency": "WITHIN_48_HOURS",
        "channel": "HELPLINE",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"chi_number": ""},  # name, date of birth and postcode are enough
        {"chi_number": "", "date_of_birth": ""},  # family name and postcode
        {"chi_number": "", "postcode": ""},  # family name and date of birth
        {"chi_number": "", "nhs_number": "943 476 5919", "family_name": "", "postcode": ""},
    ],
)
def test_support_request_identities_accepted(overrides: dict[str, object]) -> None:
    assert DATASETS["support-request"].validate(request(**overrides), CLOCK)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"chi_number": "", "date_of_birth": "", "postcode": ""},
            [("chi_number", "identity_missing")],
        ),
        ({"chi_number": "", "family_name": ""}, [("chi_number", "identity_missing")]),
        ({"chi_number": "1403521230"}, [("chi_number", "chi_check_digit")]),
        ({"chi_number": "", "nhs_number": "9434765918"}, [("nhs_number", "nhs_check_digit")]),
        ({"date_of_birth": "1952-03-15"}, [("date_of_birth", "chi_dob_mismatch")]),
        ({"request_id": ""}, [("request_id", "required")]),
        ({"request_id": "x" * 65}, [("request_id", "max_length")]),
        ({"occurred_at": ""}, [("occurred_at", "required")]),
        ({"needs": ""}, [("needs", "required")]),
        ({"needs": "food; hugs"}, [("needs", "enum")]),
        ({"urgency": "soon"}, [("urgency", "enum")]),
        ({"channel": "pigeon"}, [("channel", "enum")]),
        ({"lives_alone": "maybe"}, [("lives_alone", "boolean")]),
        ({"council_area": "Edinburgh"}, [("council_area", "council_area_unknown")]),
        ({"postcode": "BFPO 57"}, [("postcode", "postcode_bfpo")]),
        ({"contact_phone": "0800 123 4567"}, [("contact_phone", "phone_format")]),
    ],
)
def test_support_request_rejected(
    overrides: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    assert rules_of("support-request", request(**overrides)) == expected


def outcome(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "occurred_at": "2020-04-02 14:00",
        "request_id": "EDI-2020-000123",
        "request_org": "city-of-edinburgh",
        "need": "Food",
        "outcome": "delivered",
    }
    row.update(overrides)
    return row


def test_support_outcome_is_normalised() -> None:
    assert DATASETS["support-outcome"].validate(outcome(), CLOCK) == {
        "occurred_at": datetime(2020, 4, 2, 13, 0, tzinfo=UTC),
        "request_id": "EDI-2020-000123",
        "request_org": "city-of-edinburgh",
        "need": "FOOD",
        "outcome": "DELIVERED",
    }
    minimal = outcome(request_org="", need="")
    assert DATASETS["support-outcome"].validate(minimal, CLOCK)["need"] is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"outcome": ""}, [("outcome", "required")]),
        ({"outcome": "lost"}, [("outcome", "enum")]),
        ({"need": "hugs"}, [("need", "enum")]),
        ({"request_org": "City of Edinburgh"}, [("request_org", "org_format")]),
        ({"occurred_at": "2031-01-01T00:00:00Z"}, [("occurred_at", "datetime_future")]),
    ],
)
def test_support_outcome_rejected(
    overrides: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    assert rules_of("support-outcome", outcome(**overrides)) == expected


def consent(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "occurred_at": "2020-05-01T09:00:00Z",
        "chi_number": "1403521239",
        "scope": "all sharing",
        "change": "opt-out",
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, None),
        ({"chi_number": "", "nhs_number": "9434765919"}, None),
        ({"chi_number": "", "family_name": "Kerr", "postcode": "EH1 1AA"}, None),
        ({"chi_number": ""}, [("chi_number", "identity_missing")]),
        ({"change": "maybe"}, [("change", "enum")]),
        ({"scope": ""}, [("scope", "required")]),
    ],
)
def test_consent_change(overrides: dict[str, object], expected: list | None) -> None:
    row = consent(**overrides)
    if expected is None:
        result = DATASETS["consent-change"].validate(row, CLOCK)
        assert result["change"] == "OPT_OUT" and result["scope"] == "ALL_SHARING"
    else:
        assert rules_of("consent-change", row) == expected


PERSONAL = ("1403521239", "Siobh", "Briain", "Marchmont", "EH9", "225", "1952")


@pytest.mark.parametrize(
    "overrides",
    [
        {"chi_number": "1403521230"},
        {"date_of_birth": "1952-03-15"},
        {"postcode": "EH9 1H"},
        {"contact_phone": "0131 225"},
        {"family_name": "=Briain()", "given_name": "Siobhán" * 20},
        {"address_line1": "Marchmont" * 30},
    ],
)
def test_request_messages_never_echo_values(overrides: dict[str, object]) -> None:
    with pytest.raises(RowInvalid) as caught:
        DATASETS["support-request"].validate(request(**overrides), CLOCK)
    for fragment in PERSONAL:
        assert fragment not in str(caught.value)


# --- the fast paths for plain ASCII give what the general rules give -----------------


class _Text(str):
    """A str subclass: `_as_text` takes its general path for it, not the ASCII one."""


@pytest.mark.parametrize(
    "raw",
    [
        "Margaret",
        "  12   High  Street ",
        "",
        "   ",
        "O'Neill-Smith",
        "Flat 2/1, 10 Duke St",
        "tab\there",
        "line\nbreak",
        "bell\x07",
        "delete\x7f",
        "unit\x1fsep",
        "non\u00a0breaking",
        "Siobha\u0301n",
        "zero\u200bwidth",
        "=SUM(A1)",
    ],
)
def test_text_reads_the_same_on_the_ascii_fast_path_and_the_general_one(raw):
    from accord.ingest.validation import FieldRule, _as_text

    rule = FieldRule("given_name", "Given name", "text")
    assert _as_text(rule, raw) == _as_text(rule, _Text(raw))


def test_names_take_exactly_letters_digits_and_their_punctuation_among_ascii():
    import unicodedata

    from accord.ingest.validation import CHARSET_OF_FIELD, FieldRule, _charset_errors

    for name, punctuation in CHARSET_OF_FIELD.items():
        rule = FieldRule(name, name, "text")
        for code in range(0x20, 0x7F):
            char = chr(code)
            expected = (
                unicodedata.category(char).startswith("L")
                or unicodedata.category(char) == "Nd"
                or char in punctuation
            )
            errors = _charset_errors(rule, f"Ab{char}9", punctuation)
            assert (errors == []) is expected, (name, char)
            assert expected or errors[0].rule == "unexpected_character"
