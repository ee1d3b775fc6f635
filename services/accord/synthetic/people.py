"""A realistic, entirely synthetic shielding list for demos and tests.

Nobody in it is real: CHI numbers are built from random dates and serials,
names and streets are drawn from common lists, and phone numbers come from
the ranges Ofcom keeps for drama and testing (07700 900xxx, 0131 496 0xxx,
0141 496 0xxx, 01632 960xxx), so a demo can never ring a real person.

The list looks like a board's real upload so that the pipeline is exercised
the way it will be used: people spread over the 32 council areas roughly as
Scotland's population is, postcodes from districts that really serve each
council, Mc/Mac, hyphenated and accented names, phone numbers written in
the several ways people write them, and a known number of deliberately bad
rows of known kinds, so that quarantine can be demonstrated and tested.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from accord.core.credentials import private_dir
from accord.core.scotland import BOARD_OF_COUNCIL, COUNCIL_AREAS
from accord.ingest.validation import (
    COLUMNS,
    chi_mod10_check_digit,
    chi_mod11_check_digit,
)

__all__ = [
    "BAD_ROW_KINDS",
    "BAD_ROW_RULES",
    "DEFAULT_EFFECTIVE",
    "chi_for",
    "generate_shielding_list",
    "generate_shielding_list_with_labels",
    "iter_shielding_list",
    "write_csv",
]

DEFAULT_EFFECTIVE: Final = date(2020, 6, 1)
"""Effective date used when none is given; fixed so a seed always gives the same file."""

BAD_ROW_KINDS: Final[tuple[str, ...]] = (
    "chi_check_digit",
    "chi_dob_mismatch",
    "postcode_malformed",
    "family_name_missing",
    "council_area_unknown",
    "dob_future",
    "shielding_status_unrecognised",
)
"""The kinds of deliberately bad row, used in turn so a file shows every kind."""

BAD_ROW_RULES: Final[dict[str, tuple[str, str]]] = {
    "chi_check_digit": ("chi_number", "chi_check_digit"),
    "chi_dob_mismatch": ("date_of_birth", "chi_dob_mismatch"),
    "postcode_malformed": ("postcode", "postcode_format"),
    "family_name_missing": ("family_name", "required"),
    "council_area_unknown": ("council_area", "council_area_unknown"),
    "dob_future": ("date_of_birth", "dob_future"),
    "shielding_status_unrecognised": ("shielding_status", "enum"),
}
"""Bad row kind -> the (field, rule) the validator is expected to report, alone."""

# Approximate mid-year population in thousands (NRS estimates, early 2020s);
# only the proportions matter.
_POPULATION_THOUSANDS: Final[dict[str, int]] = {
    "Aberdeen City": 227,
    "Aberdeenshire": 263,
    "Angus": 116,
    "Argyll and Bute": 86,
    "City of Edinburgh": 515,
    "Clackmannanshire": 52,
    "Dumfries and Galloway": 146,
    "Dundee City": 148,
    "East Ayrshire": 120,
    "East Dunbartonshire": 109,
    "East Lothian": 112,
    "East Renfrewshire": 97,
    "Falkirk": 159,
    "Fife": 372,
    "Glasgow City": 622,
    "Highland": 236,
    "Inverclyde": 78,
    "Midlothian": 96,
    "Moray": 94,
    "Na h-Eileanan Siar": 26,
    "North Ayrshire": 134,
    "North Lanarkshire": 341,
    "Orkney Islands": 22,
    "Perth and Kinross": 153,
    "Renfrewshire": 183,
    "Scottish Borders": 116,
    "Shetland Islands": 23,
    "South Ayrshire": 112,
    "South Lanarkshire": 328,
    "Stirling": 93,
    "West Dunbartonshire": 88,
    "West Lothian": 183,
}


def _districts(
    prefix: str, numbers: range | tuple[int, ...], town: str
) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{number}", town) for number in numbers)


# Real postcode districts in each council area, with their post town.
_POSTCODE_DISTRICTS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Aberdeen City": _districts("AB", (10, 11, 12, 15, 16, 21, 22, 23, 24, 25), "Aberdeen"),
    "Aberdeenshire": (
        ("AB31", "Banchory"),
        ("AB32", "Westhill"),
        ("AB39", "Stonehaven"),
        ("AB41", "Ellon"),
        ("AB42", "Peterhead"),
        ("AB43", "Fraserburgh"),
        ("AB51", "Inverurie"),
        ("AB53", "Turriff"),
        ("AB54", "Huntly"),
    ),
    "Angus": (
        ("DD7", "Carnoustie"),
        ("DD8", "Forfar"),
        ("DD9", "Brechin"),
        ("DD10", "Montrose"),
        ("DD11", "Arbroath"),
    ),
    "Argyll and Bute": (
        ("PA20", "Isle of Bute"),
        ("PA23", "Dunoon"),
        ("PA28", "Campbeltown"),
        ("PA34", "Oban"),
        ("G84", "Helensburgh"),
    ),
    "City of Edinburgh": _districts("EH", range(1, 18), "Edinburgh"),
    "Clackmannanshire": (
        ("FK10", "Alloa"),
        ("FK12", "Alva"),
        ("FK13", "Tillicoultry"),
        ("FK14", "Dollar"),
    ),
    "Dumfries and Galloway": (
        ("DG1", "Dumfries"),
        ("DG2", "Dumfries"),
        ("DG6", "Kirkcudbright"),
        ("DG7", "Castle Douglas"),
        ("DG9", "Stranraer"),
        ("DG11", "Lockerbie"),
        ("DG12", "Annan"),
    ),
    "Dundee City": _districts("DD", range(1, 6), "Dundee"),
    "East Ayrshire": (
        ("KA1", "Kilmarnock"),
        ("KA3", "Kilmarnock"),
        ("KA17", "Newmilns"),
        ("KA18", "Cumnock"),
    ),
    "East Dunbartonshire": (
        ("G61", "Glasgow"),
        ("G62", "Glasgow"),
        ("G64", "Glasgow"),
        ("G66", "Glasgow"),
    ),
    "East Lothian": (
        ("EH21", "Musselburgh"),
        ("EH32", "Prestonpans"),
        ("EH39", "North Berwick"),
        ("EH41", "Haddington"),
        ("EH42", "Dunbar"),
    ),
    "East Renfrewshire": _districts("G", (46, 76, 77, 78), "Glasgow"),
    "Falkirk": (
        ("FK1", "Falkirk"),
        ("FK2", "Falkirk"),
        ("FK3", "Grangemouth"),
        ("FK4", "Bonnybridge"),
        ("FK5", "Larbert"),
        ("FK6", "Denny"),
    ),
    "Fife": (
        ("KY1", "Kirkcaldy"),
        ("KY2", "Kirkcaldy"),
        ("KY7", "Glenrothes"),
        ("KY8", "Leven"),
        ("KY11", "Dunfermline"),
        ("KY12", "Dunfermline"),
        ("KY15", "Cupar"),
        ("KY16", "St Andrews"),
    ),
    "Glasgow City": _districts(
        "G",
        (*range(1, 6), *range(11, 16), *range(20, 24), *range(31, 35), *range(40, 46), 51, 52, 53),
        "Glasgow",
    ),
    "Highland": (
        ("IV1", "Inverness"),
        ("IV2", "Inverness"),
        ("IV3", "Inverness"),
        ("IV12", "Nairn"),
        ("IV15", "Dingwall"),
        ("KW1", "Wick"),
        ("KW14", "Thurso"),
        ("PH22", "Aviemore"),
        ("PH33", "Fort William"),
    ),
    "Inverclyde": (
        ("PA14", "Port Glasgow"),
        ("PA15", "Greenock"),
        ("PA16", "Greenock"),
        ("PA19", "Gourock"),
    ),
    "Midlothian": (
        ("EH19", "Bonnyrigg"),
        ("EH20", "Loanhead"),
        ("EH22", "Dalkeith"),
        ("EH23", "Gorebridge"),
        ("EH26", "Penicuik"),
    ),
    "Moray": (
        ("IV30", "Elgin"),
        ("IV31", "Lossiemouth"),
        ("IV36", "Forres"),
        ("AB55", "Keith"),
        ("AB56", "Buckie"),
    ),
    "Na h-Eileanan Siar": (
        ("HS1", "Stornoway"),
        ("HS2", "Isle of Lewis"),
        ("HS3", "Isle of Harris"),
        ("HS5", "Isle of Harris"),
        ("HS6", "Isle of North Uist"),
        ("HS7", "Isle of Benbecula"),
        ("HS8", "Isle of South Uist"),
        ("HS9", "Isle of Barra"),
    ),
    "North Ayrshire": (
        ("KA11", "Irvine"),
        ("KA12", "Irvine"),
        ("KA20", "Stevenston"),
        ("KA21", "Saltcoats"),
        ("KA22", "Ardrossan"),
        ("KA27", "Isle of Arran"),
        ("KA30", "Largs"),
    ),
    "North Lanarkshire": (
        ("ML1", "Motherwell"),
        ("ML2", "Wishaw"),
        ("ML5", "Coatbridge"),
        ("ML6", "Airdrie"),
        ("G67", "Glasgow"),
    ),
    "Orkney Islands": (
        ("KW15", "Kirkwall"),
        ("KW16", "Stromness"),
        ("KW17", "Orkney"),
    ),
    "Perth and Kinross": (
        ("PH1", "Perth"),
        ("PH2", "Perth"),
        ("PH7", "Crieff"),
        ("PH10", "Blairgowrie"),
        ("PH16", "Pitlochry"),
        ("KY13", "Kinross"),
    ),
    "Renfrewshire": (
        ("PA1", "Paisley"),
        ("PA2", "Paisley"),
        ("PA3", "Paisley"),
        ("PA4", "Renfrew"),
        ("PA5", "Johnstone"),
    ),
    "Scottish Borders": (
        ("TD1", "Galashiels"),
        ("TD5", "Kelso"),
        ("TD6", "Melrose"),
        ("TD7", "Selkirk"),
        ("TD9", "Hawick"),
        ("TD11", "Duns"),
        ("EH45", "Peebles"),
    ),
    "Shetland Islands": (
        ("ZE1", "Shetland"),
        ("ZE2", "Shetland"),
        ("ZE3", "Shetland"),
    ),
    "South Ayrshire": (
        ("KA7", "Ayr"),
        ("KA8", "Ayr"),
        ("KA9", "Prestwick"),
        ("KA10", "Troon"),
        ("KA26", "Girvan"),
    ),
    "South Lanarkshire": (
        ("ML3", "Hamilton"),
        ("ML9", "Larkhall"),
        ("ML10", "Strathaven"),
        ("ML11", "Lanark"),
        ("G72", "Glasgow"),
        ("G73", "Glasgow"),
        ("G74", "Glasgow"),
        ("G75", "Glasgow"),
    ),
    "Stirling": (
        ("FK7", "Stirling"),
        ("FK8", "Stirling"),
        ("FK9", "Stirling"),
        ("FK15", "Dunblane"),
        ("FK17", "Callander"),
    ),
    "West Dunbartonshire": (
        ("G81", "Clydebank"),
        ("G82", "Dumbarton"),
        ("G83", "Alexandria"),
    ),
    "West Lothian": (
        ("EH47", "Bathgate"),
        ("EH48", "Bathgate"),
        ("EH49", "Linlithgow"),
        ("EH52", "Broxburn"),
        ("EH54", "Livingston"),
    ),
}

# The names a board's export would hold for a council in error: misspelt, so unknown
# to the rules and to the synonyms (config/aliases.yaml), which read the usual short
# forms ("Edinburgh", "Western Isles") as the council.
_WRONG_COUNCIL_NAMES: Final[dict[str, str]] = {
    "City of Edinburgh": "City of Edinbrugh",
    "Glasgow City": "Glasgw City",
    "Aberdeen City": "Aberdeen Ctiy",
    "Dundee City": "Dundee Cty",
    "Na h-Eileanan Siar": "Na h-Eileanan",
    "Orkney Islands": "Orkeny Islands",
    "Shetland Islands": "Shetlnd Islands",
    "Highland": "Highlands",
    "Scottish Borders": "Scottish Boarders",
    "Perth and Kinross": "Perth and Kinros",
    "Argyll and Bute": "Argyle and Bute",
    "Dumfries and Galloway": "Dumfries and Gallowa",
}

_FEMALE_NAMES: Final[tuple[str, ...]] = (
    "Margaret", "Mary", "Elizabeth", "Agnes", "Isobel", "Catherine", "Janet", "Helen",
    "Jean", "Anne", "Christine", "Fiona", "Morag", "Kirsty", "Eilidh", "Siobhán",
    "Mhairi", "Ishbel", "Shona", "Lorna", "Aileen", "Ailsa", "Róisín", "Zofia",
    "Aisha", "Priya", "Chloé", "Marie-Claire", "Sandra", "Linda", "Karen", "Elspeth",
)  # fmt: skip
_MALE_NAMES: Final[tuple[str, ...]] = (
    "James", "John", "William", "Robert", "David", "Thomas", "Alexander", "Andrew",
    "George", "Hamish", "Angus", "Callum", "Ewan", "Fraser", "Iain", "Ruaridh",
    "Seán", "Lachlan", "Craig", "Gordon", "Euan", "Mohammed", "Tomasz", "Rajesh",
    "Pádraig", "Jean-Luc", "Kenneth", "Duncan", "Alasdair", "Murdo", "Torquil", "Stuart",
)  # fmt: skip
_FAMILY_NAMES: Final[tuple[str, ...]] = (
    "Smith", "Brown", "Wilson", "Campbell", "Stewart", "Thomson", "Robertson", "Anderson",
    "MacDonald", "McDonald", "Scott", "Reid", "Murray", "Taylor", "Clark", "Ross",
    "Watson", "Morrison", "Paterson", "Young", "Mitchell", "Fraser", "Walker", "McLean",
    "MacKenzie", "McKay", "MacLeod", "McGregor", "Grant", "Munro", "Kerr", "Henderson",
    "Hamilton", "Graham", "Kelly", "O'Neill", "Ó Briain", "Mac an t-Saoir", "MacAoidh",
    "Douglas-Hamilton", "Hamilton-Smith", "Khan", "Ahmed", "Singh", "Kowalski", "Nowak",
    "Lefèvre", "McIntyre", "Johnstone", "Sinclair", "Gunn", "Mackay",
)  # fmt: skip
_STREETS: Final[tuple[str, ...]] = (
    "High Street", "Main Street", "Station Road", "Church Street", "Victoria Road",
    "King Street", "Queen Street", "Castle Street", "Mill Road", "Burnside Road",
    "Glebe Street", "Braehead", "Kirk Wynd", "Loanhead Terrace", "Marchmont Road",
    "Duke Street", "Union Street", "Dalhousie Terrace", "Craigleith Crescent",
    "Hillfoot Drive", "Park Avenue", "Seaview Terrace", "Shore Road", "School Brae",
    "Bank Street", "Bridge Street", "Springfield Road", "Woodside Crescent",
    "Rowan Drive", "Birch Grove", "Strathmore Avenue", "Montgomery Street",
)  # fmt: skip
# Locality names found in many Scottish towns, so any council can have them.
_LOCALITIES: Final[tuple[str, ...]] = (
    "Kirkton", "Milton", "Newton", "Eastfield", "Westfield", "Bridgend", "Hillhead",
    "Townhead", "Southfield", "Northfield", "Parkhead", "Burnside",
)  # fmt: skip

# Weights reflect the broad mix of reasons on the 2020 lists (respiratory and
# immunosuppression largest); exact shares do not matter for a demo.
_RISK_GROUP_WEIGHTS: Final[dict[str, int]] = {
    "SEVERE_RESPIRATORY": 30,
    "IMMUNOSUPPRESSION_THERAPY": 20,
    "SPECIFIC_CANCERS": 18,
    "RARE_DISEASES": 10,
    "CLINICIAN_IDENTIFIED": 8,
    "SOLID_ORGAN_TRANSPLANT": 4,
    "CHRONIC_KIDNEY_DISEASE_STAGE_5": 4,
    "UNKNOWN": 5,
}
_STATUS_WEIGHTS: Final[dict[str, int]] = {"SHIELDING": 90, "NOT_SHIELDING": 7, "UNKNOWN": 3}
# Statuses no rule or synonym reads ("Yes" and "Shielded" are synonyms of SHIELDING).
_WRONG_STATUSES: Final[tuple[str, ...]] = ("Active", "1", "Pending", "Maybe", "?")

_POSTCODE_INWARD_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"
_EARLIEST_DOB: Final = date(1925, 1, 1)
_LATEST_DOB: Final = date(2005, 12, 31)
# Shielding lists were mostly older people, so births lean towards the 1940s.
_MODE_DOB: Final = date(1945, 1, 1)


def chi_for(dob: date, serial: int) -> str | None:
    """Build the modulus 11 CHI for a date of birth and a 3-digit serial.

    Returns None when the modulus 11 check digit would be 10: such a prefix
    has no modulus 11 CHI, and new numbers are issued with a modulus 10 digit
    only once a date's modulus 11 numbers have run out.
    """
    if not 0 <= serial <= 999:
        raise ValueError("serial must be between 0 and 999")
    first_nine = f"{dob:%d%m%y}{serial:03d}"
    check = chi_mod11_check_digit(first_nine)
    if check is None:
        return None
    return f"{first_nine}{check}"


def _allocate(count: int) -> list[str]:
    """Return `count` council areas in proportion to population, every one at least once.

    Largest-remainder allocation instead of sampling, so that small islands are
    never missing from a full-size list by chance.
    """
    total = sum(_POPULATION_THOUSANDS.values())
    floor_only = count < len(COUNCIL_AREAS)
    shares = {c: count * p / total for c, p in _POPULATION_THOUSANDS.items()}
    allotted = {c: int(share) if floor_only else max(1, int(share)) for c, share in shares.items()}
    by_remainder = sorted(shares, key=lambda c: (shares[c] - int(shares[c]), c), reverse=True)
    index = 0
    while sum(allotted.values()) < count:
        allotted[by_remainder[index % len(by_remainder)]] += 1
        index += 1
    while sum(allotted.values()) > count:
        # Only reachable when the minimum of one pushed the total over: take from the largest.
        largest = max(allotted, key=lambda c: allotted[c])
        allotted[largest] -= 1
    return [council for council in COUNCIL_AREAS for _ in range(allotted[council])]


def _random_dob(rng: random.Random) -> date:
    span = (_LATEST_DOB - _EARLIEST_DOB).days
    mode = (_MODE_DOB - _EARLIEST_DOB).days
    return _EARLIEST_DOB + timedelta(days=round(rng.triangular(0, span, mode)))


def _new_chi(rng: random.Random, dob: date, female: bool, taken: set[str]) -> str:
    """Pick an unused CHI for the date of birth, with the sex digit's parity right."""
    while True:
        serial = rng.randrange(0, 100) * 10 + rng.randrange(0, 5) * 2 + (0 if female else 1)
        chi = chi_for(dob, serial)
        if chi is not None and chi not in taken:
            taken.add(chi)
            return chi


def _postcode(rng: random.Random, district: str) -> str:
    inward = (
        f"{rng.randrange(0, 10)}"
        f"{rng.choice(_POSTCODE_INWARD_LETTERS)}{rng.choice(_POSTCODE_INWARD_LETTERS)}"
    )
    return f"{district} {inward}"


def _phone(rng: random.Random, council: str) -> str:
    """Return a drama-range UK number written one of the ways people write them, or ''."""
    roll = rng.random()
    if roll < 0.2:
        return ""
    if roll < 0.65:
        local = f"{rng.randrange(0, 1000):03d}"
        return rng.choice(
            (
                f"07700 900{local}",
                f"07700900{local}",
                f"+44 7700 900{local}",
                f"+447700900{local}",
                f"07700-900-{local}",
            )
        )
    local = f"{rng.randrange(0, 1000):03d}"
    if BOARD_OF_COUNCIL[council] == "NHS Lothian":
        area, number = "131", f"496 0{local}"
    elif BOARD_OF_COUNCIL[council] == "NHS Greater Glasgow and Clyde":
        area, number = "141", f"496 0{local}"
    else:
        area, number = "1632", f"960{local}"
    return rng.choice(
        (
            f"0{area} {number}",
            f"(0{area}) {number}",
            f"+44 (0){area} {number}",
            f"+44 {area} {number}",
        )
    )


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _good_row(
    rng: random.Random, council: str, effective: date, taken: set[str]
) -> tuple[dict[str, str], bool]:
    """Build one plausible row for a person in the council area; also say if female."""
    female = rng.random() < 0.55
    dob = _random_dob(rng)
    district, town = rng.choice(_POSTCODE_DISTRICTS[council])
    number = rng.randrange(1, 250)
    street = rng.choice(_STREETS)
    roll = rng.random()
    if roll < 0.2:
        # Tenement flats are numbered the local way: Glasgow floor/door (2/1),
        # Edinburgh floor-F-door (3F2), elsewhere mostly a plain number.
        board = BOARD_OF_COUNCIL[council]
        if board == "NHS Greater Glasgow and Clyde":
            flat = f"{rng.randrange(0, 4)}/{rng.randrange(1, 3)}"
        elif board == "NHS Lothian":
            flat = f"{rng.randrange(1, 5)}F{rng.randrange(1, 4)}"
        else:
            flat = str(rng.randrange(1, 9))
        line1, line2 = f"Flat {flat}", f"{number} {street}"
    elif roll < 0.35:
        line1, line2 = f"{number} {street}", rng.choice(_LOCALITIES)
    else:
        line1, line2 = f"{number} {street}", ""

    risk_group = _weighted(rng, _RISK_GROUP_WEIGHTS)
    if female and dob.year >= 1975 and rng.random() < 0.05:
        risk_group = "PREGNANT_HEART_DISEASE"

    row = {
        "chi_number": _new_chi(rng, dob, female, taken),
        "given_name": rng.choice(_FEMALE_NAMES if female else _MALE_NAMES),
        "family_name": rng.choice(_FAMILY_NAMES),
        "date_of_birth": dob.isoformat(),
        "address_line1": line1,
        "address_line2": line2,
        "town": town if rng.random() < 0.9 else "",
        "postcode": _postcode(rng, district),
        "council_area": council,
        "health_board": BOARD_OF_COUNCIL[council],
        "clinical_risk_group": risk_group,
        "shielding_status": _weighted(rng, _STATUS_WEIGHTS),
        "contact_phone": _phone(rng, council),
        "effective_date": effective.isoformat(),
    }
    return row, female


def _spoil(
    rng: random.Random, row: dict[str, str], kind: str, female: bool, taken: set[str]
) -> None:
    """Make the row break exactly one rule, the way real uploads go wrong."""
    if kind == "chi_check_digit":
        first_nine = row["chi_number"][:9]
        valid = {chi_mod11_check_digit(first_nine), chi_mod10_check_digit(first_nine)}
        row["chi_number"] = first_nine + str(rng.choice([d for d in range(10) if d not in valid]))
    elif kind == "chi_dob_mismatch":
        # A day slipped when typing: the CHI still holds the true date.
        dob = date.fromisoformat(row["date_of_birth"])
        row["date_of_birth"] = (dob + timedelta(days=rng.choice((-1, 1)))).isoformat()
    elif kind == "postcode_malformed":
        outward, inward = row["postcode"].split(" ")
        area = outward.rstrip("0123456789")
        row["postcode"] = rng.choice(
            (
                f"{outward} {inward[:2]}",  # inward code cut short
                f"{outward} O{inward[1:]}",  # letter O where the digit belongs
                f"{area} {inward}",  # district number left out
            )
        )
    elif kind == "family_name_missing":
        row["family_name"] = ""
    elif kind == "council_area_unknown":
        council = row["council_area"]
        row["council_area"] = _WRONG_COUNCIL_NAMES.get(council, f"{council} Cuoncil")
    elif kind == "dob_future":
        # A century slipped when typing; pick a birth year that stays in the future for decades.
        dob = date(rng.randrange(1955, 2000), rng.randrange(1, 13), rng.randrange(1, 29))
        row["date_of_birth"] = dob.replace(year=dob.year + 100).isoformat()
        taken.discard(row["chi_number"])
        row["chi_number"] = _new_chi(rng, dob, female, taken)
    elif kind == "shielding_status_unrecognised":
        row["shielding_status"] = rng.choice(_WRONG_STATUSES)
    else:
        raise ValueError(f"unknown bad row kind {kind!r}")


def iter_shielding_list(
    count: int = 5000, *, seed: int = 2020, bad_rows: int = 12, effective: date | None = None
) -> Iterator[tuple[dict[str, str], str | None]]:
    """Yield the rows one by one, each with its bad-row kind or None if it is good.

    The same rows, in the same order, as `generate_shielding_list_with_labels`; what is
    held while it runs is the CHI numbers already given out, not the rows.
    """
    if count < 0 or bad_rows < 0 or bad_rows > count:
        raise ValueError("need 0 <= bad_rows <= count")
    effective = effective if effective is not None else DEFAULT_EFFECTIVE
    rng = random.Random(seed)
    councils = _allocate(count)
    rng.shuffle(councils)

    # Spread bad rows through the file: the i-th falls somewhere in the i-th of
    # `bad_rows` equal stretches, so they neither cluster nor sit at fixed places.
    bad_at: dict[int, str] = {}
    for i in range(bad_rows):
        start, end = -(-i * count // bad_rows), -(-(i + 1) * count // bad_rows)
        bad_at[rng.randrange(start, end)] = BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)]

    taken: set[str] = set()
    for index, council in enumerate(councils):
        row, female = _good_row(rng, council, effective, taken)
        kind = bad_at.get(index)
        if kind is not None:
            _spoil(rng, row, kind, female, taken)
        yield row, kind


def generate_shielding_list_with_labels(
    count: int = 5000, *, seed: int = 2020, bad_rows: int = 12, effective: date | None = None
) -> tuple[list[dict[str, str]], list[str | None]]:
    """Return the rows and, for each row, its bad-row kind or None if it is good."""
    rows: list[dict[str, str]] = []
    labels: list[str | None] = []
    for row, kind in iter_shielding_list(count, seed=seed, bad_rows=bad_rows, effective=effective):
        rows.append(row)
        labels.append(kind)
    return rows, labels


def generate_shielding_list(
    count: int = 5000, *, seed: int = 2020, bad_rows: int = 12, effective: date | None = None
) -> list[dict[str, str]]:
    """Return a synthetic shielding list: `count` rows, `bad_rows` of them deliberately bad."""
    rows, _ = generate_shielding_list_with_labels(
        count, seed=seed, bad_rows=bad_rows, effective=effective
    )
    return rows


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    """Write rows as a UTF-8 CSV with a header, in the column order boards use."""
    private_dir(path.parent)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
