"""Unit tests for shielding-row validation: valid and invalid cases side by side."""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import pytest

from accord.core.errors import AccordError
from accord.core.scotland import BOARD_OF_COUNCIL
from accord.ingest.validation import (
    CLINICAL_RISK_GROUPS,
    COLUMNS,
    SHIELDING_STATUSES,
    FieldError,
    RowInvalid,
    chi_mod10_check_digit,
    chi_mod11_check_digit,
    validate_chi,
    validate_shielding_row,
)

TODAY = date(2026, 11, 27)


def mod11_digit(first_nine: str) -> int | None:
    """Independent modulus 11 reference, so the module is not tested against itself."""
    total = sum(int(d) * w for d, w in zip(first_nine, (10, 9, 8, 7, 6, 5, 4, 3, 2), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def luhn_digit(first_nine: str) -> int:
    """Independent Luhn reference: double every second digit from the right."""
    total = 0
    for i, d in enumerate(reversed(first_nine)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n // 10 + n % 10
    return (10 - total % 10) % 10


def with_check_digit(first_nine: str) -> str:
    """Append the modulus 11 check digit; the prefix must have one."""
    check = mod11_digit(first_nine)
    assert check is not None, f"{first_nine} has no modulus 11 check digit"
    return first_nine + str(check)


def wrong_check_digit(first_nine: str) -> str:
    """Append a check digit that passes neither modulus 11 nor modulus 10."""
    valid = {mod11_digit(first_nine), luhn_digit(first_nine)}
    return first_nine + str(min(d for d in range(10) if d not in valid))


# Worked by hand (weights 10..2, check = 11 - sum mod 11):
#   140352123: 10+36+0+21+30+10+4+6+6 = 123; 123 mod 11 = 2; check 9.
#   251240456: 20+45+8+14+24+0+16+15+12 = 154; 154 mod 11 = 0; 11 -> check 0.
#   010101123: 0+9+0+7+0+5+4+6+6 = 37; 37 mod 11 = 4; check 7.
#   010150103: 0+9+0+7+30+0+4+0+6 = 56; 56 mod 11 = 1; 10 -> no modulus 11 digit;
#              Luhn: doubled 0,0,5->1,1->2,3->6 plus 1,1,0,0 = 11; check 9.
#   010120123: modulus 11 gives 0; Luhn gives 4 (the example Public Health
#              Scotland uses for a number that passes only modulus 10).
CHI_MOD11 = "1403521239"
CHI_MOD11_ELEVEN_IS_ZERO = "2512404560"
CHI_MOD11_OTHER = "0101011237"
CHI_MOD10_ONLY = "0101201234"
CHI_MOD10_WHERE_MOD11_IS_TEN = "0101501039"


def valid_row(**overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "chi_number": CHI_MOD11,
        "given_name": "Siobhán",
        "family_name": "Ó Briain",
        "date_of_birth": "1952-03-14",
        "address_line1": "Flat 3F2",
        "address_line2": "12 Marchmont Road",
        "town": "Edinburgh",
        "postcode": "EH9 1HB",
        "council_area": "City of Edinburgh",
        "health_board": "NHS Lothian",
        "clinical_risk_group": "SEVERE_RESPIRATORY",
        "shielding_status": "SHIELDING",
        "contact_phone": "07700 900456",
        "effective_date": "2020-06-01",
    }
    row.update(overrides)
    return row


def rules_of(row: dict[str, str | None]) -> list[tuple[str, str]]:
    with pytest.raises(RowInvalid) as caught:
        validate_shielding_row(row, today=TODAY)
    return [(error.field, error.rule) for error in caught.value.errors]


# --- CHI ------------------------------------------------------------------


def test_reference_helpers_agree_with_hand_worked_digits() -> None:
    assert mod11_digit("140352123") == 9
    assert mod11_digit("251240456") == 0
    assert mod11_digit("010150103") is None
    assert luhn_digit("010150103") == 9
    assert luhn_digit("010120123") == 4


@pytest.mark.parametrize(
    "first_nine",
    ["140352123", "251240456", "010101123", "010150103", "010120123", "999999999", "000000000"],
)
def test_check_digit_functions_match_references(first_nine: str) -> None:
    assert chi_mod11_check_digit(first_nine) == mod11_digit(first_nine)
    assert chi_mod10_check_digit(first_nine) == luhn_digit(first_nine)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CHI_MOD11, CHI_MOD11),
        (CHI_MOD11_ELEVEN_IS_ZERO, CHI_MOD11_ELEVEN_IS_ZERO),
        (CHI_MOD11_OTHER, CHI_MOD11_OTHER),
        (CHI_MOD10_ONLY, CHI_MOD10_ONLY),
        (CHI_MOD10_WHERE_MOD11_IS_TEN, CHI_MOD10_WHERE_MOD11_IS_TEN),
        ("140 352 1239", CHI_MOD11),
        (" 1403521239 ", CHI_MOD11),
        (with_check_digit("290200123"), with_check_digit("290200123")),  # 29 Feb 2000
        (with_check_digit("311299456"), with_check_digit("311299456")),
        (with_check_digit("010125789"), with_check_digit("010125789")),
        ("0101201230", "0101201230"),  # same prefix as the modulus 10 example, modulus 11 digit
    ],
)
def test_validate_chi_accepts(value: str, expected: str) -> None:
    assert validate_chi(value) == expected


@pytest.mark.parametrize(
    ("value", "rules"),
    [
        (wrong_check_digit("140352123"), ["chi_check_digit"]),
        ("1403521230", ["chi_check_digit"]),
        ("0101201233", ["chi_check_digit"]),
        # Modulus 11 gives 10 here, so only the Luhn digit 9 is valid.
        ("0101501030", ["chi_check_digit"]),
        ("0101501035", ["chi_check_digit"]),
        ("140352123", ["chi_length"]),
        ("14035212399", ["chi_length"]),
        ("", ["required"]),
        ("14035212A9", ["chi_format"]),
        ("1403-521239", ["chi_format"]),
        ("１４０３５２１２３９", ["chi_format"]),  # full-width digits are not digits here
        (with_check_digit("310252123"), ["chi_date"]),  # 31 February
        (with_check_digit("290201123"), ["chi_date"]),  # 29 February in 1901 or 2001
        (with_check_digit("001252124"), ["chi_date"]),  # day 00
        (with_check_digit("011352123"), ["chi_date"]),  # month 13
    ],
)
def test_validate_chi_rejects(value: str, rules: list[str]) -> None:
    with pytest.raises(RowInvalid) as caught:
        validate_chi(value)
    assert [error.rule for error in caught.value.errors] == rules
    assert all(error.field == "chi_number" for error in caught.value.errors)


def test_nine_digit_chi_hints_at_a_lost_leading_zero() -> None:
    with pytest.raises(RowInvalid, match="leading zero"):
        validate_chi(CHI_MOD11_OTHER[1:])


def test_every_prefix_has_exactly_the_check_digits_the_rules_allow() -> None:
    # Walk every serial of one date: accepted digits are exactly {mod 11, Luhn}.
    for serial in range(1000):
        first_nine = f"140352{serial:03d}"
        allowed = {mod11_digit(first_nine), luhn_digit(first_nine)} - {None}
        for digit in range(10):
            chi = f"{first_nine}{digit}"
            if digit in allowed:
                assert validate_chi(chi) == chi
            else:
                with pytest.raises(RowInvalid):
                    validate_chi(chi)


# --- a whole row ----------------------------------------------------------


def test_valid_row_is_normalised_for_avro() -> None:
    row = valid_row(
        chi_number=" 140352 1239 ",
        given_name="  Siobha\u0301n ",  # the accent as a combining mark
        family_name="Ó   Briain",
        date_of_birth="14/03/1952",
        address_line1="  Flat 3F2 ",
        address_line2="",
        town="   ",
        postcode="eh91hb",
        council_area="city of  edinburgh",
        health_board="nhs lothian",
        clinical_risk_group="severe respiratory",
        shielding_status="not-shielding",
        contact_phone="+44 (0)131 496 0000",
        effective_date="01/06/2020",
    )
    assert validate_shielding_row(row, today=TODAY) == {
        "chi_number": "1403521239",
        "given_name": "Siobhán",
        "family_name": "Ó Briain",
        "date_of_birth": date(1952, 3, 14),
        "address_line1": "Flat 3F2",
        "address_line2": None,
        "town": None,
        "postcode": "EH9 1HB",
        "council_area": "City of Edinburgh",
        "health_board": "NHS Lothian",
        "clinical_risk_group": "SEVERE_RESPIRATORY",
        "shielding_status": "NOT_SHIELDING",
        "contact_phone": "+441314960000",
        "effective_date": date(2020, 6, 1),
    }


def test_result_has_exactly_the_columns_and_ignores_extra_ones() -> None:
    row = valid_row()
    row["notes"] = "anything"
    result = validate_shielding_row(row, today=TODAY)
    assert tuple(result) == COLUMNS


def test_names_keep_case_and_punctuation() -> None:
    result = validate_shielding_row(
        valid_row(given_name="marie-claire", family_name="Mac an t-Saoir"), today=TODAY
    )
    assert (result["given_name"], result["family_name"]) == ("marie-claire", "Mac an t-Saoir")


def test_today_defaults_to_the_real_date() -> None:
    assert validate_shielding_row(valid_row())["chi_number"] == CHI_MOD11


@pytest.mark.parametrize(
    ("chi", "dob"),
    [(CHI_MOD10_ONLY, "2020-01-01"), (CHI_MOD10_WHERE_MOD11_IS_TEN, "1950-01-01")],
)
def test_row_accepts_modulus_10_chi(chi: str, dob: str) -> None:
    row = valid_row(chi_number=chi, date_of_birth=dob)
    assert validate_shielding_row(row, today=TODAY)["chi_number"] == chi


# --- required and optional ------------------------------------------------

REQUIRED = [
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
]


@pytest.mark.parametrize("column", REQUIRED)
@pytest.mark.parametrize("blank", ["", "   ", "\t\n", None])
def test_required_columns(column: str, blank: str | None) -> None:
    assert rules_of(valid_row(**{column: blank})) == [(column, "required")]


@pytest.mark.parametrize("column", REQUIRED)
def test_required_column_may_be_absent_from_the_row(column: str) -> None:
    row = valid_row()
    del row[column]
    assert rules_of(row) == [(column, "required")]


@pytest.mark.parametrize("column", ["address_line2", "town", "contact_phone"])
@pytest.mark.parametrize("blank", ["", "  ", None])
def test_optional_columns_become_none(column: str, blank: str | None) -> None:
    assert validate_shielding_row(valid_row(**{column: blank}), today=TODAY)[column] is None


def test_unknown_risk_group_is_allowed_but_blank_is_not() -> None:
    assert (
        validate_shielding_row(valid_row(clinical_risk_group="unknown"), today=TODAY)[
            "clinical_risk_group"
        ]
        == "UNKNOWN"
    )
    assert rules_of(valid_row(clinical_risk_group="")) == [("clinical_risk_group", "required")]


# --- dates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"date_of_birth": "1952-03-14"}, date(1952, 3, 14)),
        ({"date_of_birth": "14/03/1952"}, date(1952, 3, 14)),
        (  # the CHI cannot tell centuries apart, so 2000s births share DDMMYY with 1900s
            {"chi_number": with_check_digit("290200123"), "date_of_birth": "2000-02-29"},
            date(2000, 2, 29),
        ),
        (
            {"chi_number": with_check_digit("010100123"), "date_of_birth": "1900-01-01"},
            date(1900, 1, 1),
        ),
        (  # born today
            {
                "chi_number": with_check_digit(f"{TODAY:%d%m%y}123"),
                "date_of_birth": TODAY.isoformat(),
            },
            TODAY,
        ),
    ],
)
def test_date_of_birth_valid(overrides: dict[str, str], expected: date) -> None:
    assert validate_shielding_row(valid_row(**overrides), today=TODAY)["date_of_birth"] == expected


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"date_of_birth": "1952-03-15"}, "chi_dob_mismatch"),  # day differs
        ({"date_of_birth": "1952-04-14"}, "chi_dob_mismatch"),  # month differs
        ({"date_of_birth": "1953-03-14"}, "chi_dob_mismatch"),  # year differs
        ({"date_of_birth": "2052-03-14"}, "dob_future"),  # matches DDMMYY, but future
        (
            {
                "chi_number": with_check_digit(f"{TODAY + timedelta(days=1):%d%m%y}123"),
                "date_of_birth": (TODAY + timedelta(days=1)).isoformat(),
            },
            "dob_future",
        ),
        ({"chi_number": with_check_digit("311299123"), "date_of_birth": "1899-12-31"}, "dob_range"),
        ({"date_of_birth": "1952/03/14"}, "date_format"),
        ({"date_of_birth": "14-03-1952"}, "date_format"),
        ({"date_of_birth": "14/3/1952"}, "date_format"),
        ({"date_of_birth": "1952-02-30"}, "date_format"),  # not a real date
        ({"date_of_birth": "14 March 1952"}, "date_format"),
    ],
)
def test_date_of_birth_invalid(overrides: dict[str, str], rule: str) -> None:
    assert rules_of(valid_row(**overrides)) == [("date_of_birth", rule)]


def test_no_dob_mismatch_reported_when_the_chi_itself_is_invalid() -> None:
    # One error per cause: a mistyped CHI says nothing reliable about the date.
    row = valid_row(chi_number=wrong_check_digit("140352123"), date_of_birth="1960-01-01")
    assert rules_of(row) == [("chi_number", "chi_check_digit")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2000-01-01", date(2000, 1, 1)),
        ("01/06/2020", date(2020, 6, 1)),
        (TODAY.isoformat(), TODAY),
        ((TODAY + timedelta(days=366)).isoformat(), TODAY + timedelta(days=366)),
    ],
)
def test_effective_date_valid(value: str, expected: date) -> None:
    assert (
        validate_shielding_row(valid_row(effective_date=value), today=TODAY)["effective_date"]
        == expected
    )


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("1999-12-31", "effective_date_range"),
        ((TODAY + timedelta(days=367)).isoformat(), "effective_date_range"),
        ("2020-13-01", "date_format"),
        ("June 2020", "date_format"),
    ],
)
def test_effective_date_invalid(value: str, rule: str) -> None:
    assert rules_of(valid_row(effective_date=value)) == [("effective_date", rule)]


# --- postcode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("EH1 1AA", "EH1 1AA"),
        ("eh11aa", "EH1 1AA"),
        ("  g2   3db ", "G2 3DB"),
        ("EH9 1HB", "EH9 1HB"),
        ("ab10 1xg", "AB10 1XG"),
        ("ZE1 0AA", "ZE1 0AA"),
        ("kw15 1aa", "KW15 1AA"),
        ("HS1 2AA", "HS1 2AA"),
        ("M1 1AE", "M1 1AE"),  # A9
        ("B33 8TH", "B33 8TH"),  # A99
        ("W1A 0AX", "W1A 0AX"),  # A9A
        ("CR2 6XH", "CR2 6XH"),  # AA9
        ("DN55 1PT", "DN55 1PT"),  # AA99
        ("EC1A 1BB", "EC1A 1BB"),  # AA9A
        ("sw1a2aa", "SW1A 2AA"),
        ("gir 0aa", "GIR 0AA"),
    ],
)
def test_postcode_valid_and_normalised(value: str, expected: str) -> None:
    assert validate_shielding_row(valid_row(postcode=value), today=TODAY)["postcode"] == expected


@pytest.mark.parametrize(
    "value",
    [
        "EH1 1A",  # inward cut short
        "EH1 1AAA",
        "EH1",
        "EH11AA1",
        "EH1 OAA",  # letter O where the digit belongs
        "EH 1AA",  # no district number
        "QH1 1AA",  # Q never opens a postcode
        "VH1 1AA",
        "XH1 1AA",
        "EI1 1AA",  # I, J, Z are never second
        "EJ1 1AA",
        "EZ1 1AA",
        "W1I 1AA",  # not a letter that can end an A9A district
        "EC1Z 1BB",  # not a letter that can end an AA9A district
        "EH1 1CA",  # C, I, K, M, O, V never appear in the inward code
        "EH1 1AI",
        "EH1 1KA",
        "EH1 1AM",
        "EH1 1VA",
        "EH123 1AA",
        "12345",
        "E-H1 1AA",
        "EH1 1ÀA",
    ],
)
def test_postcode_invalid(value: str) -> None:
    assert rules_of(valid_row(postcode=value)) == [("postcode", "postcode_format")]


@pytest.mark.parametrize("value", ["BFPO 123", "bfpo 1234", "BFPO123"])
def test_bfpo_is_refused_with_a_reason(value: str) -> None:
    with pytest.raises(RowInvalid) as caught:
        validate_shielding_row(valid_row(postcode=value), today=TODAY)
    [error] = caught.value.errors
    assert (error.field, error.rule) == ("postcode", "postcode_bfpo")
    assert "BFPO" in error.message and "not accepted" in error.message


# --- phone ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("07700 900123", "+447700900123"),
        ("07700900123", "+447700900123"),
        ("+44 7700 900123", "+447700900123"),
        ("+447700900123", "+447700900123"),
        ("0044 7700 900123", "+447700900123"),
        ("07700-900-123", "+447700900123"),
        ("+44 (0)7700 900123", "+447700900123"),
        ("+44 07700 900123", "+447700900123"),
        ("0131 496 0000", "+441314960000"),
        ("(0131) 496 0000", "+441314960000"),
        ("+44 (0)131 496 0000", "+441314960000"),
        ("0141 496 0999", "+441414960999"),
        ("01632 960123", "+441632960123"),
        ("016977 3456", "+44169773456"),  # small exchange: 9-digit national number
        ("020 7946 0000", "+442079460000"),
        ("0303 123 4567", "+443031234567"),
    ],
)
def test_phone_normalised_to_e164(value: str, expected: str) -> None:
    assert (
        validate_shielding_row(valid_row(contact_phone=value), today=TODAY)["contact_phone"]
        == expected
    )


@pytest.mark.parametrize(
    "value",
    [
        "12345",
        "07700 90012",  # a digit short
        "07700 9001234",  # a digit long
        "7700 900123",  # no trunk zero or country code
        "+353 1 234 5678",  # not a UK number
        "+1 202 555 0100",
        "00353 1 234 5678",
        "0800 123 4567",  # freephone, not someone's phone
        "0906 123 4567",  # premium rate
        "07000 123456",  # personal numbering
        "07600 123456",  # 076 is for pagers
        "not known",
        "0131 496 0000 ext 12",
    ],
)
def test_phone_invalid(value: str) -> None:
    assert rules_of(valid_row(contact_phone=value)) == [("contact_phone", "phone_format")]


# --- enums ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("clinical_risk_group", "SEVERE_RESPIRATORY", "SEVERE_RESPIRATORY"),
        ("clinical_risk_group", "severe respiratory", "SEVERE_RESPIRATORY"),
        ("clinical_risk_group", "Chronic kidney disease stage 5", "CHRONIC_KIDNEY_DISEASE_STAGE_5"),
        ("clinical_risk_group", "solid-organ transplant", "SOLID_ORGAN_TRANSPLANT"),
        ("clinical_risk_group", " Clinician  identified ", "CLINICIAN_IDENTIFIED"),
        ("shielding_status", "shielding", "SHIELDING"),
        ("shielding_status", "Not shielding", "NOT_SHIELDING"),
        ("shielding_status", "not-shielding", "NOT_SHIELDING"),
        ("shielding_status", "Unknown", "UNKNOWN"),
    ],
)
def test_enum_valid(column: str, value: str, expected: str) -> None:
    assert validate_shielding_row(valid_row(**{column: value}), today=TODAY)[column] == expected


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("clinical_risk_group", "Cancer"),
        ("clinical_risk_group", "SEVERE RESPIRATORY!"),
        ("clinical_risk_group", "CKD5"),
        ("shielding_status", "Yes"),
        ("shielding_status", "SHIELDED"),
        ("shielding_status", "Y"),
        ("shielding_status", "1"),
    ],
)
def test_enum_invalid(column: str, value: str) -> None:
    assert rules_of(valid_row(**{column: value})) == [(column, "enum")]


def test_enum_constants_match_the_avro_symbols() -> None:
    assert CLINICAL_RISK_GROUPS[-1] == "UNKNOWN" and len(CLINICAL_RISK_GROUPS) == 9
    assert SHIELDING_STATUSES == ("SHIELDING", "NOT_SHIELDING", "UNKNOWN")


# --- council area and health board ----------------------------------------


@pytest.mark.parametrize(("council", "board"), sorted(BOARD_OF_COUNCIL.items()))
def test_every_council_with_its_board(council: str, board: str) -> None:
    result = validate_shielding_row(
        valid_row(council_area=council.upper(), health_board=board.lower()), today=TODAY
    )
    assert (result["council_area"], result["health_board"]) == (council, board)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"council_area": "Edinburgh"}, [("council_area", "council_area_unknown")]),
        ({"council_area": "Western Isles"}, [("council_area", "council_area_unknown")]),
        ({"council_area": "City-of-Edinburgh"}, [("council_area", "council_area_unknown")]),
        ({"health_board": "Lothian"}, [("health_board", "health_board_unknown")]),
        ({"health_board": "NHS Narnia"}, [("health_board", "health_board_unknown")]),
        (
            {"council_area": "Fife", "health_board": "NHS Lothian"},
            [("council_area", "council_not_in_board")],
        ),
        (
            {"council_area": "Glasgow City", "health_board": "NHS Lanarkshire"},
            [("council_area", "council_not_in_board")],
        ),
    ],
)
def test_council_and_board_invalid(
    overrides: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert rules_of(valid_row(**overrides)) == expected


# --- lengths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "limit"),
    [
        ("given_name", 100),
        ("family_name", 100),
        ("address_line1", 200),
        ("address_line2", 200),
        ("town", 100),
    ],
)
def test_max_length(column: str, limit: int) -> None:
    at_limit = validate_shielding_row(valid_row(**{column: "á" * limit}), today=TODAY)
    assert at_limit[column] == "á" * limit
    assert rules_of(valid_row(**{column: "á" * (limit + 1)})) == [(column, "max_length")]


def test_length_is_measured_after_whitespace_is_collapsed() -> None:
    padded = "  " + "a " * 50 + "  "  # 99 characters once collapsed
    assert validate_shielding_row(valid_row(given_name=padded), today=TODAY)["given_name"]


# --- several errors, and what messages may say ----------------------------


def test_all_errors_of_a_row_are_collected() -> None:
    row = valid_row(
        chi_number=wrong_check_digit("140352123"),
        family_name="",
        postcode="EH1 1A",
        contact_phone="12345",
        council_area="Fife",
        clinical_risk_group="Cancer",
        shielding_status="Yes",
        effective_date="1999-01-01",
    )
    with pytest.raises(RowInvalid) as caught:
        validate_shielding_row(row, today=TODAY)
    errors = caught.value.errors
    assert {(e.field, e.rule) for e in errors} == {
        ("chi_number", "chi_check_digit"),
        ("family_name", "required"),
        ("postcode", "postcode_format"),
        ("contact_phone", "phone_format"),
        ("council_area", "council_not_in_board"),
        ("clinical_risk_group", "enum"),
        ("shielding_status", "enum"),
        ("effective_date", "effective_date_range"),
    }
    assert str(caught.value) == "; ".join(e.message for e in errors)


INVALID_ROWS = [
    valid_row(chi_number=wrong_check_digit("140352123")),
    valid_row(chi_number="1403521230"),
    valid_row(chi_number="140352123"),
    valid_row(chi_number="14035212A9"),
    valid_row(chi_number=with_check_digit("310252123")),
    valid_row(date_of_birth="1952-03-15"),
    valid_row(date_of_birth="2052-03-14"),
    valid_row(date_of_birth="15/03/1952"),
    valid_row(postcode="EH9 1H"),
    valid_row(postcode="BFPO 123"),
    valid_row(contact_phone="+353 1 234 5678"),
    valid_row(council_area="Edinburgh", given_name="x" * 101),
    valid_row(health_board="NHS Fife"),
    valid_row(shielding_status="Shielded", clinical_risk_group="Asthma"),
    valid_row(effective_date="1999-12-31"),
]


@pytest.mark.parametrize("row", INVALID_ROWS)
def test_messages_do_not_echo_personal_values(row: dict[str, str | None]) -> None:
    with pytest.raises(RowInvalid) as caught:
        validate_shielding_row(row, today=TODAY)
    messages = str(caught.value)
    assert messages == "; ".join(e.message for e in caught.value.errors)
    personal = ("chi_number", "given_name", "family_name", "date_of_birth", "address_line1",
                "address_line2", "postcode", "contact_phone")  # fmt: skip
    for column in personal:
        value = row[column]
        assert value and value not in messages, column
    # Nor the pieces a message might be tempted to quote.
    for fragment in ("140352", "1952", "Siobh", "Briain", "Marchmont", "EH9", "900456"):
        assert fragment not in messages


def test_row_invalid_keeps_its_errors_across_pickling() -> None:
    error = FieldError("postcode", "postcode_format", "Postcode is not a valid UK postcode.")
    copy = pickle.loads(pickle.dumps(RowInvalid([error])))
    assert copy.errors == [error]
    assert str(copy) == error.message


def test_row_invalid_belongs_to_the_accord_error_tree() -> None:
    assert issubclass(RowInvalid, AccordError)


def test_field_error_is_frozen() -> None:
    error = FieldError("town", "max_length", "Town is too long.")
    with pytest.raises(AttributeError):
        error.rule = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "field", ["given_name", "family_name", "address_line1", "address_line2", "town"]
)
@pytest.mark.parametrize("invisible", ["\u202e", "\u2066", "\u200b", "\u2060", "\ufeff"])
def test_person_text_with_invisible_characters_is_rejected_without_quoting_it(
    field: str, invisible: str
) -> None:
    row = valid_row(**{field: f"Ann{invisible}eK"})
    with pytest.raises(RowInvalid) as rejected:
        validate_shielding_row(row, today=TODAY)
    assert [(e.field, e.rule) for e in rejected.value.errors] == [(field, "invisible_characters")]
    assert "Ann" not in str(rejected.value) and invisible not in str(rejected.value)
