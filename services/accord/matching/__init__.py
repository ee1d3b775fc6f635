"""Identity matching: which known person, if any, a record is about.

Deterministic on CHI or NHS number; otherwise a Fellegi-Sunter model over normalised
names, date of birth and location, with three outcomes (MATCH, REVIEW, NO_MATCH) and
the evidence kept. Pure and in memory, so stream agents can call it; it never logs.
"""

from accord.matching.matcher import Matcher, record_from_dict, record_to_dict
from accord.matching.model import MatchResult, Outcome, compare
from accord.matching.normalise import PersonRecord

__all__ = [
    "MatchResult",
    "Matcher",
    "Outcome",
    "PersonRecord",
    "compare",
    "record_from_dict",
    "record_to_dict",
]
