"""A person's support case, folded from their events. Pure functions, no I/O.

State is a plain JSON-able dict (it lives in a faust table backed by a changelog topic).
Every event is stored under its own id or request key, so applying an event twice leaves
the same state: at-least-once delivery cannot double a need or an outcome.

Lifecycle. A case opens on the first need: a support request, or being on the shielding
list while shielding (every shielding person is owed a welfare check). It updates on every
outcome, and closes when no need is left open (outcomes met them, or the person stopped
shielding and has no open request) or when the person opts out or withdraws consent.

Consent is recorded per controller. Each organisation that records a person's consent
(the boards and councils the authority rules name, `policies/authority/`) has its own
latest change, kept under its id in `consents`; one controller's change never replaces
another's. An opt-out or withdrawal by a controller holds until that same controller
records an opt-in, and an objection from any controller wins over every other's consent
(as the national data opt-out does): the person is shared about only while no controller's
latest change stops sharing. States stored before consent was per controller hold a single
`consent`; it is read as the change of an unattributed controller ("hub", as merges named
it then), which any controller's later opt-in lifts, since who recorded it is not known.

Shielding-list entries are kept per provider (`entries`, by board): a board's entry is
changed only by that board's later records, never by another organisation's. A person on
two boards' lists (they moved between board areas, or both boards list them) keeps both
entries; the case is decided on the most recent one (by its effective date, then the
board's id, so replays pick the same), `entry`, and the other board's stays as it was.

Merges. A provisional person (a request without CHI) that turns out to be a listed person
is merged into them: its events move to the target and its own case closes. The merged
state keeps its events and names its target (`merged_into`), so a merge read again after
a crash re-sends the same events and the same closed case, and later events about the
provisional person are forwarded to the target. A person is never merged into themselves,
a merge is never forwarded, and a forwarded event travels a bounded chain that never
revisits a person (`join`).

Splits. The target of a merge remembers, per person merged into it, which of its records
came from them (`merged_from`: event ids, request keys, and a consent the merged person's
replaced), so a merge a reviewer finds wrong can be undone (`split`): the target gives
those records back to the other person (an `unmerge`, then the records themselves), takes
its requests' ownership back for them, and holds its own case closed (`split_hold`) until
a `resume` it sends itself comes round: everything shared under the merge is withdrawn
at every recipient (the reason, with the review's, in the audit), then the target's case,
rebuilt from its own records alone, is decided afresh; the other person's case reopens
from theirs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from accord.core.settings import REPO_ROOT

PRIORITY_RULES_FILE = REPO_ROOT / "config" / "priority.yaml"
PRIORITY_ORDER = ("ROUTINE", "MEDIUM", "HIGH", "URGENT")
MET = {"DELIVERED", "NEEDS_MET"}
SUCCESSFUL_CONTACT = {"DELIVERED", "NEEDS_MET", "REFERRED", "DECLINED"}
# UNKNOWN changes count as opting out: when unsure, stop sharing.
STOPS_SHARING = {"OPT_OUT", "WITHDRAW_CONSENT", "UNKNOWN"}
# The controller of a consent change stored before consent was kept per controller (and
# of the single consent a merge forwarded then): who recorded it is not known.
UNATTRIBUTED = "hub"
WELFARE_CHECK = "WELFARE_CHECK"
ENTRY_REQUEST = "shielding-list"
MERGED_REASON = "merged into the case of a listed person"
# Merge targets are identified people, who are never merged themselves, so a forwarded
# event makes one hop; the bound only stops a chain that should not exist.
MAX_FORWARD_HOPS = 3

# Fields of a request that identify or describe the person, for a request-only case.
REQUEST_PERSON_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "postcode",
    "council_area",
    "contact_phone",
)


def new_state(person_key: str) -> dict[str, Any]:
    return {
        "person_key": person_key,
        "entry": None,
        "entries": {},
        "requests": {},
        "outcomes": {},
        "consents": {},
        "match_method": None,
    }


def _supersedes(event: dict[str, Any], held: dict[str, Any] | None) -> bool:
    """Whether `event` replaces the record `held`: the later one wins, and of two at the
    same time the one with the greater event id (the same event again replaces itself),
    so the winner never depends on which arrived last."""
    if held is None:
        return True
    held_id = held.get("event_id") or ""  # states stored before consents had ids
    return (event["occurred_at"], event["event_id"]) >= (held["occurred_at"], held_id)


def consents_of(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Controller -> its latest consent change; a state stored before consent was per
    controller has one `consent`, read as the unattributed controller's."""
    consents = state.get("consents")
    if consents is None:
        legacy = state.get("consent")
        return {UNATTRIBUTED: legacy} if legacy else {}
    return consents


def entries_of(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Provider -> its shielding-list entry; a state stored before entries were kept per
    provider has only `entry`, which is its provider's."""
    entries = state.get("entries")
    if entries is None:
        entry = state.get("entry")
        return {entry["source_org"]: entry} if entry else {}
    return entries


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A stored state in today's shape, in place: `consents` and `entries` per organisation
    (changelogs written before hold one `consent` and only `entry`)."""
    state["consents"] = dict(consents_of(state))
    state.pop("consent", None)
    state["entries"] = dict(entries_of(state))
    return state


def case_entry(entries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The entry the case is decided on: the most recent (effective date, then board id)."""
    if not entries:
        return None
    return max(entries.values(), key=lambda e: (e["occurred_at"], e["source_org"]))


def apply_event(state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The state after `event` (an envelope: kind, event_id, occurred_at, source_org, data)."""
    kind, data, at = event["kind"], event["data"], event["occurred_at"]
    upgrade(state)
    if kind == "entry":
        # Only the provider's own later record changes its entry (see the module docstring).
        entry = {
            "occurred_at": at,
            "source_org": event["source_org"],
            "event_id": event["event_id"],
            "fields": data,
        }
        if _supersedes(entry, state["entries"].get(event["source_org"])):
            state["entries"][event["source_org"]] = entry
        state["entry"] = case_entry(state["entries"])
    elif kind == "request":
        key = event["request_key"]
        state["requests"][key] = {
            "occurred_at": at,
            "source_org": event["source_org"],
            "event_id": event["event_id"],
            "request_id": data["request_id"],
            "needs": sorted(set(data.get("needs") or [])),
            "urgency": data.get("urgency") or "UNKNOWN",
            "lives_alone": data.get("lives_alone"),
            "fields": {name: data.get(name) for name in REQUEST_PERSON_FIELDS},
        }
    elif kind == "outcome":
        state["outcomes"][event["event_id"]] = {
            "occurred_at": at,
            "source_org": event["source_org"],
            "request_key": event.get("request_key"),
            "need": data.get("need"),
            "outcome": data.get("outcome") or "UNKNOWN",
        }
        if event.get("case_addressed"):
            # Recorded against the case (by its reference), not one request: it answers
            # the need it names wherever that need is open (see open_needs_by_request).
            state["outcomes"][event["event_id"]]["case"] = True
    elif kind == "reassess":
        # Time passed: the case is assessed again as of then (see assessed_as_of).
        if state.get("assessed_at") is None or datetime.fromisoformat(at) > datetime.fromisoformat(
            state["assessed_at"]
        ):
            state["assessed_at"] = at
    elif kind == "consent":
        # Each controller's latest change, under its own id (see the module docstring).
        consent = {
            "occurred_at": at,
            "event_id": event["event_id"],
            "change": data.get("change") or "UNKNOWN",
            "scope": data.get("scope") or "ALL_SHARING",
        }
        controller = event.get("source_org") or UNATTRIBUTED
        if _supersedes(consent, state["consents"].get(controller)):
            state["consents"][controller] = consent
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    state["match_method"] = weakest_match(state.get("match_method"), event.get("match_method"))
    if event.get("block_key") and event["block_key"] not in state.get("blocks", ()):
        # The matching blocks that know the person, to erase them from on an opt-out.
        state["blocks"] = sorted({*state.get("blocks", ()), event["block_key"]})
    return state


# How a case's events were tied to the person, strongest first. A case is as sure as its
# least sure event, whatever order its events came in.
MATCH_STRENGTH = ("chi", "nhs_number", "none", "probabilistic")


def weakest_match(current: str | None, method: str | None) -> str | None:
    known = [m for m in (current, method) if m in MATCH_STRENGTH]
    return max(known, key=MATCH_STRENGTH.index) if known else current or method


def merge_event(
    provisional: str, target: str, cause: dict[str, Any], review: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tells the provisional person's case to move into the identified person's case
    (`review`: the reviewer's decision that confirmed the pair, if one did)."""
    if provisional == target:
        raise ValueError("a person cannot be merged into themselves")
    event = {
        "kind": "merge",
        "event_id": f"merge|{provisional}|{target}",
        "target": target,
        "occurred_at": cause["occurred_at"],
        "source_org": cause["source_org"],
        "data": {},
    }
    if review is not None:
        event["review"] = review
    return event


def short(key: str) -> str:
    """A person key as the review commands show it (its first 12 characters)."""
    return key[:12]


def merged_reason(state: dict[str, Any]) -> str:
    review = state.get("merge_review")
    if not review:
        return MERGED_REASON
    because = f": {review['reason']}" if review.get("reason") else ""
    return (
        f"{MERGED_REASON} {short(state['merged_into'])}, confirmed in review "
        f"{review['decision_id']} by {review['reviewer']}{because}"
    )


def split_reason(other: str, review: dict[str, Any]) -> str:
    because = f": {review['reason']}" if review.get("reason") else ""
    return (
        f"split from person {short(other)} (a wrong merge undone) in review "
        f"{review['decision_id']} by {review['reviewer']}{because}"
    )


def moved_in(state: dict[str, Any], origin: str, envelope: dict[str, Any]) -> None:
    """Note, in place, that `envelope` came into the state from the merged `origin` (and
    the consent of its controller it replaces, if it does), so that a split can give it
    back (see "Splits")."""
    merged = state.setdefault("merged_from", {})
    record = merged.setdefault(origin, {"event_ids": [], "requests": [], "replaced": {}})
    if envelope["event_id"] not in record["event_ids"]:
        record["event_ids"] = sorted({*record["event_ids"], envelope["event_id"]})
    if envelope["kind"] == "request" and envelope["request_key"] not in record["requests"]:
        record["requests"] = sorted({*record["requests"], envelope["request_key"]})
    if envelope["kind"] == "consent":
        controller = envelope.get("source_org") or UNATTRIBUTED
        held = consents_of(state).get(controller)
        moved = set(record["event_ids"])
        if held is not None and held.get("event_id") not in moved:
            record["replaced"].setdefault(controller, held)


def split_off(
    state: dict[str, Any], other: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """(the state without what came from `other`, those records as envelopes, the request
    keys that go back to them)."""
    record = (state.get("merged_from") or {}).get(other) or {}
    ids, keys = set(record.get("event_ids") or ()), set(record.get("requests") or ())
    upgrade(state)
    given = {
        **new_state(other),
        "requests": {k: r for k, r in state["requests"].items() if k in keys},
        "outcomes": {i: o for i, o in state["outcomes"].items() if i in ids},
        "consents": {c: v for c, v in state["consents"].items() if v.get("event_id") in ids},
    }
    kept = {
        **state,
        "requests": {k: r for k, r in state["requests"].items() if k not in keys},
        "outcomes": {i: o for i, o in state["outcomes"].items() if i not in ids},
        "consents": {
            **{c: v for c, v in state["consents"].items() if v.get("event_id") not in ids},
            **(record.get("replaced") or {}),
        },
        "merged_from": {p: r for p, r in (state.get("merged_from") or {}).items() if p != other},
    }
    returned = [{**e, "returned_from": state["person_key"]} for e in events_of(given)]
    return kept, returned, sorted(keys)


@dataclass
class Joined:
    """What joining a batch of person events produced; `join` does no I/O.

    states: person key -> the state to store (only the ones that changed);
    person_events: (person key, envelope) to send to hub.person-events (moved or forwarded);
    owners: (request key, person key) owner notes for hub.request-events;
    views: the case view of every changed state (None: no case), for hub.cases and the gate;
    refused: (person key, event id, reason code) for events that must not be applied;
    erasures: (block key, person key) for hub.identity: an opted-out person's identifying
    fields leave their matching block too (see "Storage limitation");
    rejected: (envelope, reason code, reason) of partner records that go back to their
    publisher's rejects (an outcome against a case it does not hold, or no case at all);
    splits: (block key, decision) for hub.identity: a merge undone (see "Splits").
    """

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    person_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    owners: list[tuple[str, str]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    erasures: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)
    splits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def case_outcome_refusal(
    state: dict[str, Any] | None, envelope: dict[str, Any], holders: list[str]
) -> tuple[str, str] | None:
    """Why an outcome recorded against a case (by its reference) must not be applied, as
    (reason code, reason), or None when it may. Only an organisation whose list holds the
    case may record one (it is how it came to know the case), and only against a case
    the hub holds. Reasons name organisations and needs, never the person."""
    if envelope["event_id"] in ((state or {}).get("outcomes") or {}):
        return None  # applied before: read again after a crash, applied again (no change)
    if state is None or (state.get("entry") is None and not state.get("requests")):
        return "no_such_case", "the outcome names a case the hub does not hold"
    publisher = envelope["source_org"]
    if publisher not in holders:
        return (
            "not_case_holder",
            f"{publisher} does not hold this case: an outcome against a case comes only "
            "from an organisation whose list holds it",
        )
    if is_closed(state):
        return "case_closed", "the case is closed: no need is open to record an outcome against"
    need = envelope["data"].get("need")
    if need and need not in {n for needs in open_needs_by_request(state).values() for n in needs}:
        return "need_not_open", f"the case has no open {need} need"
    return None


def join(
    events: list[tuple[str, dict[str, Any]]],
    lookup: Callable[[str], dict[str, Any] | None],
    rules: list[dict[str, Any]],
    holders: Callable[[str], list[str]] | None = None,
) -> Joined:
    """Fold a batch of (person key, envelope) into the people's states.

    `lookup` gives a person's stored state (never modified here). Every transition is
    idempotent: an event already applied leaves the same state, and a merge read again
    (the same provisional person, the same target) re-sends the same events, owner notes
    and closed case, so a batch replayed after a crash converges to the same lists.
    """
    out = Joined()
    for key, envelope in events:
        state = out.states.get(key)
        if state is None:
            stored = lookup(key)
            if envelope["kind"] in ("reassess", "resume") and (
                not stored or stored.get("merged_into")
            ):
                continue  # nothing to assess (the case left, or moved to its target)
            state = copy.deepcopy(stored) if stored else new_state(key)
        target = state.get("merged_into")
        if envelope["kind"] == "reassess" and target is not None:
            continue
        if envelope.get("case_addressed") and target is None:
            known = state if (state.get("entry") or state.get("requests")) else None
            refusal = case_outcome_refusal(known, envelope, holders(key) if holders else [])
            if refusal is not None:
                out.rejected.append((envelope, *refusal))
                continue
        if envelope["kind"] == "split":
            other = envelope["other"]
            if other in (state.get("merged_from") or {}):
                kept, returned, keys = split_off(state, other)
                review = envelope["review"]
                kept["split_hold"] = split_reason(other, review)
                out.states[key] = kept
                unmerge = {
                    "kind": "unmerge",
                    "event_id": f"unmerge|{other}|{key}|{review['decision_id']}",
                    "from": key,
                    "occurred_at": envelope["occurred_at"],
                    "source_org": "hub",
                    "review": review,
                    "data": {},
                }
                out.person_events.append((other, unmerge))
                out.person_events.extend((other, event) for event in returned)
                out.owners.extend((request_key, other) for request_key in keys)
                resume = {
                    "kind": "resume",
                    "event_id": f"resume|{key}|{review['decision_id']}",
                    "occurred_at": envelope["occurred_at"],
                    "source_org": "hub",
                    "data": {},
                }
                out.person_events.append((key, resume))
                decision = {
                    "action": "SPLIT",
                    "person_key": other,
                    "other_person_key": key,
                    "decision_id": review["decision_id"],
                }
                out.splits.extend((block, decision) for block in state.get("blocks") or ())
            elif target != other:  # the merged side waits for its target's unmerge
                out.refused.append((key, envelope["event_id"], "not_merged"))
            continue
        if envelope["kind"] == "unmerge":
            if target == envelope["from"]:
                state = {k: v for k, v in state.items() if k not in ("merged_into", "merge_review")}
                state["split_from"] = sorted({*state.get("split_from", ()), envelope["from"]})
                out.states[key] = state
            continue
        if envelope["kind"] == "resume":
            if state.get("split_hold"):
                out.states[key] = {k: v for k, v in state.items() if k != "split_hold"}
            continue
        if envelope.get("returned_from") and target is None:
            out.states[key] = apply_event(state, envelope)
            continue
        if envelope["kind"] == "merge":
            to = envelope.get("target")
            if not to or to == key:
                out.refused.append((key, envelope["event_id"], "self_merge"))
            elif envelope.get("forwarded_from"):
                out.refused.append((key, envelope["event_id"], "merge_forwarded"))
            elif target is not None and target != to:
                out.refused.append((key, envelope["event_id"], "merged_elsewhere"))
            else:
                out.person_events.extend(
                    (to, {**moved, "forwarded_from": [key]}) for moved in events_of(state)
                )
                out.owners.extend((request_key, to) for request_key in state["requests"])
                merged = {**state, "merged_into": to}
                if envelope.get("review"):
                    merged["merge_review"] = envelope["review"]
                out.states[key] = merged
            continue
        if target is not None:
            hops = list(envelope.get("forwarded_from") or ())
            if target == key or target in hops or key in hops or len(hops) >= MAX_FORWARD_HOPS:
                out.refused.append((key, envelope["event_id"], "forward_loop"))
            else:
                forwarded = {**envelope, "forwarded_from": [*hops, key]}
                if envelope["kind"] == "request":  # as a merge moves it (`events_of`)
                    forwarded["match_method"] = "probabilistic"
                out.person_events.append((target, forwarded))
            continue
        if envelope.get("forwarded_from"):
            moved_in(state, envelope["forwarded_from"][0], envelope)
        out.states[key] = apply_event(state, envelope)
    # A closed case keeps only what its lifecycle needs (storage limitation).
    out.states = {key: retained_state(state) for key, state in out.states.items()}
    out.erasures = [
        (block, key)
        for key, state in out.states.items()
        if opted_out(state) and not state.get("merged_into")
        for block in state.get("blocks") or ()
    ]
    out.views = [
        view for state in out.states.values() if (view := recorded_view(state, rules)) is not None
    ]
    return out


def events_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A state's events again, as envelopes: what a merge re-sends to the target person."""
    events = []
    for key, request in state["requests"].items():
        events.append(
            {
                "kind": "request",
                "event_id": request["event_id"],
                "request_key": key,
                "occurred_at": request["occurred_at"],
                "source_org": request["source_org"],
                "match_method": "probabilistic",
                "data": {
                    "request_id": request["request_id"],
                    "needs": request["needs"],
                    "urgency": request["urgency"],
                    "lives_alone": request["lives_alone"],
                    **request["fields"],
                },
            }
        )
    for event_id, outcome in state["outcomes"].items():
        events.append(
            {
                "kind": "outcome",
                "event_id": event_id,
                "request_key": outcome["request_key"],
                "occurred_at": outcome["occurred_at"],
                "source_org": outcome["source_org"],
                "data": {"need": outcome["need"], "outcome": outcome["outcome"]},
            }
        )
    # Every controller's consent, each as its own controller's change.
    for controller, consent in sorted(consents_of(state).items()):
        events.append(
            {
                "kind": "consent",
                "event_id": consent.get("event_id")
                or f"consent|{state['person_key']}|{controller}",
                "occurred_at": consent["occurred_at"],
                "source_org": controller,
                "data": {"change": consent["change"], "scope": consent["scope"]},
            }
        )
    return events


def opted_out(state: dict[str, Any]) -> bool:
    """Whether any controller's latest change stops sharing: an objection wins over every
    other controller's consent. An unattributed change (a state stored before consent was
    per controller) is lifted by any controller's later opt-in."""
    consents = consents_of(state)
    for controller, consent in consents.items():
        if consent["change"] not in STOPS_SHARING:
            continue
        if controller == UNATTRIBUTED and any(
            other != UNATTRIBUTED
            and later["change"] == "OPT_IN"
            and later["occurred_at"] >= consent["occurred_at"]
            for other, later in consents.items()
        ):
            continue
        return True
    return False


def open_needs_by_request(state: dict[str, Any]) -> dict[str, set[str]]:
    """Needs still open, per request key (the shielding list's welfare check included)."""
    outcomes = list(state["outcomes"].values())
    open_needs: dict[str, set[str]] = {}
    for key, request in state["requests"].items():
        needs = set(request["needs"])
        for outcome in outcomes:
            # A case-level outcome (recorded by case reference) answers every request.
            if outcome["request_key"] != key and not outcome.get("case"):
                continue
            if outcome["outcome"] == "DECLINED" or (
                outcome["outcome"] in MET and outcome["need"] is None
            ):
                needs.clear()
            elif outcome["outcome"] in MET:
                needs.discard(outcome["need"])
        if needs:
            open_needs[key] = needs
    entry = state["entry"]
    shielding = entry is not None and entry["fields"].get("shielding_status") == "SHIELDING"
    if shielding and not any(o["outcome"] in SUCCESSFUL_CONTACT for o in outcomes):
        open_needs[ENTRY_REQUEST] = {WELFARE_CHECK}
    return open_needs


def load_priority_rules(path: Path | None = None) -> list[dict[str, Any]]:
    """The priority rules (`config/priority.yaml`, or `ACCORD_PRIORITY_RULES_FILE`)."""
    path = path or PRIORITY_RULES_FILE
    rules = yaml.safe_load(path.read_text())["rules"]
    for rule in rules:
        days = rule.get("days")
        if rule["condition"] in TIMED_CONDITIONS and not (
            isinstance(days, int | float) and not isinstance(days, bool) and days >= 0
        ):
            raise ValueError(f"{path}: rule {rule['id']} needs `days`, a number of days >= 0")
        if rule["condition"] not in PRIORITY_CONDITIONS:
            raise ValueError(f"{path}: rule {rule['id']} has unknown condition {rule['condition']}")
        if rule["priority"] not in PRIORITY_ORDER:
            raise ValueError(f"{path}: rule {rule['id']} has unknown priority {rule['priority']}")
    return rules


def _urgent_unmet_need(state, open_needs, rule, as_of) -> set[str]:
    return {
        need
        for key, needs in open_needs.items()
        if key in state["requests"] and state["requests"][key]["urgency"] in rule["urgencies"]
        for need in needs & set(rule["needs"])
    }


def _unmet_need(state, open_needs, rule, as_of) -> set[str]:
    return {need for needs in open_needs.values() for need in needs & set(rule["needs"])}


def _no_contact_from(state: dict[str, Any], rule: dict[str, Any]) -> datetime | None:
    """When "no successful contact for N days" starts to hold: N days after the case
    opened, unless someone reached the person; None when it never will by itself."""
    opened = opened_at(state)
    if opened is None or any(
        o["outcome"] in SUCCESSFUL_CONTACT for o in state["outcomes"].values()
    ):
        return None
    return datetime.fromisoformat(opened) + timedelta(days=rule["days"])


def _no_successful_contact(state, open_needs, rule, as_of) -> bool:
    since = _no_contact_from(state, rule)
    return since is not None and datetime.fromisoformat(as_of) >= since


def _shielding_and_alone(state, open_needs, rule, as_of) -> bool:
    entry = state["entry"]
    shielding = entry is not None and entry["fields"].get("shielding_status") == "SHIELDING"
    return shielding and any(r["lives_alone"] for r in state["requests"].values())


PRIORITY_CONDITIONS = {
    "urgent_unmet_need": _urgent_unmet_need,
    "unmet_need": _unmet_need,
    "no_successful_contact": _no_successful_contact,
    "shielding_and_alone": _shielding_and_alone,
}
# Conditions that can start to hold with no new event, only because time passed: when
# each would start to hold for a state (their `days` are data, in the rules' file).
TIMED_CONDITIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], datetime | None]] = {
    "no_successful_contact": _no_contact_from,
}


def next_priority_change(state: dict[str, Any], rules: list[dict[str, Any]]) -> str | None:
    """The earliest time after the case's assessment (`assessed_as_of`) at which a timed
    rule starts to hold and so may change its priority or reasons; None if no rule will
    by the passing of time alone."""
    as_of = datetime.fromisoformat(assessed_as_of(state))
    times = [
        since
        for rule in rules
        if rule["condition"] in TIMED_CONDITIONS
        and (since := TIMED_CONDITIONS[rule["condition"]](state, rule)) is not None
        and since > as_of
    ]
    return min(times).isoformat(timespec="milliseconds") if times else None


def assess_priority(
    state: dict[str, Any], open_needs: dict[str, set[str]], rules: list[dict[str, Any]], as_of: str
) -> tuple[str, list[str]]:
    priority, reasons = "ROUTINE", []
    for rule in rules:
        fired = PRIORITY_CONDITIONS[rule["condition"]](state, open_needs, rule, as_of)
        if not fired:
            continue
        needs = (
            " and ".join(sorted(n.lower().replace("_", " ") for n in fired))
            if isinstance(fired, set)
            else ""
        )
        reasons.append(
            f"{rule['priority'].lower()}: "
            + rule["reason"].format(needs=needs, days=rule.get("days"))
        )
        if PRIORITY_ORDER.index(rule["priority"]) > PRIORITY_ORDER.index(priority):
            priority = rule["priority"]
    return priority, reasons


def opened_at(state: dict[str, Any]) -> str | None:
    times = [r["occurred_at"] for r in state["requests"].values()]
    entry = state["entry"]
    if entry is not None and entry["fields"].get("shielding_status") == "SHIELDING":
        times.append(entry["occurred_at"])
    return min(times) if times else None


def last_event_at(state: dict[str, Any]) -> str:
    times = [r["occurred_at"] for r in state["requests"].values()]
    times += [o["occurred_at"] for o in state["outcomes"].values()]
    times += [c["occurred_at"] for c in consents_of(state).values()]
    if state["entry"]:
        times.append(state["entry"]["occurred_at"])
    return max(times)


def assessed_as_of(state: dict[str, Any]) -> str:
    """The time the case's priority is assessed at: its last event, or a later
    reassessment (`reassess` events, sent when a timed rule comes due: time passing
    raises a priority without any new event). Text compares as time: one ISO form."""
    reassessed = state.get("assessed_at")
    last = last_event_at(state)
    if reassessed and datetime.fromisoformat(reassessed) > datetime.fromisoformat(last):
        return reassessed
    return last


# Derived attributes of a case (what the hub computes, as opposed to source fields); each
# is released to a recipient only when its agreement names it and the decision releases it.
DERIVED_ATTRIBUTES = (
    "needs",
    "priority",
    "priority_reasons",
    "latest_outcome",
    "opened_at",
    "open_requests",
    "match_method",
)
# The source field whose value (being asked to shield) feeds needs and priority.
SHIELDING_FIELD = "shielding_status"
WITHOUT_SHIELDING = "without_shielding_status"


def by_time(record: dict[str, Any]) -> tuple[str, str]:
    """Order of records by time, ties broken by event id: never by arrival."""
    return record["occurred_at"], record.get("event_id") or ""


def derived_attributes(state: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Needs, priority, outcome and timing of a case, computed from `state` alone."""
    open_needs = open_needs_by_request(state)
    priority, reasons = assess_priority(state, open_needs, rules, assessed_as_of(state))
    outcomes = [
        outcome
        for _, outcome in sorted(
            state["outcomes"].items(), key=lambda item: (item[1]["occurred_at"], item[0])
        )
    ]
    return {
        "needs": sorted({need for values in open_needs.values() for need in values}),
        "priority": priority,
        "priority_reasons": reasons,
        "latest_outcome": outcomes[-1]["outcome"] if outcomes else None,
        "latest_outcome_at": outcomes[-1]["occurred_at"] if outcomes else None,
        "opened_at": opened_at(state),
        "open_requests": sum(1 for key in open_needs if key != ENTRY_REQUEST),
        "match_method": state.get("match_method"),
    }


def without_shielding_status(state: dict[str, Any]) -> dict[str, Any]:
    """The state as a recipient that may not learn whether the person shields sees it:
    the shielding list's entry without its shielding status (so no welfare check is owed
    for it, it opens nothing and no priority rule reads it)."""
    entry = state["entry"]
    if entry is None or SHIELDING_FIELD not in entry["fields"]:
        return state
    fields = {name: v for name, v in entry["fields"].items() if name != SHIELDING_FIELD}
    return {**state, "entry": {**entry, "fields": fields}}


def restricted_views(state: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Derived attributes for recipients that see less than the whole case:
    - WITHOUT_SHIELDING: computed without the person's shielding status;
    - "own:<org>": only from the support requests (and their outcomes) of one requester,
      without the shielding list, for returning a requester's own data to it."""
    views: dict[str, Any] = {
        WITHOUT_SHIELDING: derived_attributes(without_shielding_status(state), rules)
    }
    for org in sorted({r["source_org"] for r in state["requests"].values()}):
        keys = {k for k, r in state["requests"].items() if r["source_org"] == org}
        own = {
            **state,
            "entry": None,
            "requests": {k: r for k, r in state["requests"].items() if k in keys},
            "outcomes": {
                i: o for i, o in state["outcomes"].items() if o.get("request_key") in keys
            },
        }
        views[f"own:{org}"] = derived_attributes(own, rules)
    return views


# Storage limitation. The hub keeps a source record's personal fields only while the
# record is still needed, and what it keeps never depends on the order in which partners'
# records arrived (Kafka orders records within a partition only, and a replay after a
# crash interleaves them anew), so every run over the same records ends with the same case:
#
# - a request's personal fields leave the worker's table once the request is finished
#   (its needs met or declined): outcomes only ever finish a request, so this is decided
#   by the records alone;
# - when the person opts out or withdraws consent, every source record is cut down, the
#   board's entry included;
# - the board's entry is otherwise kept while it is the board's latest record of a listed
#   person, also while the case is closed for want of an open need: a request that arrives
#   later is then decided on the board's record, as it would have been had it come first;
# - hub.cases records a closed case without any personal fields (`recorded_view`);
# - an opted-out person's identifying fields also leave the matching blocks that hold them
#   (`Joined.erasures`, applied by the identity stage: `identity.erase`), so that nothing
#   of them is matched any more.
#
# What is kept of a cut-down record is what the lifecycle needs: the shielding status (it
# decides whether a welfare check is owed) and the council area (closed cases are counted
# per council); ids, times, needs, urgency, outcomes and consent stay, so replayed events,
# a reopening and a policy sweep are decided as before. The ids of the records cut down
# are kept (`stripped`), so a record read again after a crash (at-least-once) is cut down
# again rather than brought back.
LIFECYCLE_FIELDS = ("shielding_status", "council_area")


def is_closed(state: dict[str, Any]) -> bool:
    """Whether the person's case is closed (as build_case would say); False without a case."""
    if state["entry"] is None and not state["requests"]:
        return False
    return opted_out(state) or not open_needs_by_request(state)


def _lifecycle_only(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if name in LIFECYCLE_FIELDS}


def strip_source_fields(state: dict[str, Any], only: set[str] | None = None) -> dict[str, Any]:
    """The state with its source records (or those whose event id is in `only`) cut down
    to LIFECYCLE_FIELDS, their ids noted in `stripped`; a cut-down entry is marked
    `stripped`, so build_case decides a case that reopens on the requests' own data rather
    than on what is left of the board's record. A new dict; `state` is not changed."""
    chosen = (lambda event_id: True) if only is None else (lambda event_id: event_id in only)
    stripped = dict(state)
    ids = set(state.get("stripped") or ())
    entry = state["entry"]
    if entry is not None and chosen(entry["event_id"]):
        stripped["entry"] = {**entry, "fields": _lifecycle_only(entry["fields"]), "stripped": True}
        ids.add(entry["event_id"])
    if state.get("entries"):
        entries = {}
        for org, each in state["entries"].items():
            if chosen(each["event_id"]):
                each = {**each, "fields": _lifecycle_only(each["fields"]), "stripped": True}
                ids.add(each["event_id"])
            entries[org] = each
        stripped["entries"] = entries
    requests = {}
    for key, request in state["requests"].items():
        if chosen(request["event_id"]):
            request = {**request, "fields": _lifecycle_only(request["fields"])}
            ids.add(request["event_id"])
        requests[key] = request
    stripped["requests"] = requests
    if ids:
        stripped["stripped"] = sorted(ids)
    return stripped


def finished_requests(state: dict[str, Any]) -> set[str]:
    """Event ids of the requests with no need left open (met or declined)."""
    open_keys = open_needs_by_request(state)
    return {r["event_id"] for key, r in state["requests"].items() if key not in open_keys}


def retained_state(state: dict[str, Any]) -> dict[str, Any]:
    """What the worker stores of a person (see "Storage limitation" above): after an
    opt-out every source record cut down; otherwise the finished requests and the records
    cut down before (read again). A merged person's state is kept as it is: a merge read
    again re-sends its events to the target, and they must be the same events (see
    `join`). Call it wherever a state is stored."""
    if state.get("merged_into"):
        return state
    if opted_out(state):
        return strip_source_fields(state)
    cut = finished_requests(state) | set(state.get("stripped") or ())
    return strip_source_fields(state, only=cut) if cut else state


def recorded_view(state: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The case view `join` records in hub.cases and gives the gate: build_case of the
    stored state; a closed case's (a merged person's included: its events moved to the
    target) without any source fields, which a tombstone needs none of."""
    view = build_case(state, rules)
    if view is not None and view["status"] == "CLOSED":
        return build_case(strip_source_fields(state), rules)
    return view


def build_case(state: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The case view of a state, or None when the person has no case (yet).

    The view carries `status` OPEN or CLOSED; a closed case becomes a tombstone downstream.
    `source` is the record the policy decides on: the NHS board's entry when there is one,
    else the latest request (the council's own data).
    """
    entry = state["entry"]
    if entry is None and not state["requests"]:
        return None
    derived = derived_attributes(state, rules)
    closed_reason = None
    if state.get("merged_into"):
        closed_reason = merged_reason(state)
    elif state.get("split_hold"):
        closed_reason = state["split_hold"]
    elif opted_out(state):
        closed_reason = "opted out or withdrew consent"
    elif not derived["needs"]:
        closed_reason = "no open needs"
    # A case reopened after it was stripped (see retained_state) is decided on the requests'
    # own data until the board publishes its record again.
    reopened_stripped = entry is not None and entry.get("stripped") and not closed_reason
    if entry is not None and not (reopened_stripped and state["requests"]):
        source = {
            "org": entry["source_org"],
            "dataset": "shielding-list",
            "event_id": entry["event_id"],
            "fields": entry["fields"],
        }
    else:
        # The latest open request, or the latest of all when none is open.
        open_keys = open_needs_by_request(state)
        requests = [r for k, r in state["requests"].items() if k in open_keys]
        latest = max(requests or state["requests"].values(), key=by_time)
        source = {
            "org": latest["source_org"],
            "dataset": "support-request",
            "event_id": latest["event_id"],
            "fields": latest["fields"],
        }
    return {
        "case_key": state["person_key"],
        "status": "CLOSED" if closed_reason else "OPEN",
        "closed_reason": closed_reason,
        **derived,
        "request_orgs": sorted({r["source_org"] for r in state["requests"].values()}),
        "source": source,
        "subject": {"opted_out": opted_out(state)},
        "as_of": assessed_as_of(state),
        "restricted": restricted_views(state, rules),
    }
