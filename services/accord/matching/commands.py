"""`accord match ...`: commands about identity matching."""

from __future__ import annotations

import sys

import click

from accord.matching.evaluate import Counts, kinds_by_count, run_evaluation

_TARGETS = {"precision": 0.995, "recall": 0.95, "review_rate": 0.05}


@click.group()
def match() -> None:
    """Identity matching: link records about the same person across partners."""


def _line(label: str, c: Counts) -> str:
    return (
        f"{label:<22} {c.queries:>7} {c.listed:>7} {c.tp:>7} {c.fp:>5} {c.fn:>6} "
        f"{c.reviews:>7}  {c.precision:>9.4f} {c.recall:>7.4f} {c.review_rate:>7.4f}"
    )


@match.command("evaluate")
@click.option("--people", default=20_000, show_default=True, help="People on the synthetic list.")
@click.option("--queries", default=5_000, show_default=True, help="Noisy queries to answer.")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic population.")
@click.option(
    "--by-kind/--no-by-kind", default=True, show_default=True, help="Break down by noise kind."
)
def evaluate_command(people: int, queries: int, seed: int, by_kind: bool) -> None:
    """Measure the matcher on a labelled synthetic population.

    Generates a list of PEOPLE (everyone with a CHI) and QUERIES noisy records (80% about
    listed people, 20% about people who are not listed -- strangers, twins, same-name
    relatives at the same address, spouses, namesakes), asks the matcher for each query's
    best candidate, and prints:

    \b
      TP         auto-merges (MATCH) to the right person
      FP         auto-merges to anyone else (a false merge)
      FN         listed queries not auto-merged to their person (reviews and misses)
      precision  TP / (TP + FP)                    target >= 0.995
      recall     TP / listed queries               target >= 0.95
      review     REVIEW answers / all queries      target <= 0.05

    Exits 1 when a target is missed, so that it can gate a build.
    """
    evaluation = run_evaluation(people, queries, seed)
    click.echo(f"list of {evaluation.people} people, {queries} queries, seed {seed}")
    header = (
        f"{'':<22} {'queries':>7} {'listed':>7} {'TP':>7} {'FP':>5} {'FN':>6} "
        f"{'reviews':>7}  {'precision':>9} {'recall':>7} {'review':>7}"
    )
    click.echo(header)
    click.echo(_line("all queries", evaluation.overall))
    click.echo(_line("without CHI", evaluation.without_identifier))
    if by_kind:
        click.echo("by kind (a query may have several):")
        for kind, counts in kinds_by_count(evaluation):
            click.echo(_line(f"  {kind}", counts))
    memory = (
        f"{evaluation.index_memory_mb:.0f} MB"
        if evaluation.index_memory_mb is not None
        else "not measurable"
    )
    click.echo(
        f"index built in {evaluation.build_seconds:.1f} s (memory ~{memory}); "
        f"{evaluation.ms_per_query:.2f} ms per query"
    )
    overall = evaluation.overall
    missed = [
        name
        for name, ok in (
            ("precision", overall.precision >= _TARGETS["precision"]),
            ("recall", overall.recall >= _TARGETS["recall"]),
            ("review rate", overall.review_rate <= _TARGETS["review_rate"]),
        )
        if not ok
    ]
    if missed:
        click.echo(f"targets missed: {', '.join(missed)}")
        sys.exit(1)
    click.echo("all targets met")


from accord.matching.review_commands import register  # noqa: E402

register(match)  # review list|show|confirm|reject, split (the review workflow)
