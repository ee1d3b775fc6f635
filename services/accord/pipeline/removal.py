"""Why a person left a recipient's list, as a code the recipient may be told.

Every tombstone the gate sends carries one of these in its `accord-removed-because`
header, so a coordinator's `accord cases --follow` can say why someone left without
reading the audit. The codes say only what the recipient may know: its own list's case
closed (no need it can see is open), the person opted out, or the agreement it received
them under was suspended or expired. Anything else (the person moved out of the area,
a clause no longer met) is `no_longer_shared`, without the reason, since the reason
could tell the recipient something it was not given. Never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.pipeline.cases import MERGED_REASON

HEADER = "accord-removed-because"
CLOSED = "closed"
MERGED = "merged"
OPTED_OUT = "opted_out"
AGREEMENT_SUSPENDED = "agreement_suspended"
AGREEMENT_EXPIRED = "agreement_expired"
NO_LONGER_SHARED = "no_longer_shared"
CODES = (CLOSED, MERGED, OPTED_OUT, AGREEMENT_SUSPENDED, AGREEMENT_EXPIRED, NO_LONGER_SHARED)
# What the gate writes when a case has no need the recipient may see (decision.py).
WITHHELD_NO_NEED = "withheld: no open need"


def removal_code(
    reason: str, cause: Mapping[str, Any] | None, agreements: Mapping[str, Any]
) -> str:
    """The code for a tombstone: `reason` is the gate's (the case's closed reason, or the
    deny's first reason), `cause` the deny that withdrew it (None for a closed case),
    `agreements` the ones OPA serves (their status)."""
    if cause is None:
        if reason.startswith(MERGED_REASON):
            return MERGED
        if reason.startswith("opted out"):
            return OPTED_OUT
        return CLOSED
    if reason.startswith(WITHHELD_NO_NEED):
        return CLOSED
    agreement = agreements.get(cause.get("agreement_id") or "")
    status = agreement.get("status") if isinstance(agreement, Mapping) else None
    if status == "suspended":
        return AGREEMENT_SUSPENDED
    if status == "expired" or "expired" in reason:
        return AGREEMENT_EXPIRED
    return NO_LONGER_SHARED
