"""The trained matching model: its file, training with splink, blocking that forgives one
wrong field, population B, and bad input scored without error (never merged on nothing)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from accord.matching import Matcher, PersonRecord, compare
from accord.matching.model import (
    COMPARISONS,
    DEFAULT_MODEL_FILE,
    ModelError,
    default_model,
    load_model,
)
from accord.synthetic.corrupted import CORRUPTION_KINDS, generate_corrupted_population

DOB = date(1951, 5, 17)
PERSON = PersonRecord("Elspeth", "Urquhart", DOB, "IV2 3PX", "7 Academy Street")


def test_shipped_model_file_is_complete_and_holds_counts_not_records() -> None:
    data = json.loads(DEFAULT_MODEL_FILE.read_text())
    model = load_model(DEFAULT_MODEL_FILE)
    assert model.version == data["version"] and model.version.startswith("fs-")
    for comparison, labels in COMPARISONS.items():
        levels = data["comparisons"][comparison]["levels"]
        assert [lv["label"] for lv in levels] == list(labels)
        for level in levels:
            assert 0 < level["m"] <= 1 and 0 < level["u"] <= 1
    assert model.no_match_weight <= model.match_weight
    assert data["thresholds"]["precision_target"] == 0.999
    assert "splink" in data["trained_with"]["library"]
    counts = data["training_data"]
    assert counts["listed_records"] > 0 and counts["request_records"] > 0
    # Nothing that looks like a record: no names, postcodes or dates anywhere in the file.
    text = DEFAULT_MODEL_FILE.read_text()
    for value in ("Margaret", "McDonald", "EH6", "1946-"):
        assert value not in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format=99), "format"),
        (lambda d: d["comparisons"]["location"]["levels"].pop(), "different"),
        (lambda d: d["comparisons"]["date_of_birth"]["levels"][0].update(m=0), "m, u"),
        (lambda d: d.pop("thresholds"), "thresholds"),
    ],
)
def test_a_broken_model_file_is_refused_naming_the_file(tmp_path: Path, change, message) -> None:
    data = json.loads(DEFAULT_MODEL_FILE.read_text())
    change(data)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


def test_the_settings_name_the_model_and_results_name_its_version(
    tmp_path: Path, monkeypatch
) -> None:
    from accord.core.settings import get_settings

    data = json.loads(DEFAULT_MODEL_FILE.read_text())
    data["version"] = "fs-test-only"
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("ACCORD_MATCH_MODEL_FILE", str(path))
    get_settings.cache_clear()
    try:
        assert default_model().version == "fs-test-only"
        assert compare(PERSON, PERSON).model_version == "fs-test-only"
        monkeypatch.setenv("ACCORD_MATCH_MODEL_FILE", str(tmp_path / "absent.json"))
        get_settings.cache_clear()
        with pytest.raises(ModelError, match="absent.json"):
            default_model()
    finally:
        get_settings.cache_clear()


def test_training_learns_m_and_u_and_chooses_thresholds(tmp_path: Path) -> None:
    from accord.matching.training import train_model, write_model
    from accord.synthetic.population import generate_population

    population = generate_population(1_000, 400, seed=4)
    requests = [q.record for q in population.queries]
    model = train_model(population.people, requests, seed=4, u_max_pairs=50_000)
    levels = {
        (name, lv["label"]): lv for name, c in model["comparisons"].items() for lv in c["levels"]
    }
    # Learnt, not copied: exact agreement is far likelier among matches than non-matches,
    # and a clear disagreement the other way round.
    for name in ("given_name", "family_name", "date_of_birth"):
        assert levels[name, "exact"]["m"] > 10 * levels[name, "exact"]["u"]
        assert levels[name, "different"]["u"] > levels[name, "different"]["m"]
    # No partial agreement is weaker evidence than clear disagreement, even a level the
    # training barely saw among matches (same_sector, similar family names).
    for name, labels in COMPARISONS.items():
        floor = levels[name, labels[-1]]["bayes_factor_log2"]
        assert all(levels[name, label]["bayes_factor_log2"] >= floor for label in labels)
    thresholds = model["thresholds"]
    assert thresholds["no_match_weight"] <= thresholds["match_weight"]
    assert thresholds["expected_on_training_requests"]["expected_precision"] >= 0.999
    path = tmp_path / "trained.json"
    write_model(model, path)
    assert load_model(path).version == model["version"]
    assert model["training_data"]["listed_records"] == 1_000


@pytest.mark.parametrize(
    ("case", "query"),
    [
        ("date of birth mistyped", replace(PERSON, date_of_birth=date(1951, 5, 27))),
        ("date of birth missing", replace(PERSON, date_of_birth=None)),
        ("postcode wrong", replace(PERSON, postcode="KW1 4AB")),
        ("postcode missing", replace(PERSON, postcode=None)),
        ("family name wrong", replace(PERSON, family_name="Paterson")),
        ("family name missing", replace(PERSON, family_name=None)),
        (
            "moved and day slipped",
            replace(
                PERSON,
                postcode="G3 7AB",
                address_line1="5 Argyle Street",
                date_of_birth=date(1951, 5, 18),
            ),
        ),
        (
            "postcode and date of birth wrong",
            replace(PERSON, postcode="IV9 9ZZ", date_of_birth=date(1915, 5, 17)),
        ),
        (
            "postcode written into the address line, date of birth missing",
            replace(
                PERSON, postcode=None, address_line1="7 Academy Street, IV2 3PX", date_of_birth=None
            ),
        ),
        (
            "postcode misread (1 for I), date of birth wrong",
            replace(PERSON, postcode="1V2 3PX", date_of_birth=date(1915, 5, 17)),
        ),
    ],
)
def test_blocking_forgives_one_wrong_or_missing_field(case: str, query: PersonRecord) -> None:
    index = Matcher()
    index.add("TARGET", PERSON)
    for n in range(50):
        index.add(f"OTHER{n}", PersonRecord("Ann", "Smith", DOB + timedelta(days=n + 400), None))
    assert "TARGET" in index.candidates(query), case
    by_rule = index.candidates_by_rule(query)
    assert set().union(*by_rule.values()) == set(index.candidates(query))


def test_population_b_is_reproducible_labelled_and_corrupted_its_own_way() -> None:
    first = generate_corrupted_population(400, 300, seed=9)
    assert first == generate_corrupted_population(400, 300, seed=9)
    assert len(first.people) == 400
    kinds = {k for q in first.queries for k in q.kinds}
    assert {"twin", "spouse", "same_name_relative", "stranger"} <= kinds
    assert len(kinds & set(CORRUPTION_KINDS)) >= 10
    assert any(len(q.kinds) >= 3 for q in first.queries if q.person_id)  # several at once
    assert all(q.record.chi_number is None for q in first.queries)


BAD = [
    ("every field empty", PersonRecord(None, None, None, None, None)),
    ("empty strings", PersonRecord("", "", None, "", "")),
    ("future date of birth", replace(PERSON, date_of_birth=date.today() + timedelta(days=400))),
    ("one-character names", replace(PERSON, given_name="E", family_name="U")),
    ("500-character names", replace(PERSON, given_name="E" * 500, family_name="U" * 500)),
    ("Cyrillic", PersonRecord("Елена", "Иванова", DOB, "IV2 3PX", "7 Academy Street")),
    ("Han", PersonRecord("伟", "王", DOB, None, None)),
    ("Arabic", PersonRecord("فاطمة", "حسين", None, "IV2 3PX", None)),
    ("punctuation only", PersonRecord("---", "'''", None, "???", "...")),
]


@pytest.mark.parametrize(("case", "record"), BAD, ids=[c for c, _ in BAD])
def test_bad_input_is_scored_without_error_and_never_merged_on_nothing(
    case: str, record: PersonRecord
) -> None:
    index = Matcher()
    index.add("KNOWN", PERSON)
    index.add("EMPTY", PersonRecord(None, None, None, None, None))
    index.add("SAME", record)
    best, result = index.best(record)
    assert result.outcome in ("MATCH", "REVIEW", "NO_MATCH")
    assert result.model_version == index.model.version
    if best == "EMPTY" or best == "KNOWN":
        assert result.outcome != "MATCH", case
    # against itself: merged only when it carries names and a date of birth to merge on
    itself = compare(record, record)
    if not (record.given_name and record.family_name and record.date_of_birth):
        assert itself.outcome != "MATCH", case
    assert compare(record, PERSON).outcome != "MATCH", case


def test_a_future_date_of_birth_is_read_as_missing() -> None:
    future = replace(PERSON, date_of_birth=date.today() + timedelta(days=400))
    levels = {c for c, _, _ in compare(future, PERSON).evidence}
    assert "date_of_birth" not in levels


def test_non_latin_names_compare_with_themselves() -> None:
    a = PersonRecord("Елена", "Иванова", DOB, "IV2 3PX", "7 Academy Street")
    levels = {c: lv for c, lv, _ in compare(a, a).evidence}
    assert levels["given_name"] == "exact" and levels["family_name"] == "exact"
    other = replace(a, given_name="Ольга")
    assert {c: lv for c, lv, _ in compare(other, a).evidence}["given_name"] == "different"


def test_the_prior_moves_with_the_length_of_the_list() -> None:
    model = default_model()
    trained = model.trained_list_size
    assert trained and model.for_list(trained) == model
    longer = model.for_list(trained * 8)
    assert longer.prior_log2_odds == pytest.approx(model.prior_log2_odds - 3)
    assert (longer.match_weight, longer.no_match_weight) == (
        model.match_weight,
        model.no_match_weight,
    )


def test_train_reads_records_from_csv_and_wants_both_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from accord.matching.commands import _read_records, match

    path = tmp_path / "list.csv"
    path.write_text(
        "given_name,family_name,date_of_birth,postcode,address_line1,extra\n"
        "Elspeth,Urquhart,1951-05-17,IV2 3PX,7 Academy Street,x\n"
        "Ann,Smith,17/05/1951,,,\n"
    )
    first, second = _read_records(path)
    assert first == PERSON
    assert (second.given_name, second.date_of_birth, second.postcode) == ("Ann", None, None)
    outcome = CliRunner().invoke(match, ["train", "--list", str(path), "-o", str(tmp_path / "m")])
    assert outcome.exit_code == 2 and "--list and --requests go together" in outcome.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,dob\nElspeth,1951-05-17\n")
    outcome = CliRunner().invoke(
        match, ["train", "--list", str(bad), "--requests", str(bad), "-o", str(tmp_path / "m")]
    )
    assert outcome.exit_code == 1 and "no column given_name, family_name" in outcome.output
