"""The matcher's index: blocking, best candidate, ambiguity, state round trip, evaluation."""

from __future__ import annotations

import json
from datetime import date

import pytest

from accord.matching import Matcher, PersonRecord
from accord.matching.evaluate import evaluate
from accord.synthetic.population import generate_population

DOB = date(1944, 9, 21)


@pytest.fixture(scope="module")
def population():
    return generate_population(2_000, 1_000, seed=11)


@pytest.fixture(scope="module")
def matcher(population) -> Matcher:
    index = Matcher()
    for person_id, record in population.people.items():
        index.add(person_id, record)
    index.add("RARE", PersonRecord("Torquil", "Urquhart", DOB, "IV2 3PX", "7 Academy Street"))
    return index


def test_best_finds_the_person_under_noise(matcher: Matcher) -> None:
    query = PersonRecord("URQUHART", "torquil", date(1944, 9, 12), "iv23px", None)
    person_id, result = matcher.best(query)
    assert (person_id, result.outcome) == ("RARE", "MATCH")


def test_a_rare_name_carries_a_move_but_a_common_one_does_not(matcher: Matcher) -> None:
    """Name frequencies from the index (term-frequency weights) decide a moved person."""
    moved = PersonRecord("Torquil", "Urquhart", DOB, "KY16 9AJ", "3 Kirk Wynd")
    person_id, result = matcher.best(moved)
    assert (person_id, result.outcome) == ("RARE", "MATCH")

    common = Matcher()
    for n in range(1_200):
        common.add(
            f"X{n}",
            PersonRecord(
                "Margaret", "Smith", date(1930 + n % 60, 1 + n % 12, 1 + n % 28), "ZE1 0AA"
            ),
        )
    common.add("M", PersonRecord("Margaret", "Smith", DOB, "EH6 4QT", "12 Ferry Road"))
    _, result = common.best(PersonRecord("Margaret", "Smith", DOB, "G3 7AB", "5 Argyle Street"))
    assert result.outcome != "MATCH"


def test_unknown_person_is_no_match(matcher: Matcher) -> None:
    person_id, result = matcher.best(
        PersonRecord("Zebedee", "Quartermaine", date(2001, 2, 2), "HS1 2AA")
    )
    assert result.outcome == "NO_MATCH"


def test_chi_decides_before_anything_else(matcher: Matcher, population) -> None:
    person_id, record = next(iter(population.people.items()))
    query = PersonRecord("Someone", "Else", None, None, chi_number=record.chi_number)
    found, result = matcher.best(query)
    assert (found, result.outcome, result.probability) == (person_id, "MATCH", 1.0)


def test_listed_twins_are_told_apart_and_an_ambiguous_query_goes_to_review() -> None:
    index = Matcher()
    home = {"postcode": "PA1 2BE", "address_line1": "14 Glebe Street"}
    index.add("A", PersonRecord("Callum", "Reid", DOB, **home))
    index.add("B", PersonRecord("Fraser", "Reid", DOB, **home))
    assert index.best(PersonRecord("Callum", "Reid", DOB, **home))[0] == "A"
    assert index.best(PersonRecord("Fraser", "Reid", DOB, **home))[0] == "B"
    assert index.best(PersonRecord("Ewan", "Reid", DOB, **home))[1].outcome == "NO_MATCH"
    # Two entries for what the record cannot tell apart: never an automatic merge.
    index.add("C", PersonRecord("Callum", "Reid", DOB, "PA1 2BE", None))
    _, result = index.best(PersonRecord("Callum", "Reid", DOB, **home))
    assert result.outcome == "REVIEW"
    assert ("rule", "ambiguous", 0.0) in result.evidence


def test_add_replaces_what_is_known(matcher: Matcher) -> None:
    index = Matcher()
    index.add("A", PersonRecord("Ailsa", "Gunn", DOB, "KW1 4AB", chi_number="2109449999"))
    index.add("A", PersonRecord("Ailsa", "Gunn", DOB, "KW15 1AA", chi_number="2109448888"))
    assert len(index) == 1
    assert index.best(PersonRecord("X", "Y", None, None, chi_number="2109449999"))[0] is None
    assert index.candidates(PersonRecord("Ailsa", "Gunn", None, "KW1 4AB")) == []


def test_blocking_compares_with_few_people(matcher: Matcher, population) -> None:
    for query in [q for q in population.queries if q.person_id][:50]:
        assert len(matcher.candidates(query.record)) < len(matcher) / 10


def test_state_round_trips_through_json(matcher: Matcher, population) -> None:
    state = json.loads(json.dumps(matcher.to_state()))
    restored = Matcher.from_state(state)
    assert len(restored) == len(matcher)
    assert restored.to_state() == matcher.to_state()
    for query in population.queries[:200]:
        assert restored.best(query.record) == matcher.best(query.record)


def test_state_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Matcher.from_state({"version": 99, "people": {}})


def test_evaluation_on_a_seeded_population_meets_sane_bounds(population) -> None:
    result = evaluate(population)
    overall = result.overall
    assert overall.queries == 1_000
    assert overall.tp + overall.fp + overall.reviews + overall.no_match == overall.queries
    assert overall.precision >= 0.99
    assert overall.recall >= 0.9
    assert overall.review_rate <= 0.08
    assert result.by_kind["twin"].fp == 0


def test_population_is_reproducible_and_labelled() -> None:
    first = generate_population(300, 100, seed=5)
    again = generate_population(300, 100, seed=5)
    assert first == again
    assert len(first.people) == 300
    assert {q.person_id for q in first.queries if q.person_id} <= set(first.people)
    assert any(q.person_id is None for q in first.queries)


def test_matching_logs_nothing(matcher: Matcher, population, caplog) -> None:
    caplog.set_level("DEBUG")
    for query in population.queries[:50]:
        matcher.best(query.record)
    assert caplog.records == []


def test_evaluate_command_prints_the_metrics() -> None:
    from click.testing import CliRunner

    from accord.matching.commands import match

    outcome = CliRunner().invoke(
        match, ["evaluate", "--people", "1500", "--queries", "400", "--seed", "3"]
    )
    assert outcome.exit_code in (0, 1), outcome.output
    for word in ("precision", "recall", "review", "TP", "FP", "FN", "ms per query"):
        assert word in outcome.output
    for line in (
        "population A:",
        "population B:",
        "recall lost to blocking",
        "pairs per rule: date_of_birth",
        "relatives merged",
        "  keyboard_edit",
        "  moved",
        "  twin",
        "model fs-",
    ):
        assert line in outcome.output, line
    # exit 1 exactly when it names a missed target
    assert (outcome.exit_code == 1) == ("targets missed" in outcome.output)


def test_evaluation_counts_blocking_losses_apart_from_scoring() -> None:
    from accord.synthetic.corrupted import generate_corrupted_population

    result = evaluate(generate_corrupted_population(1_500, 500, seed=8), "B")
    assert result.population == "B"
    assert 0 <= result.recall_lost_to_blocking <= 1 - result.overall.recall
    assert result.recall_lost_to_scoring == pytest.approx(
        1 - result.overall.recall - result.recall_lost_to_blocking
    )
    assert set(result.pairs_by_rule) == {
        "date_of_birth",
        "postcode+given_initial",
        "family_phonetic+birth_year+given_initial",
        "address+family_initial",
    }
    assert result.pairs_union <= sum(result.pairs_by_rule.values())
    assert result.relatives_merged == 0
    assert result.overall.precision >= 0.99
