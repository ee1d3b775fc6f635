"""Which cases a policy change can affect, so that only those are decided again.

A case is decided under the agreements whose providers include its source (the board's
entry or a council's request) and released to their recipients; a council's own requests
come back to it under the own-data rules. When only agreements change, a case can be
affected only if an organisation named by a changed agreement (in its old or new version,
as provider or recipient) is its source, one of its requesting councils or one of the
recipients holding it. When the rules themselves change, every case can be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def agreement_parties(agreement: Any) -> set[str]:
    if not isinstance(agreement, Mapping):
        return set()
    parties = {org for org in agreement.get("providers") or () if isinstance(org, str)}
    for recipient in agreement.get("recipients") or ():
        if isinstance(recipient, Mapping) and isinstance(recipient.get("org"), str):
            parties.add(recipient["org"])
    return parties


def changed_parties(
    before: tuple[Any, Mapping[str, Any]], after: tuple[Any, Mapping[str, Any]]
) -> set[str] | None:
    """Organisations named by an agreement that was added, removed or edited between two
    served (rules' stamp, agreements); None when the rules changed (every case is
    affected)."""
    (rules_before, agreements_before), (rules_after, agreements_after) = before, after
    if rules_before != rules_after:
        return None
    parties: set[str] = set()
    for agreement_id in set(agreements_before) | set(agreements_after):
        old, new = agreements_before.get(agreement_id), agreements_after.get(agreement_id)
        if old != new:
            parties |= agreement_parties(old) | agreement_parties(new)
    return parties


def is_affected(view: Mapping[str, Any], holders: Iterable[str], parties: set[str] | None) -> bool:
    """Whether a case view (with the recipients holding it) can be decided differently."""
    if parties is None:
        return True
    named = {view["source"]["org"], *view.get("request_orgs", ()), *holders}
    return not parties.isdisjoint(named)
