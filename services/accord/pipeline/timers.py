"""What the worker does when time passes with no new event. Pure functions, no I/O.

Two things change by time alone:

- **Priority.** The rules (`config/priority.yaml`) include timed ones ("no successful
  contact for 3 days -> high"), whose days are data. A case's priority is assessed as of
  its last event, so a timed rule coming due would never show without a new event.
  `due_reassessments` finds the open cases for which some timed rule has come due since
  they were assessed and returns one `reassess` event for each; the worker sends them to
  hub.person-events, where the join stage assesses the case again as of the event's time
  and the gate decides and releases it like any other change. The join stage stays the
  only writer of a case, so a reassessment is ordered with the person's other events,
  replays the same way and is audited like them.
- **Outcomes held for their request.** An outcome that arrives before its request is held
  (`stages.route_outcomes`) until the request's owner is known. The hold is bounded: an
  outcome held longer than the hold period is given up with a reason and goes to its
  publisher's rejects. `expired_holds` returns one `expire` message per request key with
  such outcomes, which the route stage acts on in order with that key's other messages.

The timer calling these (`accord.worker.app`) passes the clock: tests inject one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from accord.pipeline import cases as case_rules

REASSESS = "reassess"
EXPIRE = "expire"
HUB = "hub"


def iso(moment: datetime) -> str:
    """The one text form of instants in events (as `pipeline.intake.iso`)."""
    return moment.isoformat(timespec="milliseconds")


def reassess_event(person_key: str, now: datetime) -> dict[str, Any]:
    at = iso(now)
    return {
        "kind": REASSESS,
        "event_id": f"{REASSESS}|{person_key}|{at}",
        "occurred_at": at,
        "source_org": HUB,
        "person_key": person_key,
        "data": {},
    }


def due_reassessments(
    states: Iterable[dict[str, Any] | None], rules: list[dict[str, Any]], now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(person key, reassess event) for every open case whose priority a timed rule may
    have changed by `now` (a timed rule came due after the case was last assessed).
    Closed, merged and opted-out cases are left alone: nothing of them is on a list."""
    due = []
    for state in states:
        if not state or state.get("merged_into"):
            continue
        state = case_rules.upgrade(dict(state))
        if state.get("entry") is None and not state.get("requests"):
            continue
        if case_rules.is_closed(state):
            continue
        when = case_rules.next_priority_change(state, rules)
        if when is not None and datetime.fromisoformat(when) <= now:
            due.append((state["person_key"], reassess_event(state["person_key"], now)))
    return due


def expire_message(request_key: str, before: datetime) -> dict[str, Any]:
    return {"kind": EXPIRE, "request_key": request_key, "held_before": iso(before)}


def expired_holds(
    states: Iterable[dict[str, Any] | None], now: datetime, hold: timedelta
) -> list[tuple[str, dict[str, Any]]]:
    """(request key, expire message) for every request whose owner is still unknown and
    that holds an outcome since before `now - hold`."""
    before = now - hold
    due = []
    for state in states:
        if not state or state.get("person_key") is not None:
            continue
        held = list((state.get("held") or {}).values())
        # Outcomes held before holds were stamped count from when they happened.
        old = [
            message
            for message in held
            if (since := message.get("held_at") or message.get("occurred_at"))
            and datetime.fromisoformat(since) < before
            and message.get("request_key")
        ]
        if old:
            due.append((old[0]["request_key"], expire_message(old[0]["request_key"], before)))
    return due
