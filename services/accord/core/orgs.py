"""Organisation ids given on the command line, checked against the partner registry.

An organisation is known when an agreement names it (as a provider or a recipient) or
when it has a registration file `partners/<org>.yaml`: the agreements under
`policies/agreements/` and, when OPA answers, those OPA serves (an agreement added
while the hub runs). A mistyped id (`--as nhs-lothain`) is refused with the closest
known ids, never taken as a new organisation: its records would otherwise replace a
real person's source and withdraw their shares.

    from accord.core.orgs import require_known
    org = require_known(settings, value, flag="--as")

`suggest` is the pure part (difflib over the known ids, and the id of a display name
such as "NHS Lothian"), for callers that hold their own list of ids.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from accord.core.errors import AccordError
from accord.core.scotland import org_id
from accord.core.settings import Settings
from accord.core.topics import is_org_id

__all__ = [
    "UnknownOrganisation",
    "agreement_parties",
    "known_organisations",
    "local_organisations",
    "require_known",
    "suggest",
    "unknown_message",
]


class UnknownOrganisation(AccordError):
    """An organisation id no agreement and no registration file names."""

    def __init__(self, message: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


def agreement_parties(agreements: Mapping[str, Any]) -> set[str]:
    """Providers and recipients named by `agreements` (any status), valid ids only."""
    parties: set[str] = set()
    for agreement in agreements.values():
        if not isinstance(agreement, Mapping):
            continue
        parties.update(p for p in agreement.get("providers") or () if isinstance(p, str))
        for recipient in agreement.get("recipients") or ():
            if isinstance(recipient, Mapping) and isinstance(recipient.get("org"), str):
                parties.add(recipient["org"])
    return {org for org in parties if is_org_id(org)}


def _agreements_in(folder: Path) -> dict[str, Any]:
    agreements: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # `accord policy validate` reports a broken agreement
        if isinstance(loaded, dict):
            agreements.update(loaded)
    return agreements


def local_organisations(settings: Settings) -> set[str]:
    """The ids the repository's agreements and registration files name."""
    named = agreement_parties(_agreements_in(settings.policies_dir / "agreements"))
    folder = settings.home / "partners"
    files = {path.stem for path in folder.glob("*.yaml") if is_org_id(path.stem)}
    return named | files


def served_organisations(settings: Settings, timeout_s: float = 2.0) -> set[str]:
    """The parties of the agreements OPA serves; empty when OPA cannot say."""
    import requests

    from accord.core.credentials import CredentialError
    from accord.core.policy import opa_session

    try:
        response = opa_session(settings).get(
            f"{settings.opa_url}/v1/data/agreements", timeout=timeout_s
        )
        response.raise_for_status()
        agreements = response.json().get("result") or {}
    except (requests.RequestException, ValueError, CredentialError, AttributeError):
        return set()
    return agreement_parties(agreements) if isinstance(agreements, dict) else set()


def known_organisations(settings: Settings, *, ask_opa: bool = True) -> set[str]:
    """Every organisation id the hub knows: the repository's, and OPA's when it answers."""
    known = local_organisations(settings)
    if ask_opa:
        known |= served_organisations(settings)
    return known


def suggest(value: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """The known ids closest to `value`: its id if it is a display name ("NHS Lothian"),
    then difflib's closest matches."""
    ids = sorted(set(known))
    found: list[str] = []
    slug = org_id(value)
    if slug in ids and slug != value:
        found.append(slug)
    for candidate in difflib.get_close_matches(slug or value, ids, n=limit, cutoff=0.6):
        if candidate not in found:
            found.append(candidate)
    return found[:limit]


def unknown_message(value: str, known: Iterable[str], flag: str = "--as") -> str:
    """The one-line refusal of an unknown id, with "did you mean" when something is close."""
    close = suggest(value, known)
    what = "is not an organisation id" if not is_org_id(value) else "is not a known organisation"
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"{flag} {value!r} {what}{hint} (known organisations are those an agreement under "
        "policies/agreements/ or a file partners/<org>.yaml names)"
    )


def require_known(
    settings: Settings,
    value: str,
    *,
    flag: str = "--as",
    known: Iterable[str] | None = None,
) -> str:
    """`value` if it is a known organisation id; else UnknownOrganisation with suggestions."""
    ids = set(known) if known is not None else local_organisations(settings)
    if is_org_id(value) and value in ids:
        return value
    if known is None:
        ids |= served_organisations(settings)  # an agreement OPA serves, not yet on disk here
        if is_org_id(value) and value in ids:
            return value
    raise UnknownOrganisation(unknown_message(value, ids, flag), suggest(value, ids))
