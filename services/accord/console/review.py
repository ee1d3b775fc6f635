"""The review queue of uncertain matches, for IG officers: the console's face of
`accord match review` (`accord.matching.review`, the engine; the console calls the same
functions as the command line, as the same `accord-reviewer` principal).

    GET  /ig/review                       the pairs waiting for a reviewer: ids, age, score,
                                          dataset and sender only (no personal data)
    GET  /ig/review/{review_id}           one pair: both records side by side, the evidence
                                          and the score (access-logged with both keys)
    POST /ig/review/{review_id}/decision  confirm or reject (CSRF-protected; a reason is
                                          required to reject and refused when it looks like
                                          personal data, shown as a form error)
    GET  /review                          -> /ig/review (where the queue used to be)

A decision is published on hub.match.decisions with the reviewer principal and, as its
`reviewer_ref`, the console user who decided; the worker applies it (a confirmed pair is
merged and the provisional person's case goes from the lists, a rejected pair stays two
people and is never proposed again).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from accord.console.auth import IgUser, SignedInUser, csrf_protect
from accord.console.users import IG
from accord.console.web import NavItem, error_page, render
from accord.core.errors import AccordError
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.matching import review as engine
from accord.matching.actions import CONFIRM, REJECT

log = get_logger("accord.console.review")
router = APIRouter()
NAV = [NavItem("Review queue", "/ig/review", (IG,))]
ACTIONS: Final = {CONFIRM: "Confirm: the same person", REJECT: "Reject: two different people"}


def reviewer_settings(request: Request) -> Settings:
    """The reviewer principal's settings (as `accord match review` signs in), unless the
    app was given others (`app.state.review_settings`)."""
    given = getattr(request.app.state, "review_settings", None)
    return given or engine.reviewer_settings(request.app.state.settings)


def age(queued_at: str | None, now: datetime | None = None) -> str:
    """How old the queued record is (when it occurred, as its publisher said: the pair has
    waited since about then), in plain words ("3 hours", "2 days")."""
    if not queued_at:
        return "not known"
    try:
        then = datetime.fromisoformat(queued_at.replace("Z", "+00:00"))
    except ValueError:
        return "not known"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return "less than a minute"


def percent(probability: float) -> str:
    """A match probability as people read it: "62.0%", never a rounded-up "100%" for a
    pair the matcher was not sure of ("over 99.9%")."""
    if probability >= 1.0:
        return "100%"
    if probability > 0.999:
        return "over 99.9%"
    if 0.0 < probability < 0.001:
        return "under 0.1%"
    return f"{probability * 100:.1f}%"


def day(queued_at: str | None) -> str:
    """The queued record's date ("2 December 2026"), or "not known"."""
    try:
        return datetime.fromisoformat((queued_at or "")[:10]).strftime("%-d %B %Y")
    except ValueError:
        return "not known"


def _decided(request: Request) -> dict[str, str]:
    """Review id -> decision id of the pairs this console has decided that the hub may not
    have taken off the queue yet (the worker applies a decision within seconds)."""
    state = request.app.state
    if not hasattr(state, "review_decided"):
        state.review_decided = {}
    return state.review_decided


def _pending(request: Request) -> list[engine.Review] | Response:
    """The pairs waiting, less those decided here whose decision the hub is applying."""
    try:
        reviews = engine.pending(reviewer_settings(request))
    except AccordError as exc:
        log.warning("console_review_unavailable", error=type(exc).__name__)
        return error_page(
            request,
            503,
            "The review queue is not available",
            "The console could not read the queue of uncertain matches from the hub just now.",
            "Try again in a minute. If it persists, ask the hub's operators.",
        )
    decided = _decided(request)
    waiting = {r.review_id for r in reviews}
    for gone in set(decided) - waiting:
        decided.pop(gone, None)  # applied: the hub took it off the queue
    return [r for r in reviews if r.review_id not in decided]


def _not_found(request: Request) -> Response:
    return error_page(
        request,
        404,
        "No such pair waiting for review",
        "The pair may have been decided already (by you or another reviewer), or the "
        "address was mistyped. Nothing was changed.",
        "Go back to the review queue and choose a pair from there.",
    )


@router.get("/review")
def old_address(user: SignedInUser) -> Response:
    return RedirectResponse("/ig/review", status_code=303)


@router.get("/ig/review")
def queue_page(request: Request, user: IgUser) -> Response:
    reviews = _pending(request)
    if isinstance(reviews, Response):
        return reviews
    now = datetime.now(UTC)
    return render(
        request,
        "ig/review.html",
        {
            "reviews": reviews,
            "age": lambda r: age(r.queued_at, now),
            "day": lambda r: day(r.queued_at),
            "percent": percent,
            "decided": request.query_params.get("decided"),
            "action": request.query_params.get("action"),
        },
    )


def _pair_context(review: engine.Review, **extra: Any) -> dict[str, Any]:
    return {
        "review": review,
        "rows": engine.side_by_side(review),
        "age": age(review.queued_at),
        "day": day(review.queued_at),
        "percent": percent,
        "actions": ACTIONS,
        "reason_max": engine.REASON_MAX,
        **extra,
    }


def _find(request: Request, review_id: str) -> engine.Review | Response:
    reviews = _pending(request)
    if isinstance(reviews, Response):
        return reviews
    found = [r for r in reviews if r.review_id == review_id.strip().lower()]
    return found[0] if found else _not_found(request)


@router.get("/ig/review/{review_id}")
def pair_page(request: Request, review_id: str, user: IgUser) -> Response:
    review = _find(request, review_id)
    if isinstance(review, Response):
        return review
    request.app.state.access_log.viewed(
        request, user, [review.review_id, review.candidate_key], "review pair"
    )
    return render(request, "ig/review_pair.html", _pair_context(review))


@router.post("/ig/review/{review_id}/decision", dependencies=[Depends(csrf_protect)])
def decide(
    request: Request,
    review_id: str,
    user: IgUser,
    action: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    review = _find(request, review_id)
    if isinstance(review, Response):
        return review
    action = action.strip().upper()
    errors: dict[str, str] = {}
    if action not in ACTIONS:
        errors["action"] = "Select whether the records are the same person"
    elif action == REJECT and not reason.strip():
        errors["reason"] = "Say why the records are two different people"
    else:
        try:
            engine.check_reason(reason, required=action == REJECT)
        except engine.ReviewError as exc:
            errors["reason"] = f"The reason cannot be kept: {exc}"
    if not errors:
        try:
            record = engine.decide(
                reviewer_settings(request), action, review.review_id, reason, user.username
            )
        except engine.ReviewError as exc:
            errors["action"] = str(exc)[:1].upper() + str(exc)[1:]
        except AccordError as exc:
            log.warning("console_review_publish_failed", error=type(exc).__name__)
            return error_page(
                request,
                503,
                "The decision could not be sent",
                "The hub did not acknowledge the decision. Nothing was decided.",
                "Try again in a minute.",
            )
        else:
            _decided(request)[review.review_id] = record["decision_id"]
            log.info(
                "console_review_decided",
                user=user.username,
                action=action,
                review_id=review.review_id,
                decision_id=record["decision_id"],
            )
            return RedirectResponse(
                f"/ig/review?decided={record['decision_id']}&action={action}", status_code=303
            )
    request.app.state.access_log.viewed(
        request, user, [review.review_id, review.candidate_key], "review pair"
    )
    return render(
        request,
        "ig/review_pair.html",
        _pair_context(review, errors=errors, chosen={"action": action, "reason": reason}),
        status_code=400,
    )
