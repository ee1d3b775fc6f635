"""A labelled synthetic population for evaluating the matcher: a list and noisy queries.

Nobody in it is real. The list plays the shielding list (everyone has a CHI number); the
queries play council support requests, most without a CHI, written down the way
helplines and web forms write people down: typos, nicknames, names swapped, Mc for Mac,
half of a double-barrelled name, accents lost, a new address after a move, a slipped
digit in the date of birth, missing fields. Some queries are about people who are not
on the list, and some of those are the hardest cases: a twin, a parent or child of the
same name at the same address, a spouse, a namesake elsewhere.

Names are drawn with Zipf-like frequencies from pools much larger than the demo's, so
that common names (Margaret Smith) collide as they do in a real population.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from itertools import accumulate
from typing import Final

from accord.matching.nicknames import NICKNAME_GROUPS
from accord.matching.normalise import PersonRecord
from accord.synthetic.people import chi_for

__all__ = ["NOISE_KINDS", "NON_LIST_KINDS", "Population", "Query", "generate_population"]

_FEMALE: Final = """
Margaret Mary Elizabeth Agnes Isabella Catherine Janet Helen Jean Anne Christine Fiona
Morag Kirsty Eilidh Siobhán Mhairi Ishbel Shona Lorna Aileen Ailsa Róisín Zofia Aisha
Priya Chloé Marie-Claire Sandra Linda Karen Elspeth Patricia Susan Elaine Moira Alison
Joan Jacqueline Gillian Wendy Heather Irene Sheila Norma Rosemary Maureen Carol Evelyn
Marion Annie Jessie Georgina Alexandra Frances Roberta Christina Veronica Dorothy Rita
Doreen Brenda Lesley Yvonne Pauline Angela Deborah Rachel Lynne Frances Hazel Iris Ruth
Barbara Anna Jennifer Rebecca Sarah Victoria Grace Eleanor Joyce Lilian Theresa Bernadette
Kathleen Eileen Sadie Effie Catriona Seonaid Rhona Una Agnieszka Małgorzata Fatima Nadia
Sunita Gurpreet Ewa Hélène Mairead Niamh Ciara Gráinne Nuala Flora Davina Jemima
"""
_MALE: Final = """
James John William Robert David Thomas Alexander Andrew George Hamish Angus Callum Ewan
Fraser Iain Ruaridh Seán Lachlan Craig Gordon Euan Mohammed Tomasz Rajesh Pádraig Jean-Luc
Kenneth Duncan Alasdair Murdo Torquil Stuart Peter Michael Richard Charles Donald Hugh
Ian Archibald Francis Joseph Patrick Brian Colin Graham Neil Malcolm Douglas Norman
Ronald Walter Edward Christopher Daniel Paul Stephen Martin Alan Allan Derek Gary Keith
Scott Ross Grant Gavin Kevin Steven Anthony Mark Samuel Matthew Henry Roderick Dugald
Ewen Finlay Ruairidh Eric Louis Christian Gregor Innes Calum Ally Struan Fergus Magnus
Niall Rory Declan Cathal Ciarán Piotr Krzysztof Marek Imran Tariq Hassan Ravi Arjun Jakub
Andrzej Wojciech Łukasz Stanisław Ahmed Bilal Farid Amir Omar Yusuf Hamza Dominic Bernard
"""
_FAMILY: Final = """
Smith Brown Wilson Campbell Stewart Thomson Robertson Anderson MacDonald McDonald Scott Reid
Murray Taylor Clark Ross Watson Morrison Paterson Young Mitchell Fraser Walker McLean
MacKenzie McKay MacLeod McGregor Grant Munro Kerr Henderson Hamilton Graham Kelly O'Neill
Johnstone Sinclair Gunn Mackay Miller Cameron Duncan Ferguson Hunter Martin Allan Black
Simpson Gray MacLean Bell Gibson Russell Wallace Marshall Kennedy Gordon Boyle Burns Wood
Millar Fleming Stevenson Davidson Docherty Lindsay Craig McIntosh Forbes Buchanan Baird
Mackie Irvine Kerr Hughes Lawson Jamieson McMillan MacMillan Shaw Rennie Aitken Christie
McLaren Laing Dickson Weir Sutherland Hogg Bruce Cunningham Boyd Ritchie Crawford McKenzie
Milne Kay Love Riddell Dunn Inglis Crichton Baxter Nicol Lamont MacAulay McAllister
McCallum MacInnes McPhee MacNeil McGuire Quinn Devlin Gallacher Donnelly McLaughlin
Hendry Urquhart Cowan Drummond Strachan Wylie Brodie Cairns Tait Pollock Beattie Findlay
Galbraith Rankin Kirk Barclay Matheson Chisholm Ogilvie Lennox Sharp Orr Ure Greig
Fyfe Elder Fairbairn Renwick Hislop Borthwick Lauder Pringle Veitch Elliot Armstrong
Nixon Moffat Hyslop Kowalski Nowak Wiśniewski Wójcik Kaminski Lewandowski Khan Ahmed
Singh Hussain Ali Shah Iqbal Patel Sharma Chaudhry Lefèvre Müller Ó Briain Ní Bhriain
Mac an t-Saoir MacAoidh Ó Ceallaigh Douglas-Hamilton Hamilton-Smith Cruz Rossi Bianchi
Esposito Conti Costa Ricci Marino Moretti Lombardi Colombo Wong Chan Li Nguyen Kim
"""
_STREETS: Final = (
    "High Street", "Main Street", "Station Road", "Church Street", "Victoria Road",
    "King Street", "Queen Street", "Castle Street", "Mill Road", "Burnside Road",
    "Glebe Street", "Braehead", "Kirk Wynd", "Loanhead Terrace", "Marchmont Road",
    "Duke Street", "Union Street", "Dalhousie Terrace", "Craigleith Crescent",
    "Hillfoot Drive", "Park Avenue", "Seaview Terrace", "Shore Road", "School Brae",
    "Bank Street", "Bridge Street", "Springfield Road", "Woodside Crescent",
    "Rowan Drive", "Birch Grove", "Strathmore Avenue", "Montgomery Street",
    "Academy Street", "Albert Road", "Argyle Street", "Balmoral Drive", "Beech Avenue",
    "Broomhill Road", "Cairn Road", "Canal Street", "Craigie Place", "Crown Street",
    "Dundas Street", "Elm Park", "Fountain Road", "Gardner Street", "Glenburn Avenue",
    "Greenbank Road", "Hawthorn Gardens", "Hope Street", "Keir Street", "Langside Avenue",
    "Larch Road", "Links View", "Lomond Drive", "Maxwell Place", "Meadow Road",
    "Moss Road", "Netherton Road", "Orchard Brae", "Queensferry Road", "Rose Street",
    "St John's Road", "St Mary's Place", "Thistle Street", "Viewfield Road", "Wellpark",
)  # fmt: skip
_AREAS: Final = (
    ("EH", 55), ("G", 84), ("AB", 56), ("KY", 16), ("DD", 11), ("PA", 80), ("IV", 63),
    ("FK", 21), ("ML", 12), ("KA", 30), ("DG", 16), ("TD", 15), ("PH", 50), ("KW", 17),
    ("HS", 9), ("ZE", 3),
)  # fmt: skip
_INWARD_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"
_STREET_ABBREVIATIONS: Final = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Drive": "Dr"}

NOISE_KINDS: Final[tuple[str, ...]] = (
    "clean",
    "typo_given",
    "typo_family",
    "nickname",
    "swapped",
    "mac_variant",
    "hyphen_variant",
    "accents_dropped",
    "moved",
    "dob_typo",
    "postcode_typo",
    "missing_postcode",
    "missing_address",
    "missing_dob",
    "formatting",
    "with_chi",
)
"""Kinds of noise on queries about listed people; a query may carry several."""

NON_LIST_KINDS: Final[tuple[str, ...]] = (
    "stranger",
    "twin",
    "same_name_relative",
    "spouse",
    "namesake",
)
"""Kinds of queries about people who are not on the list."""


def _zipf_pool(text: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Names as listed, most common first, weighted 1/rank like real name frequencies.

    Returns the names and their cumulative weights (for random.choices).
    """
    names: list[str] = []
    for line in text.strip().splitlines():
        names.extend(line.split())
    merged: list[str] = []
    for name in names:  # re-join particles that belong to the next word (Ó Briain, Mac an t-Saoir)
        if merged and merged[-1] in ("Ó", "Ní", "Mac", "Mac an"):
            merged[-1] = f"{merged[-1]} {name}"
        else:
            merged.append(name)
    unique = tuple(dict.fromkeys(merged))
    cumulative = tuple(accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(len(unique))))
    return unique, cumulative


def _nicknames() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for line in NICKNAME_GROUPS.strip().splitlines():
        formal, *others = line.split()
        table.setdefault(formal, tuple(others))
    return table


_FEMALE_POOL: Final = _zipf_pool(_FEMALE)
_MALE_POOL: Final = _zipf_pool(_MALE)
_FAMILY_POOL: Final = _zipf_pool(_FAMILY)
_NICKNAMES: Final = _nicknames()
_EARLIEST: Final = date(1925, 1, 1)
_LATEST: Final = date(2005, 12, 31)
_MODE: Final = date(1945, 1, 1)


@dataclass(frozen=True, slots=True)
class Query:
    """A noisy record, the listed person it is about (None if not listed), and its noise."""

    record: PersonRecord
    person_id: str | None
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Population:
    """The list (person id -> record) and the labelled queries."""

    people: dict[str, PersonRecord]
    queries: list[Query]


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.chis: set[str] = set()
        # Given names listed per (family name, date of birth, postcode): an outsider twin
        # must not carry a listed twin's name, or the query would be that listed person.
        self.siblings: dict[tuple[object, ...], set[str | None]] = {}

    def pick(self, pool: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
        return self.rng.choices(pool[0], cum_weights=pool[1])[0]

    def given(self, female: bool) -> str:
        name = self.pick(_FEMALE_POOL if female else _MALE_POOL)
        if self.rng.random() < 0.03:  # a double given name
            second = self.pick(_FEMALE_POOL if female else _MALE_POOL)
            if second != name:
                name = f"{name} {second}" if self.rng.random() < 0.5 else f"{name}-{second}"
        return name

    def family(self) -> str:
        name = self.pick(_FAMILY_POOL)
        if self.rng.random() < 0.03 and "-" not in name and " " not in name:
            second = self.pick(_FAMILY_POOL)
            if second != name and " " not in second:
                name = f"{name}-{second}"
        return name

    def dob(self) -> date:
        span = (_LATEST - _EARLIEST).days
        mode = (_MODE - _EARLIEST).days
        return _EARLIEST + timedelta(days=round(self.rng.triangular(0, span, mode)))

    def chi(self, dob: date) -> str:
        while True:
            chi = chi_for(dob, self.rng.randrange(0, 1000))
            if chi is not None and chi not in self.chis:
                self.chis.add(chi)
                return chi

    def address(self) -> tuple[str, str]:
        area, districts = self.rng.choice(_AREAS)
        district = f"{area}{self.rng.randrange(1, districts + 1)}"
        inward = (
            f"{self.rng.randrange(0, 10)}"
            f"{self.rng.choice(_INWARD_LETTERS)}{self.rng.choice(_INWARD_LETTERS)}"
        )
        street = f"{self.rng.randrange(1, 250)} {self.rng.choice(_STREETS)}"
        if self.rng.random() < 0.2:
            street = f"Flat {self.rng.randrange(0, 4)}/{self.rng.randrange(1, 3)}, {street}"
        return street, f"{district} {inward}"

    def person(self, *, female: bool | None = None, **fixed: object) -> PersonRecord:
        female = self.rng.random() < 0.55 if female is None else female
        dob = fixed.get("date_of_birth") or self.dob()
        assert isinstance(dob, date)
        line1, postcode = self.address()
        record = PersonRecord(
            given_name=self.given(female),
            family_name=self.family(),
            date_of_birth=dob,
            postcode=postcode,
            address_line1=line1,
            chi_number=self.chi(dob),
        )
        return replace(record, **fixed) if fixed else record

    def household(self) -> list[PersonRecord]:
        """One listed person, or two sharing an address: a couple, twins, parent and child."""
        first = self.person()
        roll = self.rng.random()
        if roll < 0.85:
            return [first]
        at_home = {"address_line1": first.address_line1, "postcode": first.postcode}
        if roll < 0.96:
            family = first.family_name if self.rng.random() < 0.8 else self.family()
            dob = first.date_of_birth + timedelta(days=self.rng.randrange(-3650, 3650))  # type: ignore[operator]
            return [first, self.person(family_name=family, date_of_birth=dob, **at_home)]
        if roll < 0.98:
            return [first, self.twin(first)]
        return [first, self.relative_of_same_name(first)]

    def twin(self, of: PersonRecord) -> PersonRecord:
        twin = self.person(
            family_name=of.family_name,
            date_of_birth=of.date_of_birth,
            address_line1=of.address_line1,
            postcode=of.postcode,
        )
        taken = self.siblings.get((of.family_name, of.date_of_birth, of.postcode), set())
        while twin.given_name == of.given_name or twin.given_name in taken:
            twin = replace(twin, given_name=self.given(self.rng.random() < 0.5))
        return twin

    def relative_of_same_name(self, of: PersonRecord) -> PersonRecord:
        years = self.rng.choice((-1, 1)) * self.rng.randrange(20, 36)
        dob = of.date_of_birth + timedelta(days=365 * years + self.rng.randrange(-150, 150))  # type: ignore[operator]
        return self.person(
            given_name=of.given_name,
            family_name=of.family_name,
            date_of_birth=dob,
            address_line1=of.address_line1,
            postcode=of.postcode,
        )

    # --- noise ---------------------------------------------------------------------------

    def typo(self, text: str) -> str:
        if len(text) < 3:
            return text
        i = self.rng.randrange(1, len(text))
        letter = self.rng.choice("abcdefghijklmnoprstuvwy")
        how = self.rng.randrange(4)
        if how == 0:
            return text[:i] + letter + text[i + 1 :]
        if how == 1:
            return text[:i] + text[i + 1 :]
        if how == 2:
            return text[:i] + letter + text[i:]
        if i < len(text) - 1:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        return text[:i] + letter + text[i + 1 :]

    def dob_typo(self, dob: date) -> date:
        if dob.day <= 12 and dob.day != dob.month and self.rng.random() < 0.4:
            return dob.replace(month=dob.day, day=dob.month)
        for _ in range(20):
            text = list(f"{dob:%d%m%Y}")
            i = self.rng.choice((0, 1, 2, 3, 6, 7))
            text[i] = str(self.rng.randrange(10))
            try:
                slipped = date(
                    int("".join(text[4:])), int("".join(text[2:4])), int("".join(text[:2]))
                )
            except ValueError:
                continue
            if slipped != dob:
                return slipped
        return dob + timedelta(days=1)

    def noisy(self, record: PersonRecord) -> tuple[PersonRecord, list[str]]:
        """A council's version of a person's record, and the kinds of noise applied."""
        rng = self.rng
        kinds: list[str] = []
        given, family = record.given_name or "", record.family_name or ""
        dob, postcode, line1 = record.date_of_birth, record.postcode, record.address_line1
        if rng.random() < 0.06:
            given, kinds = self.typo(given), [*kinds, "typo_given"]
        if rng.random() < 0.06:
            family, kinds = self.typo(family), [*kinds, "typo_family"]
        formal = given.split()[0].lower() if given else ""
        if formal in _NICKNAMES and rng.random() < 0.3:
            given, kinds = rng.choice(_NICKNAMES[formal]).capitalize(), [*kinds, "nickname"]
        lowered = family.lower()
        if (lowered.startswith("mc") or lowered.startswith("mac ")) and rng.random() < 0.4:
            family, kinds = "Mac" + family[2:].lstrip(), [*kinds, "mac_variant"]
        elif lowered.startswith("mac") and rng.random() < 0.4:
            family = rng.choice(("Mc", "M'")) + family[3:]
            kinds = [*kinds, "mac_variant"]
        if "-" in family and rng.random() < 0.5:
            parts = family.split("-")
            family = rng.choice((rng.choice(parts), " ".join(parts)))
            kinds = [*kinds, "hyphen_variant"]
        if any(ord(ch) > 127 for ch in given + family) and rng.random() < 0.6:
            given, family = _strip_accents(given), _strip_accents(family)
            kinds = [*kinds, "accents_dropped"]
        if rng.random() < 0.03:
            given, family, kinds = family, given, [*kinds, "swapped"]
        if rng.random() < 0.06:
            line1, postcode = self.address()
            kinds = [*kinds, "moved"]
        if dob is not None and rng.random() < 0.03:
            dob, kinds = self.dob_typo(dob), [*kinds, "dob_typo"]
        if postcode and rng.random() < 0.03:
            chars = list(postcode)
            i = len(chars) - rng.randrange(1, 3)
            chars[i] = rng.choice(_INWARD_LETTERS.replace(chars[i], ""))
            postcode, kinds = "".join(chars), [*kinds, "postcode_typo"]
        if rng.random() < 0.04:
            postcode, kinds = None, [*kinds, "missing_postcode"]
        if rng.random() < 0.15:
            line1, kinds = None, [*kinds, "missing_address"]
        if rng.random() < 0.02:
            dob, kinds = None, [*kinds, "missing_dob"]
        if rng.random() < 0.2:
            given, family = given.upper(), family.upper()
            if postcode:
                postcode = postcode.replace(" ", "").lower()
            if line1:
                for word, short in _STREET_ABBREVIATIONS.items():
                    line1 = line1.replace(word, short)
            kinds = [*kinds, "formatting"]
        chi = None
        if rng.random() < 0.2:
            chi, kinds = record.chi_number, [*kinds, "with_chi"]
        noisy = PersonRecord(given, family, dob, postcode, line1, chi_number=chi)
        return noisy, kinds or ["clean"]


def _strip_accents(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.replace("ł", "l").replace("Ł", "L")


def generate_population(
    people: int = 20_000, queries: int = 5_000, *, seed: int = 2020, listed_share: float = 0.8
) -> Population:
    """A list of about `people` people and `queries` labelled noisy queries.

    `listed_share` of the queries are about listed people; the rest are about people who
    are not listed, a third of those being a twin, a same-name parent or child, a spouse
    or a namesake of someone listed.
    """
    gen = _Generator(seed)
    listed: dict[str, PersonRecord] = {}
    while len(listed) < people:
        for record in gen.household()[: people - len(listed)]:
            listed[f"P{len(listed) + 1:07d}"] = record
            household = (record.family_name, record.date_of_birth, record.postcode)
            gen.siblings.setdefault(household, set()).add(record.given_name)
    ids = list(listed)
    out: list[Query] = []
    for _ in range(queries):
        if gen.rng.random() < listed_share:
            person_id = gen.rng.choice(ids)
            record, kinds = gen.noisy(listed[person_id])
            out.append(Query(record, person_id, tuple(kinds)))
            continue
        anchor = listed[gen.rng.choice(ids)]
        roll = gen.rng.random()
        if roll < 0.67:
            kind, outsider = "stranger", gen.person()
        elif roll < 0.75:
            kind, outsider = "twin", gen.twin(anchor)
        elif roll < 0.83:
            kind, outsider = "same_name_relative", gen.relative_of_same_name(anchor)
        elif roll < 0.91:
            dob = anchor.date_of_birth + timedelta(days=gen.rng.randrange(-3650, 3650))  # type: ignore[operator]
            kind = "spouse"
            outsider = gen.person(
                family_name=anchor.family_name,
                date_of_birth=dob,
                address_line1=anchor.address_line1,
                postcode=anchor.postcode,
            )
        else:
            kind = "namesake"
            outsider = gen.person(given_name=anchor.given_name, family_name=anchor.family_name)
        record, kinds = gen.noisy(outsider)
        out.append(Query(record, None, (kind, *[k for k in kinds if k != "clean"])))
    return Population(listed, out)
