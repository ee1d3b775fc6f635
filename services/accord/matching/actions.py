"""What a reviewer may decide about a pair (MatchReviewDecision.action)."""

from __future__ import annotations

from typing import Final

CONFIRM: Final = "CONFIRM"  # one person: the queued one is merged into the candidate
REJECT: Final = "REJECT"  # two people: the pair is never proposed again
SPLIT: Final = "SPLIT"  # a merge found wrong: the two people are separated again
ACTIONS: Final = (CONFIRM, REJECT, SPLIT)
