"""`accord match review ...` and `accord match split`: settle the matcher's review queue.

Thin: every step is a function in `accord.matching.review`, which a console page calls
the same way. The commands sign in as the reviewer principal (`accord-reviewer`) unless
ACCORD_PRINCIPAL or ACCORD_CREDENTIALS_FILE chose another.
"""

from __future__ import annotations

import click

from accord.core.errors import AccordError
from accord.core.settings import get_settings
from accord.matching import review as engine
from accord.matching.actions import CONFIRM, REJECT

reviewer_ref_option = click.option(
    "--reviewer-ref", help="Your staff reference within the team, kept with the decision."
)


def _settings():
    return engine.reviewer_settings(get_settings())


def _fail(exc: AccordError) -> None:
    raise click.ClickException(str(exc)) from exc


def _day(queued_at: str | None) -> str:
    """The day of the queued record (when it occurred, as its publisher said)."""
    return (queued_at or "-")[:10]


@click.group("review")
def review() -> None:
    """The pairs the matcher could not decide: list, show, confirm or reject them.

    A pair is one record that arrived without a CHI number (queued) and a person the hub
    already knows (candidate). Confirm merges the queued person's case into the
    candidate's; reject records them as two people, never proposed again. Each decision
    is published with your principal, time and reason, and is audited.
    """


@review.command("list")
def list_command() -> None:
    """The pending reviews, oldest first (ids and scores only; no personal data)."""
    try:
        queue = engine.pending(_settings())
    except AccordError as exc:
        _fail(exc)
    if not queue:
        click.echo("no pairs waiting for review")
        return
    click.echo(f"{'review':<13} {'record of':<10}  {'probability':>11}  {'dataset':<16} from")
    for item in queue:
        click.echo(
            f"{item.short_id:<13} {_day(item.queued_at):<10}  {item.probability:>11.4f}  "
            f"{item.dataset:<16} {item.source_org}"
        )
    click.echo(f"{len(queue)} waiting; `accord match review show ID` to compare a pair")


@review.command("show")
@click.argument("review_id")
def show_command(review_id: str) -> None:
    """Both records side by side, with the matcher's evidence and score."""
    try:
        item = engine.find(engine.pending(_settings()), review_id)
    except AccordError as exc:
        _fail(exc)
    click.echo(f"review {item.short_id}  ({item.dataset} from {item.source_org})")
    click.echo(f"probability {item.probability:.4f}, weight {item.weight:+.1f} bits")
    rows = [("", "queued record", "listed person", "evidence"), *engine.side_by_side(item)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )
    click.echo(
        f"confirm: accord match review confirm {item.short_id}\n"
        f"reject:  accord match review reject {item.short_id} --reason TEXT"
    )


def _decide(action: str, review_id: str, reason: str | None, reviewer_ref: str | None) -> None:
    try:
        record = engine.decide(_settings(), action, review_id, reason, reviewer_ref)
    except AccordError as exc:
        _fail(exc)
    verb = "confirmed: one person" if action == CONFIRM else "rejected: two people"
    click.echo(
        f"review {record['person_key'][:12]} {verb}; decision {record['decision_id']} "
        f"by {record['reviewer']} published"
    )


@review.command("confirm")
@click.argument("review_id")
@click.option("--reason", help="Why (optional for a confirmation; no personal data).")
@reviewer_ref_option
def confirm_command(review_id: str, reason: str | None, reviewer_ref: str | None) -> None:
    """The pair is one person: the queued case is merged into the listed person's."""
    _decide(CONFIRM, review_id, reason, reviewer_ref)


@review.command("reject")
@click.argument("review_id")
@click.option("--reason", required=True, help="Why they are two people (no personal data).")
@reviewer_ref_option
def reject_command(review_id: str, reason: str, reviewer_ref: str | None) -> None:
    """The pair is two people: recorded, and never proposed again."""
    _decide(REJECT, review_id, reason, reviewer_ref)


@click.command("split")
@click.argument("key_a", required=False)
@click.argument("key_b", required=False)
@click.option("--decision", "decision_id", help="The confirmation to undo (its decision id).")
@click.option("--reason", required=True, help="Why the merge was wrong (no personal data).")
@reviewer_ref_option
def split_command(
    key_a: str | None,
    key_b: str | None,
    decision_id: str | None,
    reason: str,
    reviewer_ref: str | None,
) -> None:
    """Undo a wrong merge: KEY_A KEY_B are the two people's case keys (as the lists and
    the audit show them), or --decision names the confirmation to undo.

    The person merged in gets their own case back (rebuilt from their records), the
    other's case is withdrawn at every recipient and decided again from their own
    records alone, and the pair is never proposed again; the audit says why."""
    if decision_id is None and not (key_a and key_b):
        raise click.UsageError("give KEY_A KEY_B, or --decision ID")
    try:
        record = engine.split(_settings(), key_a, key_b, reason, decision_id, reviewer_ref)
    except AccordError as exc:
        _fail(exc)
    click.echo(
        f"split {record['person_key'][:12]} from {record['other_person_key'][:12]}; "
        f"decision {record['decision_id']} by {record['reviewer']} published"
    )


def register(group: click.Group) -> None:
    """Add the review workflow's commands to `accord match`."""
    group.add_command(review)
    group.add_command(split_command)
