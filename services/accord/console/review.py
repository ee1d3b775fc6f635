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
    GET  /ig/merges                       the merges confirmed in review that still stand:
                                          decision, when, by whom, why, both case keys
    GET  /ig/merges/{decision_id}         one merge and the form to split it (access-logged
                                          with both keys)
    POST /ig/merges/{decision_id}/split   undo the merge (CSRF-protected; a reason is
                                          required and refused when it looks like personal
                                          data; a merge unknown or split already is 404)

A decision is published on hub.match.decisions with the reviewer principal and, as its
`reviewer_ref`, the console user who decided; the worker applies it (a confirmed pair is
merged and the provisional person's case goes from the lists, a rejected pair stays two
people and is never proposed again, a split gives each person their own case back and
withdraws what was shared under the merge, the audit naming the split). A split calls
`engine.split`, as `accord match split --decision ID` does. Merges the matcher made on its
own (sure enough without a reviewer) are not among the review decisions, which are all
the reviewer principal may read: they are split with `accord match split KEY_A KEY_B`.
Kafka or the registry away: 503, nothing sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from accord.console.auth import IgUser, SignedInUser, csrf_protect
from accord.console.users import IG
from accord.console.web import NavItem, error_page, render
from accord.coordinator.views import case_reference
from accord.core.credentials import REVIEWER
from accord.core.errors import AccordError
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.matching import review as engine
from accord.matching.actions import CONFIRM, REJECT

log = get_logger("accord.console.review")
router = APIRouter()
NAV = [NavItem("Review queue", "/ig/review", (IG,)), NavItem("Merges", "/ig/merges", (IG,))]
ACTIONS: Final = {CONFIRM: "Confirm: the same person", REJECT: "Reject: two different people"}


def reviewer_settings(request: Request) -> Settings:
    """The reviewer principal's settings, unless the app was given others
    (`app.state.review_settings`): signed in with ACCORD_CONSOLE_REVIEWER_SECRET_FILE when
    it is set (a deployment, where ACCORD_PRINCIPAL is the console's own principal), else
    as `accord match review` signs in (the local stack's saved credential)."""
    given = getattr(request.app.state, "review_settings", None)
    if given is not None:
        return given
    return console_reviewer(request.app.state.settings)


def console_reviewer(settings: Settings) -> Settings:
    """Settings that sign in as `accord-reviewer` (see `reviewer_settings`)."""
    if settings.console_reviewer_secret_file is not None:
        return settings.model_copy(
            update={
                "principal": REVIEWER,
                "secret": None,
                "secret_file": settings.console_reviewer_secret_file,
                "credentials_file": None,
            }
        )
    return engine.reviewer_settings(settings)


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


# Splitting a merge confirmed in review.


def when(decided_at: Any) -> str:
    """A decision's time as people read it ("2 December 2026 at 17:05 UTC")."""
    if isinstance(decided_at, str):
        try:
            decided_at = datetime.fromisoformat(decided_at.replace("Z", "+00:00"))
        except ValueError:
            return "not known"
    if not isinstance(decided_at, datetime):
        return "not known"
    if decided_at.tzinfo is None:
        decided_at = decided_at.replace(tzinfo=UTC)
    return decided_at.astimezone(UTC).strftime("%-d %B %Y at %H:%M UTC")


def _unavailable(request: Request, exc: AccordError, doing: str) -> Response:
    log.warning("console_merges_unavailable", doing=doing, error=type(exc).__name__)
    return error_page(
        request,
        503,
        "The hub's review decisions are not available",
        "The console could not reach the hub just now. Nothing was changed.",
        "Try again in a minute. If it persists, ask the hub's operators.",
    )


def _merges(request: Request) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | Response:
    """(every review decision, the merges that stand), or the 503 page."""
    try:
        past = engine.decisions(reviewer_settings(request))
    except AccordError as exc:
        return _unavailable(request, exc, "reading")
    return past, engine.merges(past)


def _merge_not_found(request: Request) -> Response:
    return error_page(
        request,
        404,
        "No such merge to split",
        "The merge may have been split already (by you or another reviewer), or the "
        "address was mistyped. Nothing was changed.",
        "Go back to the merges and choose one from there.",
    )


def _find_merge(request: Request, decision_id: str) -> dict[str, Any] | Response:
    found = _merges(request)
    if isinstance(found, Response):
        return found
    wanted = decision_id.strip().lower()
    merge = [m for m in found[1] if m["decision_id"] == wanted]
    return merge[0] if merge else _merge_not_found(request)


def _keys(merge: dict[str, Any]) -> list[str]:
    return [merge["person_key"], merge["other_person_key"]]


@router.get("/ig/merges")
def merges_page(request: Request, user: IgUser) -> Response:
    found = _merges(request)
    if isinstance(found, Response):
        return found
    return render(
        request,
        "ig/merges.html",
        {
            "merges": found[1],
            "when": when,
            "ref": case_reference,
            "split": request.query_params.get("split"),
        },
    )


def _merge_context(merge: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "merge": merge,
        "when": when,
        "ref": case_reference,
        "reason_max": engine.REASON_MAX,
        **extra,
    }


@router.get("/ig/merges/{decision_id}")
def merge_page(request: Request, decision_id: str, user: IgUser) -> Response:
    merge = _find_merge(request, decision_id)
    if isinstance(merge, Response):
        return merge
    request.app.state.access_log.viewed(request, user, _keys(merge), "merge")
    return render(request, "ig/merge.html", _merge_context(merge))


@router.post("/ig/merges/{decision_id}/split", dependencies=[Depends(csrf_protect)])
def split(
    request: Request,
    decision_id: str,
    user: IgUser,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    merge = _find_merge(request, decision_id)
    if isinstance(merge, Response):
        return merge
    error = None
    if not reason.strip():
        error = "Say why the merge was wrong"
    else:
        try:
            engine.check_reason(reason, required=True)
        except engine.ReviewError as exc:
            error = f"The reason cannot be kept: {exc}"
    if error is None:
        try:
            record = engine.split(
                reviewer_settings(request),
                None,
                None,
                reason,
                decision_id=merge["decision_id"],
                reviewer_ref=user.username,
            )
        except engine.ReviewError:
            return _merge_not_found(request)  # split by someone else meanwhile
        except AccordError as exc:
            return _unavailable(request, exc, "publishing")
        request.app.state.access_log.viewed(request, user, _keys(merge), "merge split")
        log.info(
            "console_merge_split",
            user=user.username,
            merge_decision_id=merge["decision_id"],
            decision_id=record["decision_id"],
        )
        return RedirectResponse(f"/ig/merges?split={record['decision_id']}", status_code=303)
    request.app.state.access_log.viewed(request, user, _keys(merge), "merge")
    return render(
        request,
        "ig/merge.html",
        _merge_context(merge, errors={"reason": error}),
        status_code=400,
    )
