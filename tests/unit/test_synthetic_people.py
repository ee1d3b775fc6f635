"""Unit tests for the synthetic shielding list."""

from __future__ import annotations

import csv
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from accord.core.scotland import BOARD_OF_COUNCIL, COUNCIL_AREAS
from accord.ingest.validation import COLUMNS, RowInvalid, validate_chi, validate_shielding_row
from accord.synthetic.people import (
    BAD_ROW_KINDS,
    BAD_ROW_RULES,
    chi_for,
    generate_shielding_list,
    generate_shielding_list_with_labels,
    write_csv,
)

# Fixed so the future-birth rows stay in the future and the test never drifts.
TODAY = date(2026, 11, 27)

Rows = list[dict[str, str]]
Labels = list[str | None]


@pytest.fixture(scope="module")
def labelled() -> tuple[Rows, Labels]:
    return generate_shielding_list_with_labels()


def assert_labels_hold(rows: Rows, labels: Labels) -> None:
    """Good rows pass; each bad row fails with exactly its kind's (field, rule)."""
    for row, kind in zip(rows, labels, strict=True):
        if kind is None:
            validate_shielding_row(row, today=TODAY)
            continue
        with pytest.raises(RowInvalid) as caught:
            validate_shielding_row(row, today=TODAY)
        assert [(e.field, e.rule) for e in caught.value.errors] == [BAD_ROW_RULES[kind]], kind


# --- chi_for --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dob", "serial", "expected"),
    [
        (date(1952, 3, 14), 123, "1403521239"),  # worked by hand in test_validation
        (date(1940, 12, 25), 456, "2512404560"),  # 11 -> 0
        (date(1901, 1, 1), 123, "0101011237"),
        (date(2001, 1, 1), 123, "0101011237"),  # the CHI does not record the century
        (date(1950, 1, 1), 103, None),  # modulus 11 would give 10
    ],
)
def test_chi_for(dob: date, serial: int, expected: str | None) -> None:
    assert chi_for(dob, serial) == expected


def test_chi_for_builds_valid_numbers_for_every_serial() -> None:
    dob = date(1961, 7, 30)
    built = [chi_for(dob, serial) for serial in range(1000)]
    valid = [chi for chi in built if chi is not None]
    assert 850 < len(valid) < 950  # about one prefix in eleven has no modulus 11 digit
    for serial, chi in enumerate(built):
        if chi is not None:
            assert validate_chi(chi) == chi
            assert chi.startswith(f"300761{serial:03d}")


@pytest.mark.parametrize("serial", [-1, 1000])
def test_chi_for_rejects_serials_outside_three_digits(serial: int) -> None:
    with pytest.raises(ValueError):
        chi_for(date(1961, 7, 30), serial)


# --- the generated list ---------------------------------------------------


def test_shape(labelled: tuple[Rows, Labels]) -> None:
    rows, labels = labelled
    assert len(rows) == len(labels) == 5000
    for row in rows:
        assert tuple(row) == COLUMNS
        assert all(isinstance(value, str) for value in row.values())


def test_good_rows_pass_and_bad_rows_fail_with_their_rule(labelled: tuple[Rows, Labels]) -> None:
    assert_labels_hold(*labelled)


def test_exactly_the_requested_bad_rows_of_varied_kinds(labelled: tuple[Rows, Labels]) -> None:
    _, labels = labelled
    kinds = [kind for kind in labels if kind is not None]
    assert len(kinds) == 12
    assert set(kinds) == set(BAD_ROW_KINDS)
    assert set(BAD_ROW_RULES) == set(BAD_ROW_KINDS)


def test_bad_rows_are_spread_through_the_file(labelled: tuple[Rows, Labels]) -> None:
    _, labels = labelled
    positions = [i for i, kind in enumerate(labels) if kind is not None]
    stretch = 5000 / 12
    assert [int(p // stretch) for p in positions] == list(range(12))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_labels_hold_for_other_seeds(seed: int) -> None:
    rows, labels = generate_shielding_list_with_labels(600, seed=seed, bad_rows=60)
    assert sum(kind is not None for kind in labels) == 60
    assert_labels_hold(rows, labels)


def test_every_council_appears_roughly_in_proportion(labelled: tuple[Rows, Labels]) -> None:
    rows, _ = labelled
    counts = Counter(row["council_area"] for row in rows)
    assert set(COUNCIL_AREAS) <= set(counts)
    largest = [council for council, _ in counts.most_common(2)]
    assert sorted(largest) == ["City of Edinburgh", "Glasgow City"]
    smallest = sorted(COUNCIL_AREAS, key=lambda council: counts[council])[:3]
    assert set(smallest) == {"Orkney Islands", "Shetland Islands", "Na h-Eileanan Siar"}
    assert 400 < counts["Glasgow City"] < 700
    assert 10 < counts["Orkney Islands"] < 40


def test_every_council_appears_even_in_a_short_list() -> None:
    rows = generate_shielding_list(40, bad_rows=0)
    assert {row["council_area"] for row in rows} == set(COUNCIL_AREAS)


def test_health_board_matches_council(labelled: tuple[Rows, Labels]) -> None:
    rows, labels = labelled
    for row, kind in zip(rows, labels, strict=True):
        if kind != "council_area_unknown":
            assert row["health_board"] == BOARD_OF_COUNCIL[row["council_area"]]


def test_chi_numbers_are_unique(labelled: tuple[Rows, Labels]) -> None:
    rows, _ = labelled
    assert len({row["chi_number"] for row in rows}) == len(rows)


def test_dates_of_birth_between_1925_and_2005_and_match_the_chi(
    labelled: tuple[Rows, Labels],
) -> None:
    rows, labels = labelled
    for row, kind in zip(rows, labels, strict=True):
        if kind is None:
            dob = date.fromisoformat(row["date_of_birth"])
            assert date(1925, 1, 1) <= dob <= date(2005, 12, 31)
            assert row["chi_number"][:6] == f"{dob:%d%m%y}"


def test_realistic_mix(labelled: tuple[Rows, Labels]) -> None:
    rows, _ = labelled
    statuses = Counter(row["shielding_status"] for row in rows)
    assert statuses["SHIELDING"] > 0.8 * len(rows)
    groups = Counter(row["clinical_risk_group"] for row in rows)
    assert len(groups) == 9
    phones = [row["contact_phone"] for row in rows]
    assert 0.1 < phones.count("") / len(phones) < 0.3
    assert any(p.startswith("+44") for p in phones) and any(p.startswith("07") for p in phones)
    assert any(p.startswith(("0131", "0141", "01632", "(0")) for p in phones)
    names = {row["given_name"] for row in rows} | {row["family_name"] for row in rows}
    assert {"Siobhán", "Ó Briain"} <= names
    assert any(n.startswith("Mc") for n in names) and any(n.startswith("Mac") for n in names)
    assert any("-" in n for n in names)
    islands = [row for row in rows if row["council_area"] == "Shetland Islands"]
    assert all(row["postcode"].startswith("ZE") for row in islands)


def test_deterministic_for_a_seed() -> None:
    assert generate_shielding_list(300, seed=7) == generate_shielding_list(300, seed=7)
    assert generate_shielding_list(300, seed=7) != generate_shielding_list(300, seed=8)
    assert (
        generate_shielding_list_with_labels(300, seed=7)[1]
        == (generate_shielding_list_with_labels(300, seed=7)[1])
    )


def test_rows_match_the_labelled_version() -> None:
    rows, _ = generate_shielding_list_with_labels(200, seed=3, bad_rows=5)
    assert generate_shielding_list(200, seed=3, bad_rows=5) == rows


def test_effective_date_is_used() -> None:
    rows = generate_shielding_list(50, bad_rows=0, effective=date(2021, 3, 1))
    assert {row["effective_date"] for row in rows} == {"2021-03-01"}


def test_no_bad_rows_when_none_asked_for() -> None:
    rows, labels = generate_shielding_list_with_labels(300, bad_rows=0)
    assert labels == [None] * 300
    assert_labels_hold(rows, labels)


@pytest.mark.parametrize(("count", "bad_rows"), [(5, 6), (-1, 0), (10, -1)])
def test_impossible_requests_are_refused(count: int, bad_rows: int) -> None:
    with pytest.raises(ValueError):
        generate_shielding_list(count, bad_rows=bad_rows)


def test_every_row_bad_when_asked() -> None:
    rows, labels = generate_shielding_list_with_labels(7, bad_rows=7)
    assert labels == list(BAD_ROW_KINDS)
    assert_labels_hold(rows, labels)


def test_5000_rows_are_quick() -> None:
    started = time.perf_counter()
    generate_shielding_list(5000)
    assert time.perf_counter() - started < 1.5


# --- CSV ------------------------------------------------------------------


def test_write_csv_round_trips(tmp_path: Path) -> None:
    rows = generate_shielding_list(100, bad_rows=3)
    path = tmp_path / "lists" / "nhs-lothian.csv"
    write_csv(rows, path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        assert list(reader) == rows
