"""Pairs of records and the decision the matcher must reach, one noise kind per row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from accord.matching import PersonRecord, compare
from accord.matching.model import default_model, family_level, given_level
from accord.matching.normalise import features, name_tokens, normalise_postcode, split_postcode

DOB = date(1946, 4, 3)
BASE = PersonRecord("Margaret", "McDonald", DOB, "EH6 4QT", "12 Ferry Road", chi_number=None)


def variant(**changes: object) -> PersonRecord:
    fields = {
        "given_name": BASE.given_name,
        "family_name": BASE.family_name,
        "date_of_birth": BASE.date_of_birth,
        "postcode": BASE.postcode,
        "address_line1": BASE.address_line1,
    }
    fields.update(changes)
    return PersonRecord(**fields)  # type: ignore[arg-type]


MATCHES = [
    ("identical", variant()),
    ("formatting", variant(given_name="MARGARET", family_name="MCDONALD", postcode="eh64qt")),
    ("typo in given name", variant(given_name="Margeret")),
    ("typo in family name", variant(family_name="McDonlad")),
    ("nickname Peggy", variant(given_name="Peggy")),
    ("nickname Maggie", variant(given_name="Maggie")),
    ("swapped names", variant(given_name="McDonald", family_name="Margaret")),
    ("Mac for Mc", variant(family_name="MacDonald")),
    ("M' for Mc", variant(family_name="M'Donald")),
    ("address abbreviated", variant(address_line1="12 Ferry Rd")),
    ("address missing", variant(address_line1=None)),
    ("postcode missing", variant(postcode=None)),
    ("postcode typo", variant(postcode="EH6 4QY")),
    ("day and month swapped", variant(date_of_birth=date(1946, 3, 4))),
    ("one digit of the year", variant(date_of_birth=date(1948, 4, 3))),
    ("two digits of the date, same home", variant(date_of_birth=date(1946, 4, 30))),
    ("family name respelt", variant(family_name="MacDonnalld")),
    ("a digit for a letter in a name", variant(given_name="Marga1et")),
    (
        "postcode written into the address",
        variant(address_line1="12 Ferry Road, EH6 4QT", postcode=None),
    ),
    # Names of average frequency; the matcher tests show a very common name falling short.
    ("moved", variant(postcode="G3 7AB", address_line1="5 Argyle Street")),
]


@pytest.mark.parametrize(("case", "query"), MATCHES, ids=[c for c, _ in MATCHES])
def test_matches(case: str, query: PersonRecord) -> None:
    assert compare(query, BASE).outcome == "MATCH", case


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            PersonRecord("Bill", "Wilson", DOB, "G12 8QQ"),
            PersonRecord("William", "Wilson", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Jim", "Reid", DOB, "G12 8QQ"),
            PersonRecord("James", "Reid", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Sandy", "Ross", DOB, "G12 8QQ"),
            PersonRecord("Alexander", "Ross", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Ishbel", "Gunn", DOB, "G12 8QQ"),
            PersonRecord("Isabel", "Gunn", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Siobhan", "O'Neill", DOB, "G12 8QQ"),
            PersonRecord("Siobhán", "O’Neill", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Anna", "Hamilton", DOB, "G12 8QQ"),
            PersonRecord("Anna", "Douglas-Hamilton", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Anna", "Hamilton Smith", DOB, "G12 8QQ"),
            PersonRecord("Anna", "Hamilton-Smith", DOB, "G12 8QQ"),
        ),
        (
            PersonRecord("Padraig", "O Briain", DOB, "G12 8QQ"),
            PersonRecord("Pádraig", "Ó Briain", DOB, "G12 8QQ"),
        ),
    ],
)
def test_nicknames_accents_and_hyphens_match(a: PersonRecord, b: PersonRecord) -> None:
    assert compare(a, b).outcome == "MATCH"


NO_MATCHES = [
    ("twin, different given name", variant(given_name="Elspeth")),
    ("twin Alexander/Alexandra", None),
    ("a stranger", PersonRecord("Rajesh", "Patel", date(1978, 8, 2), "AB10 1XY", "4 Union Street")),
    ("parent of the same name", variant(date_of_birth=date(1921, 7, 30))),
    ("twin Marjorie: not a nickname of Margaret", variant(given_name="Marjorie")),
    (
        "same name, born elsewhere and other dob",
        variant(date_of_birth=date(1952, 11, 2), postcode="DG1 2PQ", address_line1="7 Mill Road"),
    ),
]


@pytest.mark.parametrize(("case", "query"), NO_MATCHES, ids=[c for c, _ in NO_MATCHES])
def test_no_matches(case: str, query: PersonRecord | None) -> None:
    a, b = (
        (query, BASE)
        if query is not None
        else (
            PersonRecord("Alexander", "Ross", DOB, "G12 8QQ", "1 Byres Road"),
            PersonRecord("Alexandra", "Ross", DOB, "G12 8QQ", "1 Byres Road"),
        )
    )
    assert compare(a, b).outcome == "NO_MATCH", case


REVIEWS = [
    ("date of birth missing", variant(date_of_birth=None)),
    ("family name changed (marriage)", variant(family_name="Paterson")),
    ("initial only", variant(given_name="M")),
    # Two digits and thirty years apart: slips in the decade and the day, or a parent.
    ("two digits and a generation apart", variant(date_of_birth=date(1976, 4, 30))),
    (
        "two digits, moved",
        variant(
            date_of_birth=date(1946, 4, 30), postcode="G3 7AB", address_line1="5 Argyle Street"
        ),
    ),
]


@pytest.mark.parametrize(("case", "query"), REVIEWS, ids=[c for c, _ in REVIEWS])
def test_reviews(case: str, query: PersonRecord) -> None:
    assert compare(query, BASE).outcome == "REVIEW", case


@pytest.mark.parametrize(
    "given_names",
    [
        ("Elspeth", "Margaret"),
        ("John", "Joan"),
        ("Alexander", "Alexandra"),
        ("Callum", "Fraser"),
        ("Mary", "Anne"),
        ("Marjorie", "Margaret"),
        ("Ava", "Eva"),
    ],
)
def test_twins_never_match(given_names: tuple[str, str]) -> None:
    """Same family name, date of birth and address: the given name alone tells twins apart."""
    first, second = given_names
    twin_a = PersonRecord(first, "Campbell", DOB, "PA1 2BE", "Flat 2/1, 14 Glebe Street")
    twin_b = PersonRecord(second, "Campbell", DOB, "PA1 2BE", "Flat 2/1, 14 Glebe Street")
    assert compare(twin_a, twin_b).outcome != "MATCH"
    assert compare(twin_b, twin_a).outcome != "MATCH"


def test_equal_chi_matches_deterministically_whatever_else_differs() -> None:
    a = PersonRecord("Peggy", "Smith", None, None, chi_number="1403464321")
    b = PersonRecord("Margaret", "Brown", DOB, "EH6 4QT", chi_number="1403464321")
    result = compare(a, b)
    assert (result.outcome, result.probability) == ("MATCH", 1.0)
    assert result.evidence == (("chi", "equal", 0.0),)


@pytest.mark.parametrize("identifier", ["chi_number", "nhs_number"])
def test_identifier_conflict_never_matches(identifier: str) -> None:
    a = PersonRecord(
        "Margaret", "McDonald", DOB, "EH6 4QT", "12 Ferry Road", **{identifier: "1403464321"}
    )
    b = PersonRecord(
        "Margaret", "McDonald", DOB, "EH6 4QT", "12 Ferry Road", **{identifier: "1403464402"}
    )
    result = compare(a, b)
    assert result.outcome == "NO_MATCH"
    rule = "chi_conflict" if identifier == "chi_number" else "nhs_number_conflict"
    assert ("rule", rule, 0.0) in result.evidence


def test_result_carries_evidence_weight_and_probability() -> None:
    result = compare(variant(given_name="Peggy"), BASE)
    levels = {comparison: level for comparison, level, _ in result.evidence}
    assert levels["given_name"] == "alias"
    assert levels["family_name"] == "exact"
    assert levels["date_of_birth"] == "exact"
    assert levels["location"] == "same_address"
    assert 0.99 < result.probability <= 1.0
    assert result.weight == pytest.approx(
        sum(bf for _, _, bf in result.evidence) + default_model().prior_log2_odds, abs=1e-2
    )
    assert result.model_version == default_model().version
    assert result.as_dict()["outcome"] == "MATCH"


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("McLean", ("maclean",)),
        ("M'Lean", ("maclean",)),
        ("MacLean", ("maclean",)),
        ("Douglas-Hamilton", ("douglas", "hamilton")),
        ("Ó Briain", ("o", "briain")),
        ("Is1a", ("isla",)),
        ("5kinner", ("5kinner",)),  # only a digit inside a name is read as a letter
        ("Lefèvre", ("lefevre",)),
        ("  ", ()),
    ],
)
def test_name_normalisation(raw: str, tokens: tuple[str, ...]) -> None:
    assert name_tokens(raw) == tokens


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("eh6 4qt", "EH64QT"),
        ("G1  1AA", "G11AA"),
        ("EH 4QT", ""),
        (None, ""),
        ("EH6 4Q7", ""),  # 7 looks like no letter: not repaired
        ("EH6 4O8", "EH64OB"),  # the inward code's letters misread as digits
        ("EH6 S8B", "EH65BB"),  # its digit misread as a letter
        ("8H6 4QT", "BH64QT"),  # the area's first letter misread as a digit
    ],
)
def test_postcode_normalisation(raw: str | None, normal: str) -> None:
    assert normalise_postcode(raw) == normal


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("philips", "filips", "similar"),  # a phonetic respelling: same Metaphone code
        ("ogg", "ogq", "similar"),  # one edit in three letters
        ("wardlaw", "wardlavv", "fuzzy"),
        ("kinnear", "kinnier", "fuzzy"),
        ("brown", "green", "different"),
        ("bain", "dow", "different"),
    ],
)
def test_family_name_levels(a: str, b: str, level: str) -> None:
    assert family_level((a, (a,)), (b, (b,))) == level


def test_a_distinct_pair_is_different_even_in_one_nickname_group() -> None:
    assert given_level(("marjorie", ("marjorie",)), ("margaret", ("margaret",))) == "different"
    assert given_level(("maggie", ("maggie",)), ("margaret", ("margaret",))) == "alias"
    # given names are not loosened as family names are: Ava and Eva may be twins
    assert given_level(("ava", ("ava",)), ("eva", ("eva",))) == "different"


@pytest.mark.parametrize(
    ("line", "split"),
    [
        ("12 Ferry Road, EH6 4QT", ("12 Ferry Road", "EH64QT")),
        ("12 Ferry Road EH64QT", ("12 Ferry Road", "EH64QT")),
        ("Flat 2/1, 14 Glebe Street, PA1 2BE ", ("Flat 2/1, 14 Glebe Street", "PA12BE")),
        ("12 Ferry Road", ("12 Ferry Road", "")),
        ("14 Glebe Street 2B", ("14 Glebe Street 2B", "")),
        (None, (None, "")),
    ],
)
def test_a_postcode_is_taken_out_of_the_address_line(
    line: str | None, split: tuple[str | None, str]
) -> None:
    assert split_postcode(line) == split


def test_the_postcode_field_wins_over_one_in_the_address() -> None:
    f = features(PersonRecord("A", "B", DOB, "EH6 4QT", "12 Ferry Road, G1 1AA"))
    assert (f.postcode, f.address) == ("EH64QT", "12 ferry road g1 1aa")
    f = features(PersonRecord("A", "B", DOB, None, "12 Ferry Road, G1 1AA"))
    assert (f.postcode, f.address) == ("G11AA", "12 ferry road")


def test_a_date_two_digits_apart_merges_only_with_the_very_same_given_name() -> None:
    """Sean and Shaun at one address, born apart, may be a couple: never merged."""
    sean = PersonRecord("Sean", "Mackintosh", date(1982, 5, 9), "FK18 8EA", "47 Fauld Court")
    shaun = PersonRecord("Shaun", "Mackintosh", date(1982, 2, 7), "FK18 8EA", "47 Fauld Court")
    assert compare(shaun, sean).outcome != "MATCH"
    assert compare(replace(shaun, given_name="Sean"), sean).outcome == "MATCH"
