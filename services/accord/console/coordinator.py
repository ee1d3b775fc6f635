"""The coordinator's pages: the live support list, a case, recording an outcome, exports.

    GET  /cases                                  -> the signed-in coordinator's own list
    GET  /lists/{org}                            the list (filters and sorting in the query)
    GET  /lists/{org}/events?v=                  server-sent events: the list's table, again,
                                                 whenever it changes (at most once a second),
                                                 at once if it changed since the page's `v`
    GET  /lists/{org}/cases/{reference}          a case: needs, priority and why, outcomes
                                                 seen, every released field, provenance
    POST /lists/{org}/cases/{reference}/outcome  record an outcome (CSRF-protected)
    GET  /lists/{org}/export.csv | export.xlsx   the filtered list, formulas made inert

The review queue of uncertain matches is an IG officer's page (`accord.console.review`).

Every route checks that `org` is the coordinator's own organisation: another recipient's
list is 403 and recorded in the access log; a recipient no agreement names is 404. Every
page and export showing people records their pseudonymous keys in the access log.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse

from accord.console import listing
from accord.console.auth import CoordinatorUser, csrf_protect, require_recipient
from accord.console.lists import list_changes
from accord.console.users import COORDINATOR, User
from accord.console.web import NavItem, PageError, error_page, render, templates
from accord.coordinator import views
from accord.core.logging import get_logger

log = get_logger("accord.console")
router = APIRouter()
NAV = [
    NavItem("Support list", "/cases", (COORDINATOR,), prefix="/lists"),
]

SSE_MIN_INTERVAL_S: Final = 1.0
SSE_PING_S: Final = 15
# Fields of a case shown on its page, in order, when released (beyond the hub's own).
CASE_FIELDS: Final = (
    ("Given name", "given_name"),
    ("Family name", "family_name"),
    ("Date of birth", "date_of_birth"),
    ("Address line 1", "address_line1"),
    ("Address line 2", "address_line2"),
    ("Town", "town"),
    ("Postcode", "postcode"),
    ("Council area", "council_area"),
    ("Phone", "contact_phone"),
    ("Shielding", "is_shielding"),
)
CASE_RELEASED_AS: Final = {"is_shielding": "shielding_status"}


def scoped_list(request: Request, user: User, org: str) -> Any:
    """The recipient's live list, after checking the coordinator may read it: a recipient
    no agreement names is 404, another recipient's list 403; both are access-logged."""
    if org != user.org and org not in views.recipients_known(
        request.app.state.settings.policies_dir
    ):
        request.app.state.access_log.denied(
            request, user, "asked for a recipient no agreement names", org[:64], status=404
        )
        raise PageError(
            404,
            "There is no such recipient",
            "No data-sharing agreement names that organisation as a recipient, so it has no list.",
            "Check the address, or go back to your own list.",
        )
    require_recipient(request, user, org)
    lists = request.app.state.lists
    if lists is None:
        return None
    return lists.get(org)


def list_context(request: Request, user: User, org: str, live: Any) -> dict[str, Any]:
    filters = listing.Filters.from_query(request.query_params)
    stamp = live.stamp if live is not None else ""  # before the snapshot (see its doc)
    cases = live.snapshot() if live is not None else []
    result = listing.listing(cases, filters)
    page = result.shown[: listing.PAGE_ROWS]
    agreements = views.agreements_naming(request.app.state.settings.policies_dir, org)
    empty_why = None
    if live is not None and not cases:
        read = views.ListRead(
            cases={},
            topic_exists=live.topic_exists,
            records=live.records,
            removed=sum(live.removed_because.values()),
            removed_because=live.removed_because,
        )
        empty_why = views.empty_list_explanation(org, read, agreements)
    return {
        "org": org,
        "stamp": stamp,
        "filters": filters,
        "result": result,
        "rows": page,
        "more": max(0, len(result.shown) - len(page)),
        "columns": listing.columns(cases),
        "cell": listing.cell,
        "reference": views.case_reference,
        "label": listing.label,
        "priorities": listing.PRIORITIES,
        "needs": listing.NEED_CHOICES,
        "outcomes": listing.OUTCOME_CHOICES,
        "no_outcome": listing.NO_OUTCOME,
        "outcome_label": lambda v: "none yet" if v == listing.NO_OUTCOME else listing.label(v),
        "sorts": listing.SORT_LABELS,
        "available": live is not None and live.error is None,
        "error": live.error if live is not None else "the console is not connected to Kafka",
        "empty_why": empty_why,
        "inactive": views.inactive_agreements(agreements),
    }


@router.get("/cases")
def own_list(request: Request, user: CoordinatorUser) -> Response:
    if not user.org:
        return error_page(request, 403, "No list for your account", "Your account has no list.")
    return RedirectResponse(f"/lists/{user.org}", status_code=303)


@router.get("/lists/{org}")
def list_page(request: Request, org: str, user: CoordinatorUser) -> Response:
    live = scoped_list(request, user, org)
    context = list_context(request, user, org, live)
    request.app.state.access_log.viewed(
        request, user, (c["case_key"] for c in context["rows"]), "support list", org
    )
    return render(request, "coordinator/list.html", context)


@router.get("/lists/{org}/events")
async def list_events(request: Request, org: str, user: CoordinatorUser) -> Response:
    """The list's table, rendered again after each change (at most once a second): a
    new case appears, a changed one changes and a removed one (a tombstone) disappears,
    with the filters and sorting of the page that listens. `v` is the list's version the
    page was rendered at: a change since then is sent at once (`lists.list_changes`)."""
    live = scoped_list(request, user, org)
    if live is None:
        return error_page(request, 503, "The live list is not available", "Reload later.")
    access_log = request.app.state.access_log

    async def stream():  # type: ignore[no-untyped-def]
        seen_keys: set[str] = set()
        updates = list_changes(live, request.query_params.get("v"), SSE_PING_S)
        async with contextlib.aclosing(updates):
            async for changed in updates:
                if not changed:
                    yield {"event": "ping", "data": ""}
                    continue
                if await request.is_disconnected():
                    return
                context = list_context(request, user, org, live)
                shown = {c["case_key"] for c in context["rows"]}
                if shown - seen_keys:
                    access_log.viewed(request, user, shown - seen_keys, "support list (live)", org)
                seen_keys |= shown
                html = templates.get_template("coordinator/_table.html").render(
                    {**context, "request": request}
                )
                yield {"event": "list", "data": html.replace("\n", " ")}
                await asyncio.sleep(SSE_MIN_INTERVAL_S)

    return EventSourceResponse(stream(), ping=None, headers={"Cache-Control": "no-store"})


def find(live: Any, reference: str) -> dict[str, Any] | None:
    try:
        wanted = views.normalise_reference(reference)
    except ValueError:
        return None
    if live is None:
        return None
    with live.lock:
        try:
            return dict(views.find_case(live.cases, wanted))
        except LookupError:
            return None


def case_context(
    request: Request, org: str, case: dict[str, Any], live: Any, **extra: Any
) -> dict[str, Any]:
    released = set(case.get("fields_released") or ())
    fields = [
        (header, listing.cell(case, column))
        for header, column in CASE_FIELDS
        if CASE_RELEASED_AS.get(column, column) in released or case.get(column) is not None
    ]
    return {
        "org": org,
        "case": case,
        "reference": views.case_reference(case["case_key"]),
        "name": views.display_name(case),
        "fields": fields,
        "needs": [n for n in case.get("needs") or ()],
        "label": listing.label,
        "cell": listing.cell,
        "history": live.history(case["case_key"]) if hasattr(live, "history") else [],
        "outcome_choices": listing.OUTCOME_CHOICES,
        "released": sorted(released),
        **extra,
    }


@router.get("/lists/{org}/cases/{reference}")
def case_page(request: Request, org: str, reference: str, user: CoordinatorUser) -> Response:
    live = scoped_list(request, user, org)
    case = find(live, reference)
    if case is None:
        return error_page(
            request,
            404,
            "No such case on your list",
            "The case may have been closed, merged or removed from your list, or the "
            "reference was mistyped.",
            "Go back to the support list and choose the case from there.",
        )
    request.app.state.access_log.viewed(request, user, [case["case_key"]], "case", org)
    recorded = request.query_params.get("recorded")
    return render(
        request,
        "coordinator/case.html",
        case_context(request, org, case, live, recorded=recorded),
    )


@router.post("/lists/{org}/cases/{reference}/outcome", dependencies=[Depends(csrf_protect)])
def record_outcome(
    request: Request,
    org: str,
    reference: str,
    user: CoordinatorUser,
    need: Annotated[str, Form(max_length=64)] = "",
    outcome: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    from accord.coordinator.outcomes import OutcomeRefused, PublishInputError, publish_outcome

    live = scoped_list(request, user, org)
    case = find(live, reference)
    if case is None:
        return error_page(request, 404, "No such case on your list", "Nothing was recorded.", None)
    need, outcome = need.strip().upper(), outcome.strip().upper()
    errors: dict[str, str] = {}
    if need not in (case.get("needs") or ()):
        errors["need"] = "Select which of the case's open needs the outcome is for"
    if outcome not in listing.OUTCOME_CHOICES:
        errors["outcome"] = "Select what happened"
    if not errors:
        try:
            recorded = publish_outcome(
                request.app.state.settings, user.org or org, case, need, outcome
            )
        except OutcomeRefused as exc:
            errors["outcome"] = f"The outcome cannot be recorded: {exc}"
        except PublishInputError as exc:
            log.warning("console_outcome_refused", org=user.org, reason=str(exc))
            return error_page(
                request,
                503,
                "The outcome could not be recorded",
                "Your organisation cannot publish outcomes to the hub just now. Nothing was "
                "recorded.",
                "Try again later, or ask your administrator.",
            )
        else:
            log.info(
                "console_outcome_recorded",
                user=user.username,
                org=user.org,
                event_id=recorded.event_id,
                case_key=case["case_key"],
            )
            ref = views.case_reference(case["case_key"])
            return RedirectResponse(
                f"/lists/{org}/cases/{ref}?recorded={recorded.event_id}", status_code=303
            )
    request.app.state.access_log.viewed(request, user, [case["case_key"]], "case", org)
    return render(
        request,
        "coordinator/case.html",
        case_context(
            request, org, case, live, errors=errors, chosen={"need": need, "outcome": outcome}
        ),
        status_code=400,
    )


def _export(request: Request, user: User, org: str) -> tuple[list[dict[str, Any]], str]:
    live = scoped_list(request, user, org)
    if live is None or live.error:
        raise UnavailableList()
    filters = listing.Filters.from_query(request.query_params)
    shown = listing.listing(live.snapshot(), filters).shown
    request.app.state.access_log.viewed(
        request, user, (c["case_key"] for c in shown), "export", org
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return shown, f"{org}-support-list-{stamp}"


class UnavailableList(Exception):
    pass


@router.get("/lists/{org}/export.csv")
def export_csv(request: Request, org: str, user: CoordinatorUser) -> Response:
    try:
        shown, name = _export(request, user, org)
    except UnavailableList:
        return error_page(request, 503, "The list is not available", "Try again shortly.")
    return Response(
        listing.to_csv(shown),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/lists/{org}/export.xlsx")
def export_xlsx(request: Request, org: str, user: CoordinatorUser) -> Response:
    try:
        shown, name = _export(request, user, org)
    except UnavailableList:
        return error_page(request, 503, "The list is not available", "Try again shortly.")
    return Response(
        listing.to_xlsx(shown, "Support list"),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )
