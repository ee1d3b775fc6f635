"""Normalised features of a person record, computed once and compared many times.

Normalisation is for comparison only: the hub never rewrites a partner's record.
Names are casefolded with accents stripped (Siobhán ~ Siobhan), apostrophes dropped
(O'Neill ~ ONeill), hyphens read as spaces (Douglas-Hamilton has two parts), and the
Scottish patronymic prefixes Mc, M' and Mac read alike (McDonald ~ MacDonald), and a
digit inside a name read as the letter it looks like (Is1a ~ Isla). Fields filled in the
wrong box are put back as a form would have split them: the whole name in the given-name
field (no family name) is split, and a postcode written at the end of the address line
(no postcode) is taken out into the postcode. A postcode with letters and digits
confused is put right where the UK format allows only one.

Bad input is normalised, never refused: letters of any script are kept (a name in
Cyrillic or Han compares with itself), a name is cut at `NAME_LIMIT` characters so that a
500-character field costs no more than a long name, and a date of birth in the future or
before `EARLIEST_BIRTH` is read as missing (it is evidence of nothing).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, NamedTuple

import jellyfish

from accord.matching.nicknames import DISTINCT_PAIRS, NICKNAME_GROUPS

__all__ = [
    "Features",
    "PersonRecord",
    "are_distinct_names",
    "features",
    "EARLIEST_BIRTH",
    "NAME_LIMIT",
    "fold",
    "name_tokens",
    "nickname_groups",
    "normalise_postcode",
    "plausible_dob",
    "split_postcode",
]


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """What a partner tells us about a person; any field but the names may be missing."""

    given_name: str | None
    family_name: str | None
    date_of_birth: date | None
    postcode: str | None
    address_line1: str | None = None
    chi_number: str | None = None
    nhs_number: str | None = None


_APOSTROPHES: Final = re.compile(r"['\u2019\u2018`]")
_NON_ALNUM: Final = re.compile(r"[\W_]+")  # letters and digits of any script are kept
_M_APOSTROPHE: Final = re.compile(r"\bm['\u2019\u2018`]\s*")


def fold(text: str | None) -> str:
    """Casefold, strip accents, read punctuation as spaces; '' for missing text."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = _M_APOSTROPHE.sub("mac", plain)  # M'Donald -> MacDonald before apostrophes go
    plain = _APOSTROPHES.sub("", plain)
    return _NON_ALNUM.sub(" ", plain).strip()


NAME_LIMIT: Final = 100
"""Characters of a name kept for comparison; the rest of a longer field is ignored."""

EARLIEST_BIRTH: Final = date(1880, 1, 1)
"""Dates of birth before this are read as missing (a placeholder such as 1800-01-01)."""


_LOOKALIKE_LETTERS: Final = str.maketrans("0158", "olsb")
"""Digits a scanner or a hurried typist puts for letters (0/o, 1/l, 5/s, 8/b)."""


def _name_token(token: str) -> str:
    if token[:1].isalpha() and not token.isalpha():
        token = token.translate(_LOOKALIKE_LETTERS)  # a digit inside a name: a misread letter
    return "mac" + token[2:] if token.startswith("mc") else token


def name_tokens(text: str | None) -> tuple[str, ...]:
    """A name's parts, folded, with Mc read as Mac (McLean ~ MacLean ~ M'Lean) and a digit
    inside a name read as the letter it looks like (Is1a ~ Isla)."""
    return tuple(_name_token(token) for token in fold(text[:NAME_LIMIT] if text else text).split())


def plausible_dob(value: date | None, today: date | None = None) -> date | None:
    """The date of birth, or None when it is in the future or implausibly early."""
    if value is None:
        return None
    latest = (today or date.today()) + timedelta(days=1)  # a day's grace for time zones
    return value if EARLIEST_BIRTH <= value <= latest else None


def _parse_groups(text: str) -> dict[str, frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for number, line in enumerate(text.strip().splitlines()):
        for name in line.split():
            groups.setdefault(fold(name), set()).add(number)
    return {name: frozenset(ids) for name, ids in groups.items()}


_NICKNAMES: Final = _parse_groups(NICKNAME_GROUPS)
_DISTINCT: Final = _parse_groups(DISTINCT_PAIRS)
_NO_GROUPS: Final[frozenset[int]] = frozenset()


def nickname_groups(token: str) -> frozenset[int]:
    """Ids of the nickname groups a folded given name belongs to."""
    return _NICKNAMES.get(token, _NO_GROUPS)


def are_distinct_names(a: str, b: str) -> bool:
    """True when two folded given names are listed as different names (John, Joan)."""
    return bool(_DISTINCT.get(a, _NO_GROUPS) & _DISTINCT.get(b, _NO_GROUPS))


_POSTCODE: Final = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?[0-9][A-Z]{2}$")
_TO_LETTER: Final = str.maketrans("0158", "OISB")
_TO_DIGIT: Final = str.maketrans("OISBZ", "01582")
_POSTCODE_IN_TEXT: Final = re.compile(
    r"[,\s]*\b([A-Za-z]{1,2}[0-9][0-9A-Za-z]?)\s*([0-9][A-Za-z]{2})\s*$"
)


def _repaired(compact: str) -> str:
    """A postcode with letters and digits confused (0/O, 1/I, 5/S, 8/B) put right where
    the format allows only one: the area's first letter, the inward code's digit and two
    letters. '' when that does not make a postcode."""
    if len(compact) < 5:
        return ""
    outward, inward = compact[:-3], compact[-3:]
    inward = inward[0].translate(_TO_DIGIT) + inward[1:].translate(_TO_LETTER)
    outward = outward[0].translate(_TO_LETTER) + outward[1:]
    candidate = outward + inward
    return candidate if _POSTCODE.match(candidate) else ""


def normalise_postcode(text: str | None) -> str:
    """Upper case without spaces ('EH1 2AB' -> 'EH12AB'), a letter misread as a digit (or
    the other way round) put right where the format allows only one ('EH1 2A8' ->
    'EH12AB'); '' when missing or not a postcode."""
    if not text:
        return ""
    compact = re.sub(r"[^0-9A-Za-z]", "", text).upper()
    if _POSTCODE.match(compact):
        return compact
    return _repaired(compact)


def split_postcode(line: str | None) -> tuple[str | None, str]:
    """An address line with a postcode written at its end, as (line without it, postcode);
    (line, '') when it ends in none ('1 Bank Road, EH1 2AB' -> ('1 Bank Road', 'EH12AB'))."""
    if not line:
        return line, ""
    found = _POSTCODE_IN_TEXT.search(line)
    if found is None:
        return line, ""
    postcode = normalise_postcode(found.group(1) + found.group(2))
    if not postcode:
        return line, ""
    return line[: found.start()].strip() or None, postcode


_STREET_WORDS: Final[dict[str, str]] = {
    "st": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "dr": "drive",
    "cres": "crescent",
    "cr": "crescent",
    "terr": "terrace",
    "ter": "terrace",
    "pl": "place",
    "gdns": "gardens",
    "ct": "court",
    "sq": "square",
    "ln": "lane",
    "pk": "park",
}


def _address(text: str | None) -> str:
    """Folded first address line with common abbreviations spelled out (St -> street)."""
    return " ".join(_STREET_WORDS.get(word, word) for word in fold(text).split())


class Features(NamedTuple):
    """Everything a comparison needs, precomputed; a tuple keeps 180,000 of them small."""

    given: str  # folded name without spaces, '' when missing
    given_tokens: tuple[str, ...]
    family: str
    family_tokens: tuple[str, ...]
    dob: date | None
    postcode: str  # 'EH12AB', '' when missing
    address: str
    chi: str
    nhs: str


def features(record: PersonRecord) -> Features:
    """Normalise a record once so that comparing it is cheap."""
    given_tokens = name_tokens(record.given_name)
    family_tokens = name_tokens(record.family_name)
    if not family_tokens and len(given_tokens) >= 2:
        # The whole name in the given-name field ("Isla Skinner", no family name): read
        # its last part as the family name, as a form would have split it.
        given_tokens, family_tokens = given_tokens[:-1], given_tokens[-1:]
    postcode = normalise_postcode(record.postcode)
    line1 = record.address_line1
    if not postcode:
        # The postcode written into the address line (a form with one box for the address):
        # take it out, so that postcode and address compare as they would have.
        line1, postcode = split_postcode(line1)
    return Features(
        given="".join(given_tokens),
        given_tokens=given_tokens,
        family="".join(family_tokens),
        family_tokens=family_tokens,
        dob=plausible_dob(record.date_of_birth),
        postcode=postcode,
        address=_address(line1),
        chi=re.sub(r"\D", "", record.chi_number or ""),
        nhs=re.sub(r"\D", "", record.nhs_number or ""),
    )


def phonetic(token: str) -> str:
    """A blocking code for a name part: Soundex, which forgives most vowel and -e/-y slips."""
    if not token:
        return ""
    if not token.isascii():  # Soundex is defined on Latin letters: keep other scripts whole
        return token
    return jellyfish.soundex(token)
