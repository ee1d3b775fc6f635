"""The IG officers' pages: agreements (with warnings and clauses in plain words),
suspending and reactivating one with a reason and watching sharing stop, decisions over
time with deny reasons and counts by recipient and field, a policy change simulated on
retained traffic, who received data about a person, and the console's access log.

Every page is for the IG role only (`IgUser`: another role gets 403, access-logged), and
none shows a list's contact details: the pages count people and show pseudonymous key
prefixes, never names, addresses or phone numbers.

Where the data comes from:
- agreements: the policies folder the hub's OPA watches (`ig_policies_dir`), read as OPA
  loads it; a suspension is written there as a file change (`accord.console.ig_status`);
- decisions and who-received: the audit index (`accord.governance.audit_index`), brought
  up to date from the audit topic as the hub's audit principal before each page;
- sharing stop: each recipient's share topic, keys and broker times only, read as the
  console's principal;
- simulation: `accord.governance.simulate`, what `accord policy simulate` runs (partner
  topics read as the worker, the candidate served by an isolated OPA).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from accord.console import ig_data, ig_status, ig_upload
from accord.console.auth import IgUser, csrf_protect
from accord.console.users import IG
from accord.console.web import NavItem, error_page, render
from accord.core.credentials import AUDIT, CONSOLE, WORKER, private_dir
from accord.core.errors import AccordError
from accord.core.kafka import as_principal
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.core.topics import Topics

log = get_logger("accord.console.ig")

router = APIRouter()
NAV = [
    NavItem("Agreements", "/ig/agreements", (IG,)),
    NavItem("Decisions", "/ig/decisions", (IG,)),
    NavItem("Policy change", "/ig/policy-change", (IG,)),
    NavItem("Who received", "/ig/who-received", (IG,)),
    NavItem("Access log", "/ig/access-log", (IG,)),
]
SINCE_CHOICES: Final = {
    "1h": "the last hour",
    "24h": "the last 24 hours",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
}
DEFAULT_SINCE: Final = "7d"
_simulation_lock = threading.Lock()

Csrf = [Depends(csrf_protect)]


# --- where things are --------------------------------------------------------------------


def policies_dir(request: Request) -> Path:
    """The policies folder the hub's OPA watches: the console's setting unless the app was
    given another (`app.state.ig_policies_dir`, e.g. a copy its tests' OPA watches)."""
    given = getattr(request.app.state, "ig_policies_dir", None)
    return Path(given) if given else request.app.state.settings.policies_dir


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def audit_settings(request: Request) -> Settings:
    """Settings that read the audit as the hub's audit principal: the saved credential on
    the local stack; in a deployment (the console signs in as its own ACCORD_PRINCIPAL,
    which may not read the audit) accord-audit's secret from ACCORD_SECRETS_DIR."""
    given = getattr(request.app.state, "ig_audit", None)
    return given or audit_principal_settings(_settings(request))


def audit_principal_settings(settings: Settings) -> Settings:
    if settings.secrets_dir is not None and settings.principal not in ("", AUDIT):
        return settings.model_copy(
            update={
                "principal": AUDIT,
                "secret": None,
                "secret_file": None,
                "credentials_file": None,
            }
        )
    return as_principal(settings, AUDIT)


def _serde(request: Request):
    from accord.core.serde import AvroSerde, registry_client

    settings = audit_settings(request)
    return AvroSerde(registry_client(settings, AUDIT), settings.schemas_dir)


def _agreements(request: Request) -> dict[str, Any]:
    from accord.pipeline.retention import agreements_from_dir

    return agreements_from_dir(policies_dir(request))


def _today() -> date:
    return datetime.now(UTC).date()


def _changes_log(request: Request) -> Path:
    return _settings(request).console_dir / "agreement-changes.jsonl"


def _index(request: Request) -> tuple[Any, str]:
    """An audit index connection brought up to date (or as it is, saying so)."""
    from accord.governance.audit_index import catch_up, connect, index_path, indexed_until

    settings = audit_settings(request)
    path = index_path(settings)
    note = "up to date with the audit"
    try:
        # False only where no audit topic exists (the pages' unit tests on a made index)
        if getattr(request.app.state, "ig_catch_up", True):
            catch_up(settings, _serde(request))
    except (AccordError, OSError) as exc:
        log.warning("console_audit_unreadable", error=type(exc).__name__)
        note = "the audit could not be read just now: shown from the local audit index"
    db = connect(path)
    if note != "up to date with the audit":
        until = indexed_until(db)
        note += f" (newest decision {until:%d %b %Y %H:%M:%S} UTC)" if until else " (empty)"
    return db, note


def _since(value: str | None) -> tuple[str, datetime]:
    from accord.governance.commands import parse_since

    chosen = value if value in SINCE_CHOICES else DEFAULT_SINCE
    start = parse_since(chosen)
    assert start is not None
    return chosen, start


# --- agreements --------------------------------------------------------------------------


@router.get("/ig/agreements")
def agreements_page(request: Request, user: IgUser) -> Response:
    found = ig_data.summaries(_agreements(request), _today())
    warned = [a for a in found if a.warnings]
    return render(
        request,
        "ig/agreements.html",
        {"agreements": found, "warned": warned, "folder": policies_dir(request)},
    )


def _summary_or_404(request: Request, agreement_id: str):
    agreements = _agreements(request)
    agreement = agreements.get(agreement_id)
    if not isinstance(agreement, dict):
        return None, agreements
    return ig_data.summarise(agreement_id, agreement, _today()), agreements


def _not_found(request: Request, agreement_id: str) -> Response:
    return error_page(
        request,
        404,
        "There is no such agreement",
        "No agreement with that id is in the policies folder the hub serves.",
        "Go back to the list of agreements and choose one.",
    )


@router.get("/ig/agreements/{agreement_id}")
def agreement_page(request: Request, user: IgUser, agreement_id: str) -> Response:
    summary, _ = _summary_or_404(request, agreement_id)
    if summary is None:
        return _not_found(request, agreement_id)
    return render(
        request,
        "ig/agreement.html",
        {
            "a": summary,
            "history": ig_status.changes(_changes_log(request), agreement_id, limit=10),
            "error": None,
            "reason": "",
        },
    )


@router.post("/ig/agreements/{agreement_id}/status", dependencies=Csrf)
def change_status(
    request: Request,
    user: IgUser,
    agreement_id: str,
    action: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    summary, agreements = _summary_or_404(request, agreement_id)
    if summary is None:
        return _not_found(request, agreement_id)
    folder = policies_dir(request)
    recipients = ig_data.recipients_of(agreements[agreement_id])
    try:
        reason = ig_status.clean_reason(reason)
        before = {org: _list_records(request, org) for org in recipients}
        change = ig_status.set_status(
            folder, agreement_id, action, reason, validate=_validator(folder)
        )
    except ig_status.StatusRefused as exc:
        if exc.status == 400:
            return render(
                request,
                "ig/agreement.html",
                {
                    "a": summary,
                    "history": ig_status.changes(_changes_log(request), agreement_id, limit=10),
                    "error": exc.message,
                    "reason": reason if isinstance(reason, str) else "",
                },
                status_code=400,
            )
        if exc.message == ig_status.READ_ONLY_MESSAGE:
            log.warning("console_policies_read_only", agreement_id=agreement_id, action=action)
        return error_page(
            request,
            exc.status,
            "The agreement was not changed",
            exc.message,
            "Go back to the agreement, reload it and try again.",
        )
    ig_status.record_change(_changes_log(request), change, user.username)
    log.info(
        "console_agreement_status_changed",
        user=user.username,
        agreement_id=agreement_id,
        action=action,
        to=change.after,
    )
    request.app.state.__dict__.setdefault("ig_measures", {})[agreement_id] = {
        "change": change,
        "before": {
            org: (
                (m := ig_status.measure_list(org, records, time.time(), agreement_id)).now,
                m.under_now,
            )
            for org, records in before.items()
        },
    }
    return RedirectResponse(f"/ig/agreements/{agreement_id}/sharing", status_code=303)


def _validator(folder: Path):
    """Checks an edited agreement against the folder's agreement schema and the checks a
    schema cannot express, before it replaces the file."""
    import jsonschema

    from accord.governance.agreements import load_schema, semantic_problems

    schema = load_schema(folder)
    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(agreement: dict[str, Any]) -> list[str]:
        found = [e.message for e in validator.iter_errors(agreement)]
        return found + [m for _, m in semantic_problems(agreement)]

    return check


def _agreement_header(headers: Any) -> str:
    for name, value in headers or ():
        if name == "accord-agreement" and value:
            return value.decode("utf-8", "replace")
    return ""


def _list_records(request: Request, recipient: str) -> list[tuple]:
    """(key, broker time s, tombstone, agreement header) of every record of the
    recipient's share topic, read as the console's principal; values are never decoded."""
    from accord.core.kafka import read_topic

    given = getattr(request.app.state, "ig_share_records", None)
    if given is not None:  # the pages' unit tests, without Kafka
        return given(recipient)
    reader = getattr(request.app.state, "ig_share_reader", None) or as_principal(
        _settings(request), CONSOLE
    )
    topic = Topics(reader).share(recipient)
    try:
        return [
            (m.key, m.timestamp / 1000, m.value is None, _agreement_header(m.headers))
            for m in read_topic(reader, topic, idle_timeout_s=1.0, max_wait_s=20.0)
        ]
    except AccordError as exc:
        log.warning("console_share_unreadable", recipient=recipient, error=type(exc).__name__)
        return []


@router.get("/ig/agreements/{agreement_id}/sharing")
def sharing_page(request: Request, user: IgUser, agreement_id: str) -> Response:
    summary, agreements = _summary_or_404(request, agreement_id)
    if summary is None:
        return _not_found(request, agreement_id)
    measured = getattr(request.app.state, "ig_measures", {}).get(agreement_id)
    if measured is None:
        return render(request, "ig/sharing.html", {"a": summary, "change": None, "lists": []})
    change: ig_status.StatusChange = measured["change"]
    lists = []
    for org in ig_data.recipients_of(agreements[agreement_id]):
        result = ig_status.measure_list(
            org, _list_records(request, org), change.changed_at, agreement_id
        )
        lists.append((result, measured["before"].get(org, (result.before, result.under_before))))
    return render(
        request,
        "ig/sharing.html",
        {
            "a": summary,
            "change": change,
            "changed": datetime.fromtimestamp(change.changed_at, UTC),
            "lists": lists,
            "measured_at": datetime.now(UTC),
            "seconds_since": time.time() - change.changed_at,
        },
    )


# --- decisions ---------------------------------------------------------------------------


@router.get("/ig/decisions")
def decisions_page(
    request: Request, user: IgUser, agreement: str | None = None, since: str | None = None
) -> Response:
    chosen, start = _since(since)
    known = _agreements(request)
    if agreement and agreement not in known:
        db, _ = _index(request)
        try:
            from accord.governance.audit_index import agreement_ids

            in_audit = agreement_ids(db)
        finally:
            db.close()
        if agreement not in in_audit:
            return error_page(
                request,
                404,
                "There is no such agreement",
                "No agreement with that id is in the policies folder or the audit.",
                "Choose an agreement from the list.",
            )
    db, note = _index(request)
    try:
        from accord.governance.audit_index import agreement_ids

        ids = sorted(set(known) | agreement_ids(db))
        shown = [agreement] if agreement else ids
        charts = []
        for agreement_id in shown:
            series = ig_data.decision_series(db, agreement_id, start)
            if agreement or series.buckets:
                charts.append((agreement_id, series, ig_data.chart_svg(series)))
        reasons, clauses, principles = ig_data.deny_reasons(db, start, agreement)
        recipients = ig_data.recipient_counts(db, start, agreement)
    finally:
        db.close()
    return render(
        request,
        "ig/decisions.html",
        {
            "agreement": agreement,
            "agreement_ids": ids,
            "since": chosen,
            "since_choices": SINCE_CHOICES,
            "start": start,
            "charts": charts,
            "reasons": reasons,
            "clauses": clauses,
            "principles": principles,
            "recipients": recipients,
            "note": note,
            "colours": {
                "shared": ig_data.SHARED_COLOUR,
                "withheld": ig_data.WITHHELD_COLOUR,
                "withdrawn": ig_data.WITHDRAWN_COLOUR,
            },
        },
    )


# --- policy change -----------------------------------------------------------------------


def candidate_roots(request: Request) -> list[Path]:
    """Where a candidate folder named by path may be: the project (a branch's checkout of
    policies/) and the console's own candidates folder."""
    settings = _settings(request)
    given = getattr(request.app.state, "ig_candidate_roots", None)
    return (
        [Path(p) for p in given] if given else [settings.home, settings.console_dir / "candidates"]
    )


@router.get("/ig/policy-change")
def policy_change_page(request: Request, user: IgUser) -> Response:
    return render(
        request,
        "ig/policy_change.html",
        {
            "roots": candidate_roots(request),
            "limit_kb": ig_upload.MAX_ARCHIVE_BYTES // 1024,
            "since_choices": SINCE_CHOICES,
            "since": DEFAULT_SINCE,
            "errors": {},
            "folder": "",
        },
    )


def _refused(request: Request, exc: ig_upload.CandidateRefused) -> Response:
    return render(
        request,
        "ig/policy_change_refused.html",
        {"message": exc.message, "problems": exc.problems[:50], "status": exc.status},
        status_code=exc.status,
    )


def _holders(request: Request) -> tuple[set[tuple[str, str]] | None, str]:
    from accord.governance.audit_index import holders

    try:
        db, note = _index(request)
    except Exception:  # an unreadable index: the withdrawals are then unknown
        return None, "the audit index could not be read"
    try:
        return holders(db), note
    finally:
        db.close()


@router.post("/ig/policy-change", dependencies=Csrf)
async def policy_change(
    request: Request,
    user: IgUser,
    source: Annotated[str, Form()] = "upload",
    folder: Annotated[str, Form()] = "",
    since: Annotated[str, Form()] = DEFAULT_SINCE,
    archive: UploadFile | None = None,
) -> Response:
    from starlette.concurrency import run_in_threadpool

    settings = _settings(request)
    work: Path | None = None
    try:
        if source == "folder":
            candidate = ig_upload.allowed_folder(folder, candidate_roots(request))
            label = str(candidate)
        else:
            if archive is None or not archive.filename:
                raise ig_upload.CandidateRefused(
                    400, "Choose a .zip or .tar file of a policies folder to upload."
                )
            data = await archive.read(ig_upload.MAX_ARCHIVE_BYTES + 1)
            work = ig_upload.workspace(settings.console_dir / "uploads")
            candidate = await run_in_threadpool(
                ig_upload.unpack, data, archive.filename, work / "x"
            )
            label = f"the uploaded {Path(archive.filename).name}"
        problems = await run_in_threadpool(ig_upload.agreement_problems, candidate)
        if problems:
            raise ig_upload.CandidateRefused(
                422,
                "The candidate's agreements do not match the agreement schema, so it was not "
                "simulated. Fix these and try again:",
                problems,
            )
        if not _simulation_lock.acquire(blocking=False):
            raise ig_upload.CandidateRefused(
                429, "Another simulation is running. Wait for it to finish, then try again."
            )
        try:
            chosen, start = _since(since)
            report = await run_in_threadpool(_simulate, request, candidate, start)
        finally:
            _simulation_lock.release()
    except ig_upload.CandidateRefused as exc:
        log.info("console_simulation_refused", user=user.username, status=exc.status)
        return _refused(request, exc)
    except AccordError as exc:
        return error_page(
            request,
            503,
            "The simulation could not run",
            f"The hub's Kafka or OPA did not answer ({type(exc).__name__}). Nothing was changed.",
            "Try again in a minute; if it keeps failing, ask the operator.",
        )
    finally:
        if work is not None:
            ig_upload.discard(work)
    sim, held_note = report
    log.info(
        "console_simulation_done",
        user=user.username,
        decisions=sim.decisions,
        changed=sim.decisions - sim.unchanged,
    )
    return render(
        request,
        "ig/simulation.html",
        {
            "sim": sim,
            "label": label,
            "since": SINCE_CHOICES[chosen],
            "held_note": held_note,
            "flips": sorted(sim.flips.items()),
            "fields": sorted(sim.fields.items()),
            "retracted": sorted(sim.retracted.items()),
            "retracted_total": sum(c.count for c in sim.retracted.values()),
        },
    )


def _simulate(request: Request, candidate: Path, start: datetime):
    from accord.governance.simulate import simulate

    held, held_note = _holders(request)
    settings = getattr(request.app.state, "ig_worker", None) or as_principal(
        _settings(request), WORKER
    )
    log_file = _settings(request).console_dir / "simulate-opa.log"
    private_dir(log_file.parent)
    return simulate(settings, _serde(request), candidate, start, log_file, held=held), held_note


# --- who received ------------------------------------------------------------------------


@router.get("/ig/who-received")
def who_received_form(request: Request, user: IgUser) -> Response:
    return render(request, "ig/who_received.html", {"error": None, "answer": None})


@router.post("/ig/who-received", dependencies=Csrf)
def who_received(request: Request, user: IgUser, chi: Annotated[str, Form()] = "") -> Response:
    from accord.governance.audit_index import answer

    # Hashed here, before anything else is done with it; the raw number is dropped at once
    # and never logged, stored, put in a URL or shown again (the form comes back empty).
    key, error = ig_data.chi_key(_settings(request), chi)
    del chi
    if error is not None:
        return render(
            request, "ig/who_received.html", {"error": error, "answer": None}, status_code=400
        )
    db, note = _index(request)
    try:
        found = answer(db, key)
    finally:
        db.close()
    request.app.state.access_log.viewed(request, user, [key], "who-received")
    return render(request, "ig/who_received.html", {"error": None, "answer": found, "note": note})


# --- access log --------------------------------------------------------------------------


@router.get("/ig/access-log")
def access_log_page(request: Request, user: IgUser, kind: str | None = None) -> Response:
    from accord.console.accesslog import DENIED, VIEWED

    chosen = kind if kind in (DENIED, VIEWED) else None
    entries = request.app.state.access_log.entries(kind=chosen, limit=200)
    by_user: dict[str, dict[str, int]] = {}
    for entry in request.app.state.access_log.entries(limit=5000):
        counts = by_user.setdefault(entry.get("user") or "(not signed in)", {DENIED: 0, VIEWED: 0})
        counts[entry.get("kind", DENIED)] = counts.get(entry.get("kind", DENIED), 0) + 1
    return render(
        request,
        "ig/access_log.html",
        {"entries": entries, "kind": chosen, "by_user": sorted(by_user.items())},
    )
