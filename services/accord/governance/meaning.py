"""What an agreement means, checked before it goes live (`accord policy validate`):
checks the JSON Schema cannot make because they need the hub's other data.

- every field an agreement lists exists in its dataset's Avro record (`schemas/avro/`);
- a special-category field (`"accord.classification": "special_category"` in the Avro
  record) is never in the list of a recipient whose kind is not `health`;
- providers and recipients are known organisations (Scotland's boards and councils, or a
  partner registered with `partners/<org>.yaml`), each recipient of the kind it is, and
  the council areas named are Scotland's;
- a review date passed, or within REVIEW_WARNING_DAYS, is a warning;
- terms changed against a baseline (the last committed version in git, or the one OPA
  serves) without a higher `version` is an error. An agreement's state (`status`,
  `status_reason`, `review_date`) may change without a new version: suspending an
  agreement or recording its review does not change what was agreed.

Each finding is (path, message, severity); `accord.governance.agreements` adds the file
and line. Unknown names come with "did you mean" suggestions.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from accord.core.scotland import COUNCIL_AREAS, HEALTH_BOARDS, org_id
from accord.core.topics import DATASET_RECORDS, is_org_id

ERROR, WARNING = "error", "warning"
REVIEW_WARNING_DAYS = 30
# An agreement's state, not its terms: changing these needs no new version.
STATE_KEYS = frozenset({"status", "status_reason", "review_date"})
# Set by the hub on every record, never listed by an agreement.
HUB_FIELDS = frozenset({"event_id", "source_org", "schema_version"})

Finding = tuple[list[Any], str, str]


@dataclass(frozen=True)
class Baseline:
    """The agreements to compare versions against, and what they are (for messages)."""

    name: str  # "the last committed version (git HEAD)", "the version OPA serves"
    agreements: Mapping[str, Any]


@dataclass
class Context:
    """What the meaning checks read besides the agreement."""

    fields: dict[str, dict[str, bool]]  # dataset -> field -> special category?
    organisations: dict[str, str]  # org id -> "health" | "council" | "registered"
    today: date
    baseline: Baseline | None = None
    notes: list[str] = field(default_factory=list)


def dataset_fields(schemas_dir: Path) -> dict[str, dict[str, bool]]:
    """Each dataset's fields (from its Avro record) and whether each is special category."""
    out: dict[str, dict[str, bool]] = {}
    for dataset, record in DATASET_RECORDS.items():
        path = schemas_dir / f"{record}.avsc"
        schema = json.loads(path.read_text(encoding="utf-8"))
        out[dataset] = {
            f["name"]: f.get("accord.classification") == "special_category"
            for f in schema.get("fields", ())
            if f["name"] not in HUB_FIELDS
        }
    return out


def known_organisations(partners_dir: Path) -> dict[str, str]:
    """Scotland's boards ("health") and councils ("council"), and the partners registered
    with a `partners/<org>.yaml` file ("registered")."""
    orgs = {org_id(board): "health" for board in HEALTH_BOARDS}
    orgs.update({org_id(council): "council" for council in COUNCIL_AREAS})
    for path in sorted(partners_dir.glob("*.yaml")):
        if is_org_id(path.stem):
            orgs.setdefault(path.stem, "registered")
    return orgs


def suggest(name: Any, known: Any) -> str:
    """ "; did you mean 'x'?" for the closest known names (case-insensitive), else ""."""
    if not isinstance(name, str):
        return ""
    choices = sorted(set(known))
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return f"; did you mean {lowered[name.lower()]!r}?"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"


def terms(agreement: Mapping[str, Any]) -> str:
    """The agreement's terms, canonical: everything but its state, as JSON."""
    return json.dumps(
        {k: v for k, v in agreement.items() if k not in STATE_KEYS}, sort_keys=True, default=str
    )


def _review(agreement: Mapping[str, Any], today: date) -> list[Finding]:
    value = agreement.get("review_date")
    if agreement.get("status") == "expired" or value is None:
        return []
    try:
        due = date.fromisoformat(str(value)[:10])
    except ValueError:
        return []  # the schema reports an unreadable date
    days = (due - today).days
    if days < 0:
        ago = -days
        return [
            (
                ["review_date"],
                f"the review date {due} has passed ({ago} day{'s' if ago != 1 else ''} ago): "
                "review the agreement and record the next review date",
                WARNING,
            )
        ]
    if days <= REVIEW_WARNING_DAYS:
        when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
        return [(["review_date"], f"the review date {due} is {when}", WARNING)]
    return []


def _fields(agreement: Mapping[str, Any], ctx: Context) -> list[Finding]:
    found: list[Finding] = []
    kinds = {
        r.get("org"): r.get("kind")
        for r in agreement.get("recipients") or ()
        if isinstance(r, Mapping)
    }
    for name, spec in (agreement.get("datasets") or {}).items():
        if name not in ctx.fields:
            found.append(
                (
                    ["datasets", name],
                    f"{name!r} is not a dataset the hub knows"
                    + (
                        suggest(name, ctx.fields) or f" (datasets: {', '.join(sorted(ctx.fields))})"
                    ),
                    ERROR,
                )
            )
            continue
        if not isinstance(spec, Mapping):
            continue
        known = ctx.fields[name]
        record = DATASET_RECORDS[name]
        lists: list[tuple[list[Any], Any]] = [(["datasets", name, "fields"], spec.get("fields"))]
        for org, own in (spec.get("recipient_fields") or {}).items():
            lists.append((["datasets", name, "recipient_fields", org], own))
        for path, names in lists:
            for i, field_name in enumerate(names if isinstance(names, list) else ()):
                if isinstance(field_name, str) and field_name not in known:
                    found.append(
                        (
                            [*path, i],
                            f"{field_name!r} is not a field of {name} ({record}.avsc)"
                            + suggest(field_name, known),
                            ERROR,
                        )
                    )
        for masked in spec.get("mask") or {}:
            if masked not in known:
                found.append(
                    (
                        ["datasets", name, "mask", masked],
                        f"{masked!r} is not a field of {name} ({record}.avsc)"
                        + suggest(masked, known),
                        ERROR,
                    )
                )
        special = {n for n, is_special in known.items() if is_special}
        own_lists = spec.get("recipient_fields") or {}
        for org, kind in kinds.items():
            if kind == "health" or not isinstance(org, str):
                continue
            if isinstance(own_lists.get(org), list):
                path, names = ["datasets", name, "recipient_fields", org], own_lists[org]
            else:
                path, names = ["datasets", name, "fields"], spec.get("fields")
            for i, field_name in enumerate(names if isinstance(names, list) else ()):
                if field_name in special:
                    found.append(
                        (
                            [*path, i],
                            f"{field_name!r} is special-category (health) data and {org} is a "
                            f"{kind} recipient: only health recipients may be given it "
                            "(list it under recipient_fields for a health recipient only)",
                            ERROR,
                        )
                    )
    return found


_KIND_OF = {"health": "an NHS board", "council": "a council", "registered": "a registered partner"}


def _organisations(agreement: Mapping[str, Any], ctx: Context) -> list[Finding]:
    found: list[Finding] = []
    orgs = ctx.organisations
    for i, provider in enumerate(agreement.get("providers") or ()):
        if isinstance(provider, str) and provider not in orgs:
            found.append(
                (
                    ["providers", i],
                    f"{provider!r} is not a known organisation" + suggest(provider, orgs),
                    ERROR,
                )
            )
    for i, recipient in enumerate(agreement.get("recipients") or ()):
        if not isinstance(recipient, Mapping):
            continue
        org, kind = recipient.get("org"), recipient.get("kind")
        if not isinstance(org, str):
            continue
        if org not in orgs:
            hint = suggest(org, orgs) or (
                f" (register a partner with partners/{org}.yaml)" if is_org_id(org) else ""
            )
            found.append(
                (["recipients", i, "org"], f"{org!r} is not a known organisation{hint}", ERROR)
            )
        elif kind in ("health", "council") and orgs[org] != kind:
            found.append(
                (
                    ["recipients", i, "kind"],
                    f"{org} is {_KIND_OF[orgs[org]]}, not of kind {kind!r}",
                    ERROR,
                )
            )
        elif kind == "third-sector" and orgs[org] != "registered":
            found.append(
                (
                    ["recipients", i, "kind"],
                    f"{org} is {_KIND_OF[orgs[org]]}, not a third-sector organisation",
                    ERROR,
                )
            )
        areas = [("council_area", recipient.get("council_area"))] + [
            (["council_areas", j], area)
            for j, area in enumerate(recipient.get("council_areas") or ())
        ]
        for key, area in areas:
            if isinstance(area, str) and area not in COUNCIL_AREAS:
                steps = [key] if isinstance(key, str) else key
                found.append(
                    (
                        ["recipients", i, *steps],
                        f"{area!r} is not one of Scotland's council areas"
                        + suggest(area, COUNCIL_AREAS),
                        ERROR,
                    )
                )
    return found


def _version(agreement_id: str, agreement: Mapping[str, Any], ctx: Context) -> list[Finding]:
    if ctx.baseline is None:
        return []
    before = ctx.baseline.agreements.get(agreement_id)
    if not isinstance(before, Mapping):
        return []  # a new agreement
    old, new = before.get("version"), agreement.get("version")
    if not isinstance(old, int) or not isinstance(new, int):
        return []  # the schema reports a version that is not a number
    if new < old:
        return [
            (
                ["version"],
                f"version {new} is lower than {ctx.baseline.name} (version {old})",
                ERROR,
            )
        ]
    if new == old and terms(before) != terms(agreement):
        changed = sorted(
            k
            for k in {*before, *agreement} - STATE_KEYS
            if json.dumps(before.get(k), sort_keys=True, default=str)
            != json.dumps(agreement.get(k), sort_keys=True, default=str)
        )
        return [
            (
                ["version"],
                f"the terms changed since {ctx.baseline.name} ({', '.join(changed)}) but "
                f"the version is still {old}: set version: {old + 1}",
                ERROR,
            )
        ]
    return []


def meaning_problems(
    agreement_id: str, agreement: Mapping[str, Any], ctx: Context
) -> list[Finding]:
    """Every meaning finding of one agreement, as (path, message, severity)."""
    return [
        *_fields(agreement, ctx),
        *_organisations(agreement, ctx),
        *_review(agreement, ctx.today),
        *_version(agreement_id, agreement, ctx),
    ]


# --- baselines -------------------------------------------------------------------------


def _git(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(folder), *argv], capture_output=True, text=True, check=False
    )


def git_baseline(policies_dir: Path) -> Baseline | None:
    """The agreements as last committed (HEAD), when the folder's agreements are in git."""
    import yaml

    folder = (policies_dir / "agreements").resolve()
    try:
        listed = _git(folder, "ls-files", "--", ".")
    except OSError:
        return None
    if listed.returncode != 0 or not listed.stdout.strip():
        return None
    prefix = _git(folder, "rev-parse", "--show-prefix").stdout.strip()
    agreements: dict[str, Any] = {}
    for name in listed.stdout.split():
        if not name.endswith((".yaml", ".yml")):
            continue
        shown = _git(folder, "show", f"HEAD:{prefix}{name}")
        if shown.returncode != 0:
            continue  # added but never committed
        try:
            document = yaml.safe_load(shown.stdout)
        except yaml.YAMLError:
            continue
        if isinstance(document, dict):
            agreements.update({k: v for k, v in document.items() if isinstance(v, dict)})
    return Baseline("the last committed version (git HEAD)", agreements)


def served_baseline(settings: Any, timeout: float = 3.0) -> Baseline | None:
    """The agreements the hub's OPA serves now; None when it does not answer."""
    import requests

    from accord.core.policy import opa_session

    try:
        response = opa_session(settings).get(
            f"{settings.opa_url}/v1/data/agreements", timeout=timeout
        )
        response.raise_for_status()
        result = response.json().get("result")
    except (requests.RequestException, ValueError, OSError):
        return None
    if not isinstance(result, dict):
        return None
    return Baseline(f"the version OPA serves ({settings.opa_url})", result)


def baseline_for(policies_dir: Path, against: str, settings: Any) -> tuple[Baseline | None, str]:
    """(baseline, a note saying what versions are checked against)."""
    if against == "none":
        return None, "versions not compared (--against none)"
    if against in ("auto", "git"):
        found = git_baseline(policies_dir)
        if found is not None:
            return found, f"versions compared with {found.name}"
        if against == "git":
            return None, f"versions not compared: {policies_dir / 'agreements'} is not in git"
    found = served_baseline(settings)
    if found is not None:
        return found, f"versions compared with {found.name}"
    return None, "versions not compared: not in git, and OPA did not answer"


def today_utc() -> date:
    from datetime import UTC

    return datetime.now(UTC).date()
