"""Synthetic council support requests and outcomes for the demo.

Councils record requests from helplines and web forms: most give a CHI number, many do
not, and those carry the noise real forms do (nicknames, typos, Mc/Mac, short street
forms). Some requests are about people not on the shielding list. Outcomes come from the
councils and, for food deliveries in the areas it serves, from a third-sector delivery
network, keyed to the council's request id: the councils that refer requests to it in the
authority rules (`policies/authority/authority.yaml`), so that every outcome the demo
publishes comes from an organisation with the authority to report it.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from accord.core.credentials import private_dir
from accord.core.scotland import org_id
from accord.core.settings import REPO_ROOT
from accord.ingest.validation import RowInvalid, validate_shielding_row

THIRD_SECTOR = "community-food-network"
REQUEST_COLUMNS = (
    "occurred_at",
    "request_id",
    "chi_number",
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "postcode",
    "council_area",
    "contact_phone",
    "lives_alone",
    "needs",
    "urgency",
    "channel",
)
OUTCOME_COLUMNS = ("occurred_at", "request_id", "request_org", "need", "outcome")
NICKNAMES = {
    "William": "Bill",
    "Margaret": "Peggy",
    "James": "Jim",
    "Alexander": "Sandy",
    "Elizabeth": "Betty",
    "Robert": "Bob",
    "Catherine": "Kate",
    "Isabel": "Ishbel",
}
STREET_FORMS = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Terrace": "Terr"}
NEED_SETS = (
    ["FOOD"],
    ["MEDICINE"],
    ["FOOD", "MEDICINE"],
    ["SOCIAL_ISOLATION"],
    ["FINANCIAL"],
    ["WELFARE_CHECK"],
    ["FOOD", "SOCIAL_ISOLATION"],
)
START = datetime(2020, 6, 2, 9, 0, tzinfo=UTC)
AUTHORITY_RULES = REPO_ROOT / "policies" / "authority" / "authority.yaml"


def referring_councils(partner: str = THIRD_SECTOR, path: Path = AUTHORITY_RULES) -> set[str]:
    """The request owners that refer requests to `partner` under the authority rules."""
    referrals = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("referrals") or {}
    return {owner for owner, to in referrals.items() if partner in (to or ())}


def valid_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The shielding rows the hub accepted: councils raise requests about real residents."""
    valid = []
    for row in rows:
        try:
            validate_shielding_row(row)
        except RowInvalid:
            continue
        valid.append(row)
    return valid


def _typo(name: str, rng: random.Random) -> str:
    if len(name) < 4:
        return name
    i = rng.randrange(1, len(name) - 2)
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :]


def _noisy(row: dict[str, str], rng: random.Random) -> dict[str, str]:
    """How a person might appear on a web form: the same person, written differently."""
    given, family, address = row["given_name"], row["family_name"], row["address_line1"]
    kind = rng.choice(("nickname", "typo", "mac", "street", "clean"))
    if kind == "nickname" and given in NICKNAMES:
        given = NICKNAMES[given]
    elif kind == "typo":
        family = _typo(family, rng)
    elif kind == "mac" and family.startswith(("Mc", "Mac")):
        family = "Mac" + family[2:] if family.startswith("Mc") else "Mc" + family[3:]
    elif kind == "street":
        for long, short in STREET_FORMS.items():
            address = address.replace(long, short)
    return {**row, "given_name": given, "family_name": family, "address_line1": address}


class RequestMaker:
    """Makes the requests and outcomes of `generate_requests` while the list goes past.

    The draws that do not depend on anyone's row come first, as they always did: who
    on the list asks for help (one draw per listed person) and the strangers (whose
    rows borrow a listed donor's). Then each listed row is handed to `listed` in order
    and its request, if any, is made at once; `strangers` makes theirs after the last
    row and `outcomes` the outcomes. The random draws are the same, in the same order,
    so the same seed gives the same rows whether the list is held or streamed; what is
    held is a byte per listed person, the donors' rows and a short tuple per request.
    """

    def __init__(
        self,
        listed: int,
        *,
        share: float = 0.15,
        without_chi: float = 0.4,
        strangers: int = 100,
        seed: int = 2020,
    ) -> None:
        rng = self.rng = random.Random(seed)
        self.without_chi = without_chi
        self._asks = bytearray(rng.random() < share for _ in range(listed))
        self._strangers: list[tuple[int, str, str, int]] = []
        for _ in range(strangers):  # people who asked for help but are not on the list
            donor = rng.choice(range(listed))  # the same draw as choosing from the rows
            given = rng.choice(list(NICKNAMES))
            suffix = rng.choice(("Ross", "Grant", "Reid"))
            self._strangers.append((donor, given, suffix, rng.randrange(20000)))
        self._donors: dict[int, dict[str, str] | None] = {d: None for d, *_ in self._strangers}
        self._seen = 0
        self._made = 0
        # Per council org, in the order of their first request: (request id, needs, time).
        self._requests: dict[str, list[tuple[str, str, str]]] = {}

    def listed(self, row: dict[str, str]) -> tuple[str, dict[str, str]] | None:
        """(council org, request row) if the next listed person asks for help, else None."""
        index = self._seen
        if index >= len(self._asks):
            raise ValueError("more listed rows than the maker was made for")
        self._seen += 1
        if index in self._donors:
            self._donors[index] = row
        return self._request(row) if self._asks[index] else None

    def strangers(self) -> Iterator[tuple[str, dict[str, str]]]:
        """The requests of people not on the list, once every listed row has gone past."""
        if self._seen != len(self._asks):
            raise ValueError(f"{self._seen} of {len(self._asks)} listed rows seen")
        for n, (index, given, suffix, days) in enumerate(self._strangers):
            donor = self._donors[index]
            assert donor is not None
            yield self._request(
                {
                    **donor,
                    "chi_number": "",
                    "given_name": given,
                    "family_name": f"{donor['family_name']}-{suffix}",
                    "date_of_birth": (date(1940, 1, 1) + timedelta(days=days)).isoformat(),
                    "address_line1": f"{n + 1} Station Road",
                }
            )

    def _request(self, person: dict[str, str]) -> tuple[str, dict[str, str]]:
        rng, n = self.rng, self._made
        self._made += 1
        council = person["council_area"]
        org = org_id(council)
        form = (
            person
            if person["chi_number"] and rng.random() >= self.without_chi
            else _noisy(person, rng)
        )
        needs = rng.choice(NEED_SETS)
        row = {
            "occurred_at": (START + timedelta(minutes=7 * n)).isoformat(),
            "request_id": f"{org[:3].upper()}-{n:05d}",
            "chi_number": form["chi_number"] if form is person else "",
            "given_name": form["given_name"],
            "family_name": form["family_name"],
            "date_of_birth": form["date_of_birth"],
            "address_line1": form["address_line1"],
            "postcode": form["postcode"],
            "council_area": council,
            "contact_phone": form.get("contact_phone", ""),
            "lives_alone": rng.choice(("yes", "no", "")),
            "needs": ";".join(needs),
            "urgency": rng.choice(("IMMEDIATE", "WITHIN_48_HOURS", "ROUTINE", "ROUTINE")),
            "channel": rng.choice(("HELPLINE", "WEB_FORM", "REFERRAL")),
        }
        self._requests.setdefault(org, []).append(
            (row["request_id"], row["needs"], row["occurred_at"])
        )
        return org, row

    def outcomes(self) -> Iterator[tuple[str, dict[str, str]]]:
        """(publishing org, outcome row), once every request has been made: the councils'
        own, and the food network's for food requests of the councils that refer to it."""
        rng = self.rng
        referring = referring_councils()
        for org, made in self._requests.items():
            for request_id, needs, occurred_at in made:
                if rng.random() >= 0.5:
                    continue
                publisher = THIRD_SECTOR if "FOOD" in needs and org in referring else org
                at = datetime.fromisoformat(occurred_at) + timedelta(days=1)
                yield (
                    publisher,
                    {
                        "occurred_at": at.isoformat(),
                        "request_id": request_id,
                        "request_org": org if publisher != org else "",
                        "need": needs.split(";")[0],
                        "outcome": rng.choice(
                            ("DELIVERED", "DELIVERED", "NO_ANSWER", "NEEDS_MET", "REFERRED")
                        ),
                    },
                )


def generate_requests(
    shielding_rows: list[dict[str, str]],
    *,
    share: float = 0.15,
    without_chi: float = 0.4,
    strangers: int = 100,
    seed: int = 2020,
) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[dict[str, str]]]]:
    """(requests per council org, outcomes per publishing org), as CSV rows."""
    maker = RequestMaker(
        len(shielding_rows), share=share, without_chi=without_chi, strangers=strangers, seed=seed
    )
    requests: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in shielding_rows:
        if (made := maker.listed(row)) is not None:
            requests[made[0]].append(made[1])
    for org, row in maker.strangers():
        requests[org].append(row)
    outcomes: dict[str, list[dict[str, str]]] = defaultdict(list)
    for publisher, row in maker.outcomes():
        outcomes[publisher].append(row)
    return dict(requests), dict(outcomes)


def write_rows(rows: list[dict[str, str]], columns: tuple[str, ...], path: Path) -> Path:
    private_dir(path.parent)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
