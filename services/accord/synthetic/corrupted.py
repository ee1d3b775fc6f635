"""A second labelled population, written apart from the matcher's tuning: population B.

`accord.synthetic.population` (population A) was written beside the matcher, and the
matcher's levels grew out of its noise. This module shares none of its code, names or
noise: its own name lists and frequencies (a geometric tail, not Zipf), its own address
and postcode scheme, and a corruption model of its own, applied several times to one
record (0 to 4 corruptions, independently chosen):

- character edits of three kinds: keyboard (a neighbouring key on a QWERTY keyboard),
  phonetic (ph/f, ck/k, ie/y, z/s, a doubled letter single ...) and OCR (rn/m, l/1, O/0,
  cl/d, e/c ...), in any name, the address or the postcode;
- a missing value in any field;
- swapped fields (given and family name, day and month of birth) and merged fields (the
  whole name in the given-name field, the postcode inside the address line);
- people who moved (a new address and postcode);
- about people not on the list: twins, spouses, a same-name parent or child at one
  address, and strangers.

Nobody in it is real. It reuses only the `Population`/`Query` containers, so that the
same evaluation runs over either population.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Final

from accord.matching.normalise import PersonRecord
from accord.synthetic.people import chi_for
from accord.synthetic.population import Population, Query

__all__ = ["CORRUPTION_KINDS", "generate_corrupted_population"]

_GIVEN_F: Final = (
    "Isla Olivia Emily Sophie Ava Amelia Jessica Ella Lucy Charlotte Grace Freya Millie "
    "Ellie Harper Lily Evie Ruby Sophia Chloe Hannah Orla Rosie Anna Eva Mia Zara Maisie "
    "Erin Layla Skye Iona Rowan Kayla Bethany Jade Megan Lauren Nicola Gemma Donna Tracy "
    "Lisa Julie Claire Kerry Dawn Leanne Amanda Michelle Joanne Louise Emma Laura Kathryn "
    "Beatrice Winifred Edith Ada Mabel Hilda Ivy Violet Nellie Bessie Lena Greta Olga "
    "Yasmin Noor Hira Mei Ling Hana Anya Oksana Daria Ioana Elena Lucia Sofia Camille"
).split()
_GIVEN_M: Final = (
    "Jack Noah Oliver Leo Harris Lewis Alfie Finlay Archie Rory Logan Harry Jacob Max "
    "Arran Cameron Reuben Jamie Lucas Oscar Brodie Kyle Ryan Liam Dylan Connor Aidan "
    "Sean Barry Darren Jason Wayne Lee Shaun Dean Stewart Robin Roy Bruce Victor Cecil "
    "Ernest Albert Arthur Harold Stanley Leonard Sidney Percy Wilfred Alfred Herbert "
    "Bashir Zain Ayaan Kabir Wei Jun Hiroshi Mateusz Bartosz Oleksandr Dmytro Andrei "
    "Stefan Luca Marco Mateo Pierre Hugo Felix Tobias Emil Anton"
).split()
_FAMILY: Final = (
    "Mackintosh Macpherson Macrae Mackinnon Macfarlane Macintyre Maclachlan Macewan "
    "Robb Doig Petrie Birrell Haggart Kinnear Lumsden Menzies Niven Ogg Pirie Rattray "
    "Skinner Tosh Wishart Yule Abernethy Balfour Carnegie Dalgleish Erskine Gilchrist "
    "Haldane Imrie Jardine Keiller Leslie Melville Napier Ramsay Seaton Turnbull "
    "Wardlaw Arbuthnot Bain Cormack Dow Ewing Fairlie Geddes Hood Innes Jolly Kidd "
    "Laird Meikle Nairn Oliphant Purdie Rose Spence Thain Voy Watt Young Adam Allardyce "
    "Philips Phillips Stevens Stephens Clerk Clarke Neill Neil Reid Read Gray Grey "
    "Smyth Smith Brown Browne Thompson Thomson Jones Evans Davies Hughes Price "
    "Okafor Adeyemi Mensah Zhang Wang Liu Chen Tanaka Sato Kovalenko Shevchenko Popescu "
    "Horvath Novak Silva Santos Ferreira Garcia Lopez Dubois Moreau Schmidt Fischer"
).split()
_TOWNS: Final = (
    ("IV", 36), ("PH", 44), ("KY", 16), ("TD", 15), ("DG", 16), ("KA", 30),
    ("ML", 12), ("FK", 21), ("G", 84), ("EH", 55), ("AB", 56), ("DD", 11),
)  # fmt: skip
_ROADS: Final = (
    "Acre", "Bank", "Cross", "Dyke", "Fauld", "Gate", "Haugh", "Inch", "Knowe", "Law",
    "Mains", "Neuk", "Port", "Rig", "Shaw", "Toll", "Vennel", "Wynd", "Yett", "Croft",
    "Burn", "Craig", "Dale", "Glen", "Loch", "Muir", "Park", "Strath", "Tower", "Wood",
)  # fmt: skip
_ROAD_KINDS: Final = ("Road", "Street", "Place", "View", "Gardens", "Court", "Lane", "Crescent")

_KEYBOARD: Final = {
    a: b
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i, a in enumerate(row)
    for b in [row[max(i - 1, 0)] + row[min(i + 1, len(row) - 1)]]
}
_PHONETIC: Final = (
    ("ph", "f"), ("f", "ph"), ("ck", "k"), ("k", "ck"), ("ie", "y"), ("y", "ie"),
    ("ee", "ea"), ("ea", "ee"), ("z", "s"), ("s", "z"), ("ou", "ow"), ("c", "k"),
    ("th", "t"), ("ll", "l"), ("nn", "n"), ("tt", "t"), ("ss", "s"), ("ei", "ie"),
    ("ae", "e"), ("oh", "o"), ("i", "y"), ("v", "w"),
)  # fmt: skip
_OCR: Final = (
    ("rn", "m"), ("m", "rn"), ("l", "1"), ("I", "l"), ("O", "0"), ("o", "0"), ("cl", "d"),
    ("d", "cl"), ("e", "c"), ("c", "e"), ("h", "b"), ("u", "v"), ("vv", "w"), ("S", "5"),
    ("B", "8"), ("g", "q"), ("n", "h"),
)  # fmt: skip

CORRUPTION_KINDS: Final[tuple[str, ...]] = (
    "keyboard_edit",
    "phonetic_edit",
    "ocr_edit",
    "missing_given",
    "missing_family",
    "missing_dob",
    "missing_postcode",
    "missing_address",
    "names_swapped",
    "day_month_swapped",
    "name_merged",
    "postcode_in_address",
    "moved",
)
"""Corruptions of listed people's records; a query carries 0 (`uncorrupted`) to 4."""


def _geometric_weights(n: int, ratio: float) -> list[float]:
    return [ratio**i for i in range(n)]


class _People:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed * 7919 + 17)
        self.used_chi: set[str] = set()
        self.wf = _geometric_weights(len(_GIVEN_F), 0.96)
        self.wm = _geometric_weights(len(_GIVEN_M), 0.96)
        self.wfam = _geometric_weights(len(_FAMILY), 0.975)

    def given(self, female: bool) -> str:
        pool, weights = (_GIVEN_F, self.wf) if female else (_GIVEN_M, self.wm)
        return self.rng.choices(pool, weights)[0]

    def family(self) -> str:
        return self.rng.choices(_FAMILY, self.wfam)[0]

    def birth(self) -> date:
        # ages 16 to 100 on 2020-04-01, older people more likely (the shielding list)
        age_days = int(365.25 * (16 + 84 * self.rng.betavariate(2.2, 1.6)))
        return date(2020, 4, 1) - timedelta(days=age_days)

    def home(self) -> tuple[str, str]:
        area, count = self.rng.choice(_TOWNS)
        sector = self.rng.randrange(0, 10)
        unit = "".join(self.rng.choice("ABDEFGHJLNPQRSTUWXYZ") for _ in range(2))
        postcode = f"{area}{self.rng.randrange(1, count + 1)} {sector}{unit}"
        road = f"{self.rng.choice(_ROADS)} {self.rng.choice(_ROAD_KINDS)}"
        return f"{self.rng.randrange(1, 120)} {road}", postcode

    def chi(self, born: date) -> str:
        while True:
            chi = chi_for(born, self.rng.randrange(1000))
            if chi is not None and chi not in self.used_chi:
                self.used_chi.add(chi)
                return chi

    def make(self, **fixed: object) -> PersonRecord:
        female = self.rng.random() < 0.52
        born = fixed.pop("date_of_birth", None) or self.birth()
        assert isinstance(born, date)
        line1, postcode = self.home()
        record = PersonRecord(
            given_name=self.given(female),
            family_name=self.family(),
            date_of_birth=born,
            postcode=postcode,
            address_line1=line1,
            chi_number=self.chi(born),
        )
        return replace(record, **fixed) if fixed else record

    def at_home(self, of: PersonRecord) -> dict[str, object]:
        return {"address_line1": of.address_line1, "postcode": of.postcode}

    def twin(self, of: PersonRecord, taken: set[str | None]) -> PersonRecord:
        while True:
            other = self.make(
                family_name=of.family_name, date_of_birth=of.date_of_birth, **self.at_home(of)
            )
            if other.given_name not in taken:
                return other

    def spouse(self, of: PersonRecord, taken: set[str | None]) -> PersonRecord:
        while True:
            born = of.date_of_birth + timedelta(days=self.rng.randrange(-4000, 4000))  # type: ignore[operator]
            other = self.make(family_name=of.family_name, date_of_birth=born, **self.at_home(of))
            if other.given_name not in taken:
                return other

    def namesake_relative(self, of: PersonRecord) -> PersonRecord:
        gap = self.rng.randrange(18 * 365, 40 * 365) * self.rng.choice((-1, 1))
        born = of.date_of_birth + timedelta(days=gap)  # type: ignore[operator]
        if born > date(2004, 1, 1):
            born = of.date_of_birth - timedelta(days=abs(gap))  # type: ignore[operator]
        return self.make(
            given_name=of.given_name,
            family_name=of.family_name,
            date_of_birth=born,
            **self.at_home(of),
        )

    # --- corruption ----------------------------------------------------------------------

    def _edit(self, text: str, kind: str) -> str:
        rng = self.rng
        if len(text) < 2:
            return text
        if kind == "keyboard_edit":
            positions = [i for i, ch in enumerate(text) if ch.lower() in _KEYBOARD]
            if not positions:
                return text
            i = rng.choice(positions)
            new = rng.choice(_KEYBOARD[text[i].lower()])
            new = new.upper() if text[i].isupper() else new
            return text[:i] + new + text[i + 1 :]
        table = _PHONETIC if kind == "phonetic_edit" else _OCR
        options = [(a, b) for a, b in table if a in text[1:]]
        if not options:
            return text
        a, b = rng.choice(options)
        starts = [i for i in range(1, len(text)) if text.startswith(a, i)]
        i = rng.choice(starts)
        return text[:i] + b + text[i + len(a) :]

    def corrupt(self, record: PersonRecord) -> tuple[PersonRecord, list[str]]:
        rng = self.rng
        count = rng.choices((0, 1, 2, 3, 4), (0.35, 0.35, 0.18, 0.08, 0.04))[0]
        kinds = rng.sample(CORRUPTION_KINDS, count) if count else []
        given, family = record.given_name or "", record.family_name or ""
        born, postcode, line1 = record.date_of_birth, record.postcode, record.address_line1
        applied: list[str] = []
        for kind in kinds:
            if kind in ("keyboard_edit", "phonetic_edit", "ocr_edit"):
                field = rng.choice(("given", "family", "family", "given", "address", "postcode"))
                if field == "given" and given:
                    given = self._edit(given, kind)
                elif field == "family" and family:
                    family = self._edit(family, kind)
                elif field == "address" and line1:
                    line1 = self._edit(line1, kind)
                elif field == "postcode" and postcode:
                    postcode = self._edit(postcode, kind)
                else:
                    continue
            elif kind == "missing_given":
                given = ""
            elif kind == "missing_family":
                family = ""
            elif kind == "missing_dob":
                born = None
            elif kind == "missing_postcode":
                postcode = None
            elif kind == "missing_address":
                line1 = None
            elif kind == "names_swapped":
                given, family = family, given
            elif kind == "day_month_swapped":
                if born is None or born.day > 12 or born.day == born.month:
                    continue
                born = born.replace(day=born.month, month=born.day)
            elif kind == "name_merged":
                if not (given and family):
                    continue
                given, family = f"{given} {family}", ""
            elif kind == "postcode_in_address":
                if not (postcode and line1):
                    continue
                line1, postcode = f"{line1}, {postcode}", None
            elif kind == "moved":
                line1, postcode = self.home()
            applied.append(kind)
        out = PersonRecord(given or None, family or None, born, postcode, line1)
        return out, applied or ["uncorrupted"]


def generate_corrupted_population(
    people: int = 20_000, queries: int = 5_000, *, seed: int = 2020, listed_share: float = 0.8
) -> Population:
    """A list of `people` and `queries` labelled, corrupted queries (population B).

    `listed_share` of the queries are about listed people (corrupted, without CHI); the
    rest are about people not listed: a twin, a spouse or a same-name relative of a
    listed person at their address (each about a tenth of them), or a stranger. Queries
    about people not listed are corrupted too.
    """
    gen = _People(seed)
    listed: dict[str, PersonRecord] = {}
    homes: dict[tuple[object, ...], set[str | None]] = {}

    def add(record: PersonRecord) -> None:
        listed[f"B{len(listed) + 1:07d}"] = record
        homes.setdefault((record.family_name, record.postcode), set()).add(record.given_name)

    while len(listed) < people:
        first = gen.make()
        add(first)
        roll = gen.rng.random()
        if len(listed) >= people or roll > 0.2:
            continue
        taken = homes[first.family_name, first.postcode]
        if roll < 0.12:
            add(gen.spouse(first, taken))
        elif roll < 0.16:
            add(gen.twin(first, taken))
        else:
            add(gen.namesake_relative(first))
    ids = list(listed)
    out: list[Query] = []
    for _ in range(queries):
        if gen.rng.random() < listed_share:
            person_id = gen.rng.choice(ids)
            record, kinds = gen.corrupt(listed[person_id])
            out.append(Query(record, person_id, tuple(kinds)))
            continue
        anchor = listed[gen.rng.choice(ids)]
        taken = homes[anchor.family_name, anchor.postcode]
        roll = gen.rng.random()
        if roll < 0.1:
            kind, outsider = "twin", gen.twin(anchor, taken)
        elif roll < 0.2:
            kind, outsider = "spouse", gen.spouse(anchor, taken)
        elif roll < 0.3:
            kind, outsider = "same_name_relative", gen.namesake_relative(anchor)
        else:
            kind, outsider = "stranger", gen.make()
        record, kinds = gen.corrupt(outsider)
        out.append(Query(record, None, (kind, *[k for k in kinds if k != "uncorrupted"])))
    return Population(listed, out)
