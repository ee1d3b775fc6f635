"""`accord match ...`: commands about identity matching (train and evaluate the model)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from accord.matching.evaluate import Counts, Evaluation, kinds_by_count, run_evaluation
from accord.matching.model import DEFAULT_MODEL_FILE, MatchModel, ModelError, load_model
from accord.matching.normalise import PersonRecord

TARGETS = {"precision": 0.999, "recall": 0.97, "review_rate": 0.03}
"""What each population must reach (issue 15); relatives merged must be zero."""


@click.group()
def match() -> None:
    """Identity matching: link records about the same person across partners."""


def _line(label: str, c: Counts) -> str:
    return (
        f"{label:<24} {c.queries:>7} {c.listed:>7} {c.tp:>7} {c.fp:>5} {c.fn:>6} "
        f"{c.reviews:>7}  {c.precision:>9.4f} {c.recall:>7.4f} {c.review_rate:>7.4f}"
    )


@match.command("train")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_MODEL_FILE,
    show_default=True,
    help="Model file to write (point ACCORD_MATCH_MODEL_FILE at it).",
)
@click.option("--people", default=20_000, show_default=True, help="People on the synthetic list.")
@click.option("--queries", default=5_000, show_default=True, help="Synthetic requests to link.")
@click.option("--seed", default=7, show_default=True, help="Seed of the population and sampling.")
@click.option(
    "--population",
    type=click.Choice(["A", "B"], case_sensitive=False),
    default="A",
    show_default=True,
    help="Synthetic population to train on (A: the demo's; B: the independent one).",
)
@click.option(
    "--list",
    "list_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Train on this CSV of listed people instead of a synthetic population.",
)
@click.option(
    "--requests",
    "requests_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="CSV of requests to link to --list (columns as --list's).",
)
@click.option(
    "--precision-target", default=0.999, show_default=True, help="Expected precision of merges."
)
@click.option(
    "--review-budget", default=0.03, show_default=True, help="Largest expected review share."
)
def train_command(
    output: Path,
    people: int,
    queries: int,
    seed: int,
    population: str,
    list_file: Path | None,
    requests_file: Path | None,
    precision_target: float,
    review_budget: float,
) -> None:
    """Learn the matching model from records and write a versioned model file.

    Splink (DuckDB) estimates u by random sampling of record pairs and m by expectation
    maximisation over pairs blocked on date of birth and on postcode -- no labels are
    read. The match and no-match thresholds are then chosen from the trained model to
    meet the precision target within the review budget. The file holds the comparison
    levels, m, u, the prior, the thresholds and the training data as counts, never a
    record. The labels of the synthetic population are not used.

    With --list and --requests it trains on your own records instead (CSV with a header:
    given_name, family_name, date_of_birth as YYYY-MM-DD, postcode, address_line1).
    """
    from accord.matching.evaluate import generate
    from accord.matching.training import TrainingError, train_model, write_model

    if (list_file is None) != (requests_file is None):
        raise click.UsageError("--list and --requests go together")
    if list_file is not None and requests_file is not None:
        listed = {f"L{i}": r for i, r in enumerate(_read_records(list_file))}
        requests = _read_records(requests_file)
        source = "records given (CSV files)"
        click.echo(f"training on {len(listed)} listed and {len(requests)} requests")
    else:
        population = population.upper()
        generated = generate(population, people, queries, seed)
        listed, requests = generated.people, [q.record for q in generated.queries]
        source = f"synthetic population {population} (seed {seed})"
        click.echo(
            f"training on synthetic population {population}: {len(listed)} listed, "
            f"{len(requests)} requests, seed {seed} (labels not used)"
        )
    try:
        model = train_model(
            listed,
            requests,
            seed=seed,
            source=source,
            precision_target=precision_target,
            review_budget=review_budget,
        )
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    write_model(model, output)
    thresholds = model["thresholds"]
    click.echo(f"model {model['version']} written to {output}")
    click.echo(f"prior log2 odds {model['prior']['log2_odds']:.2f}")
    for name, comparison in model["comparisons"].items():
        levels = ", ".join(
            f"{lv['label']} {lv['bayes_factor_log2']:+.1f}" for lv in comparison["levels"]
        )
        click.echo(f"  {name:<14} {levels}")
    click.echo(
        f"match weight >= {thresholds['match_weight']}, no match below "
        f"{thresholds['no_match_weight']} (expected on training requests: "
        f"{thresholds['expected_on_training_requests']})"
    )


_CSV_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "address_line1")


def _read_records(path: Path) -> list[PersonRecord]:
    """Person records from a CSV with a header naming `_CSV_FIELDS` (others ignored).

    An unreadable date of birth is read as missing; the row is named, never its values.
    """
    import csv
    from datetime import date

    records = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [f for f in ("given_name", "family_name") if f not in (reader.fieldnames or [])]
        if missing:
            raise click.ClickException(f"{path}: no column {', '.join(missing)}")
        for row in reader:
            try:
                dob = date.fromisoformat(row["date_of_birth"]) if row.get("date_of_birth") else None
            except ValueError:
                dob = None
            records.append(
                PersonRecord(
                    row.get("given_name") or None,
                    row.get("family_name") or None,
                    dob,
                    row.get("postcode") or None,
                    row.get("address_line1") or None,
                )
            )
    return records


def _report(evaluation: Evaluation, queries: int, seed: int, by_kind: bool) -> list[str]:
    """Print one population's figures; the names of the targets it missed."""
    click.echo(
        f"population {evaluation.population}: list of {evaluation.people} people, "
        f"{queries} queries, seed {seed}"
    )
    header = (
        f"{'':<24} {'queries':>7} {'listed':>7} {'TP':>7} {'FP':>5} {'FN':>6} "
        f"{'reviews':>7}  {'precision':>9} {'recall':>7} {'review':>7}"
    )
    click.echo(header)
    click.echo(_line("all queries", evaluation.overall))
    if evaluation.without_identifier.queries != evaluation.overall.queries:
        click.echo(_line("without CHI", evaluation.without_identifier))
    if by_kind:
        click.echo("by kind (a query may have several):")
        for kind, counts in kinds_by_count(evaluation):
            click.echo(_line(f"  {kind}", counts))
    click.echo(
        f"recall lost to blocking {evaluation.recall_lost_to_blocking:.4f} "
        f"({evaluation.blocking_missed} listed queries never proposed), "
        f"to scoring {evaluation.recall_lost_to_scoring:.4f}"
    )
    pairs = ", ".join(f"{rule} {n}" for rule, n in evaluation.pairs_by_rule.items())
    click.echo(f"pairs per rule: {pairs}; union {evaluation.pairs_union}")
    merged = evaluation.relatives_merged
    click.echo(f"relatives merged (twins, spouses, same-name relatives): {merged}")
    memory = (
        f"{evaluation.index_memory_mb:.0f} MB"
        if evaluation.index_memory_mb is not None
        else "not measurable"
    )
    click.echo(
        f"index built in {evaluation.build_seconds:.1f} s (memory ~{memory}); "
        f"{evaluation.ms_per_query:.3f} ms per query "
        f"({evaluation.cpu_ms_per_query:.3f} ms of processor time)"
    )
    overall = evaluation.overall
    return [
        f"{evaluation.population} {name}"
        for name, ok in (
            ("precision", overall.precision >= TARGETS["precision"]),
            ("recall", overall.recall >= TARGETS["recall"]),
            ("review rate", overall.review_rate <= TARGETS["review_rate"]),
            ("relatives merged", evaluation.relatives_merged == 0),
        )
        if not ok
    ]


@match.command("evaluate")
@click.option("--people", default=20_000, show_default=True, help="People on the synthetic list.")
@click.option("--queries", default=5_000, show_default=True, help="Noisy queries to answer.")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic population.")
@click.option(
    "--population",
    "populations",
    type=click.Choice(["A", "B", "both"], case_sensitive=False),
    default="both",
    show_default=True,
    help="A: written beside the matcher; B: written apart, its own corruption model.",
)
@click.option(
    "--model",
    "model_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model file to evaluate [default: ACCORD_MATCH_MODEL_FILE, else the shipped one].",
)
@click.option(
    "--by-kind/--no-by-kind", default=True, show_default=True, help="Break down by noise kind."
)
def evaluate_command(
    people: int,
    queries: int,
    seed: int,
    populations: str,
    model_file: Path | None,
    by_kind: bool,
) -> None:
    """Measure the matcher on labelled synthetic populations.

    Generates a list of PEOPLE and QUERIES noisy records (80% about listed people, 20%
    about people who are not listed -- strangers, twins, same-name relatives at the same
    address, spouses), asks the matcher for each query's best candidate, and prints per
    population and per noise or corruption kind:

    \b
      TP         auto-merges (MATCH) to the right person
      FP         auto-merges to anyone else (a false merge)
      FN         listed queries not auto-merged to their person (reviews and misses)
      precision  TP / (TP + FP)                    target >= 0.999
      recall     TP / listed queries               target >= 0.97
      review     REVIEW answers / all queries      target <= 0.03
      relatives  twins, spouses, same-name relatives merged: target 0

    and the recall lost to blocking (the person never proposed) apart from the recall
    lost to scoring, the pairs each blocking rule proposes, the index's memory and the
    time per query. Use --people 1000000 for the speed and memory at a million people.
    Exits 1 when a target is missed, so that it can gate a build.
    """
    model: MatchModel | None = None
    if model_file is not None:
        try:
            model = load_model(model_file)
        except ModelError as exc:
            raise click.ClickException(str(exc)) from None
    names = ["A", "B"] if populations.lower() == "both" else [populations.upper()]
    missed: list[str] = []
    for name in names:
        evaluation = run_evaluation(people, queries, seed, name, model)
        if name == names[0]:
            from accord.matching.evaluate import Matcher

            click.echo(f"model {(model or Matcher().model).version}")
        missed += _report(evaluation, queries, seed, by_kind)
        click.echo("")
    if missed:
        click.echo(f"targets missed: {', '.join(missed)}")
        sys.exit(1)
    click.echo("all targets met")


from accord.matching.review_commands import register  # noqa: E402

register(match)  # review list|show|confirm|reject, split (the review workflow)
