"""`accord campaign pii`: the demo's flow, then every place personal data must not be is
scanned for the input's CHI numbers, names, phones and postcodes.

The flow: the demo's mix (`faults.generate_input`: every board's shielding list with its
bad rows, councils' requests, about half without a CHI, and outcomes) on a deployment of
the campaign's own; some files published by `accord publish` processes, the rest through
the same code in-process, one council's requests through a real gateway process; a real
`accord worker` until it has caught up; then `accord cases`, `accord audit who-received`
(the CHI on stdin) and `accord audit agreement` as processes.

Scanned, with what may not be there:

* every log line under the state dir (worker, gateway, registry, OPA and Kafka server
  logs, and the logs the other campaigns left), and the commands' own stdout and stderr:
  CHI numbers, names, phones, postcodes;
* every Kafka key and header on every topic of the deployment (partner, hub, share,
  rejects, audit, quarantine, the worker's changelogs): the same;
* every audit record, every field: the same;
* rejects and quarantine records, every field but `original`: the same. `original` is the
  rejected record as the publisher sent it, kept so that the publisher can fix it; the
  rejects topic is readable by that publisher alone (and the hub), so it may hold
  personal data, and is not scanned;
* `accord audit who-received` and `accord audit agreement`: the same;
* `accord cases`: CHI numbers only. The command prints a council's list, whose names,
  addresses, postcodes and phones its agreements release to it (and the synthetic names
  repeat across councils, so a name says nothing about whose it is).

Share topics hold personal data by design; their values are not scanned, their keys and
headers are.

Names are matched as whole words, case-insensitively, on each part of a given or family
name of three letters or more, except parts in `COMMON_WORDS` (words the hub's and
Kafka's own messages use, see there).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.campaign.common import Echo, deployment, gateway_process, with_campaign_key
from accord.campaign.faults import generate_input
from accord.core.credentials import ADMIN, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client, read_topic
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, SUPPORT_REQUEST, Topics
from accord.ingest.publish import publish_file
from accord.stack import processes

# Name parts that are also what the hub calls its own things, so that a hit on them says
# nothing about a person: "angus" is a council and the organisation id of its principal,
# topics, subjects and audit records (and a given name of the synthetic data). Found by
# running the campaign with this set empty and looking at what matched where.
COMMON_WORDS: frozenset[str] = frozenset({"angus"})
KINDS = ("chi", "name", "phone", "postcode")

_NAME_PART = re.compile(r"[^\W\d_]+")
# Words of scanned text, as \b delimits them: "x_oSs69Q" (a random id) is one word.
_WORD = re.compile(r"\w+")
_CHI = re.compile(r"(?<!\d)\d{10}(?!\d)")
_PHONE = re.compile(r"\+?\(?\d[\d\s().\-]{7,20}\d")
_POSTCODE = re.compile(
    r"(?<![A-Za-z0-9])([A-Za-z]{1,2}\d[A-Za-z\d]?) ?(\d[A-Za-z]{2})(?![A-Za-z0-9])"
)


def phone_key(text: str) -> str | None:
    """A UK number's national significant number, however it is written."""
    digits = re.sub(r"\D", "", text.replace("(0)", ""))
    if digits.startswith("0044"):
        digits = digits[4:]
    elif digits.startswith("44") and text.lstrip().startswith("+"):
        digits = digits[2:]
    digits = digits.removeprefix("0")
    return digits if 9 <= len(digits) <= 10 else None


def postcode_key(text: str) -> str:
    return re.sub(r"\s+", "", text).upper()


@dataclass
class Needles:
    """What to look for: the input's identifiers, in the forms they are matched in."""

    chis: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    postcodes: set[str] = field(default_factory=set)

    def add(self, row: dict[str, str]) -> None:
        chi = re.sub(r"\D", "", row.get("chi_number") or "")
        if len(chi) == 10:
            self.chis.add(chi)
        for name in (row.get("given_name"), row.get("family_name")):
            for part in _NAME_PART.findall((name or "").casefold()):
                if len(part) >= 3 and part not in COMMON_WORDS:
                    self.names.add(part)
        phone = phone_key(row.get("contact_phone") or "")
        if phone:
            self.phones.add(phone)
        postcode = row.get("postcode") or ""
        if _POSTCODE.fullmatch(postcode.strip()):
            self.postcodes.add(postcode_key(postcode))

    def hits(self, text: str, kinds: Iterable[str] = KINDS) -> Counter[str]:
        """How many of each kind of identifier the text holds."""
        found: Counter[str] = Counter()
        if "chi" in kinds:
            found["chi"] += sum(1 for m in _CHI.findall(text) if m in self.chis)
        if "name" in kinds:
            found["name"] += sum(1 for w in _WORD.findall(text.casefold()) if w in self.names)
        if "phone" in kinds:
            found["phone"] += sum(1 for m in _PHONE.findall(text) if phone_key(m) in self.phones)
        if "postcode" in kinds:
            found["postcode"] += sum(
                1 for a, b in _POSTCODE.findall(text) if postcode_key(a + b) in self.postcodes
            )
        return +found

    @classmethod
    def of_files(cls, paths: Iterable[Path]) -> Needles:
        needles = cls()
        for path in paths:
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    needles.add(row)
        return needles


@dataclass
class Place:
    scanned: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    where: Counter[str] = field(default_factory=Counter)  # file or topic -> hits


@dataclass
class Report:
    people: int
    seed: int
    needles: dict[str, int] = field(default_factory=dict)
    places: dict[str, Place] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def place(self, name: str) -> Place:
        return self.places.setdefault(name, Place())

    @property
    def hits(self) -> int:
        """Hits where identifiers must not be (controls, where they may be, left out)."""
        return sum(sum(p.hits.values()) for name, p in self.places.items() if not is_control(name))

    @property
    def control_hits(self) -> int:
        return sum(sum(p.hits.values()) for name, p in self.places.items() if is_control(name))

    @property
    def passed(self) -> bool:
        scanned = all(self.places.get(name, Place()).scanned for name in REQUIRED_PLACES)
        # The scanner must find what is there where identifiers may be, or it proves nothing.
        return self.hits == 0 and self.control_hits > 0 and not self.crashes and scanned

    def as_json(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "seed": self.seed,
            "identifiers_sought": self.needles,
            "places": {
                name: {
                    "scanned": place.scanned,
                    "hits": dict(place.hits),
                    "hits_where": dict(place.where.most_common(10)),
                }
                for name, place in self.places.items()
            },
            "hits": self.hits,
            "control_hits": self.control_hits,
            "crashes": self.crashes,
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
        }

    def lines(self) -> list[str]:
        out = [
            f"seed {self.seed}, {self.people} people; identifiers sought: "
            + ", ".join(f"{k} {v}" for k, v in self.needles.items()),
        ]
        for name, place in self.places.items():
            hits = sum(place.hits.values())
            detail = ", ".join(f"{k} {v}" for k, v in place.hits.items())
            out.append(
                f"{name}: {place.scanned} scanned, {hits} hits" + (f" ({detail})" * bool(hits))
            )
            out.extend(f"    in {where}: {n}" for where, n in place.where.most_common(5))
        out.append(f"crashes: {len(self.crashes)}" + "".join(f"; {c}" for c in self.crashes))
        out.append(f"hits where they must not be: {self.hits}")
        out.append(f"hits where they may be (controls: the scan sees them): {self.control_hits}")
        out.append(f"{self.seconds:.0f}s")
        out.append("PASS" if self.passed else "FAIL")
        return out


CONTROL = "control: "


def is_control(place: str) -> bool:
    return place.startswith(CONTROL)


REQUIRED_PLACES = (
    "log lines",
    "command output lines",
    "kafka keys",
    "kafka headers",
    "audit records",
    "rejects records",
    "accord cases lines (CHI only)",
    "who-received lines",
    "audit agreement lines",
)


def scan_text(
    report: Report,
    needles: Needles,
    place: str,
    where: str,
    lines: Iterable[str],
    kinds: Iterable[str] = KINDS,
) -> None:
    target = report.place(place)
    for line in lines:
        target.scanned += 1
        found = needles.hits(line, tuple(kinds))
        if found:
            target.hits.update(found)
            target.where[where] += sum(found.values())


def log_files(state_dir: Path) -> Iterator[Path]:
    """Every log under the state dir. Kafka's directory is not walked: it holds records
    (segments named `*.log`), and the broker removes deleted topics' folders meanwhile."""
    found = []
    for folder, subfolders, files in os.walk(state_dir):  # a folder gone meanwhile: skipped
        if Path(folder) == state_dir:
            subfolders[:] = [name for name in subfolders if name != "kafka"]
        found += [Path(folder) / name for name in files if name.endswith(".log")]
    for path in sorted(found):
        if path.is_file():
            yield path


def run_command(
    settings: Settings, args: list[str], folder: Path, report: Report, stdin: str | None = None
) -> str:
    """An `accord` command as its own process, as an operator types it; its stdout and
    stderr are kept for the scan."""
    env = {**processes.worker_env(settings), "ACCORD_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "accord", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    name = "-".join(a for a in args[:2])
    private_dir(folder)
    (folder / f"{name}-{len(list(folder.iterdir()))}.out").write_text(result.stdout + result.stderr)
    if result.returncode not in (0,):
        report.crashes.append(f"accord {' '.join(args[:2])} exited {result.returncode}")
    if "Traceback" in result.stderr:
        report.crashes.append(f"accord {' '.join(args[:2])} printed a traceback")
    return result.stdout + result.stderr


def scan_kafka(settings: Settings, needles: Needles, report: Report) -> None:
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    topics = Topics(settings)
    admin = admin_client(settings)
    try:
        names = sorted(
            t
            for t in admin.list_topics()
            if t.startswith(settings.topic_prefix) or t.startswith(settings.worker_group)
        )
    finally:
        admin.close()
    for name in names:
        is_audit = name == topics.audit
        is_rejects = topics.parse_rejects(name) is not None or name == topics.quarantine
        for message in read_topic(settings, name, idle_timeout_s=2.0, max_wait_s=600.0):
            if message.key is not None:
                key = message.key.decode("utf-8", "replace")
                scan_text(report, needles, "kafka keys", name, [key])
            for header, value in message.headers or []:
                text = f"{header}={(value or b'').decode('utf-8', 'replace')}"
                scan_text(report, needles, "kafka headers", name, [text])
            if message.value is None or not (is_audit or is_rejects):
                continue
            record = dict(serde.decode(message.value)[1])
            if is_rejects:
                original = record.pop("original", None) or b""  # the publisher's, for it alone
                control = f"{CONTROL}rejects originals (may hold them)"
                scan_text(report, needles, control, name, [original.decode("utf-8", "replace")])
            text = json.dumps(record, default=str, ensure_ascii=False)
            place = "audit records" if is_audit else "rejects records"
            scan_text(report, needles, place, name, [text])


def run_campaign(
    settings: Settings,
    *,
    people: int = 5000,
    seed: int = 2020,
    keep_topics: bool = False,
    timeout_s: float = 1800.0,
    echo: Echo = lambda line: None,
) -> Report:
    began = time.monotonic()
    settings = with_campaign_key(settings, echo)
    report = Report(people, seed)
    with deployment(settings, "p", keep=keep_topics) as scoped:
        folder = settings.state_dir / "campaign" / f"pii-{scoped.topic_prefix.rstrip('.')}"
        data = generate_input(people, seed, folder / "input")
        needles = Needles.of_files(path for _, _, path in data.files)
        report.needles = {
            "chi": len(needles.chis),
            "name": len(needles.names),
            "phone": len(needles.phones),
            "postcode": len(needles.postcodes),
        }
        echo(
            f"{people} people: {data.requests} requests, {data.outcomes} outcomes; sought "
            + ", ".join(f"{k} {v}" for k, v in report.needles.items())
        )
        outputs = folder / "outputs"
        worker = processes.spawn_worker(scoped, folder / "worker.log")
        try:
            publish_all(scoped, data.files, folder, outputs, report, echo)
            try:
                processes.wait_until_caught_up(scoped, timeout_s, workers=[worker])
            except InfrastructureError as exc:
                report.crashes.append(str(exc)[:300])
        finally:
            processes.stop_worker(worker)
        echo("worker caught up; running the coordinator's and the auditor's commands")
        cli_commands(scoped, data.files, folder, outputs, needles, report)
        echo("scanning")
        for path in log_files(settings.state_dir):
            with path.open(errors="replace") as handle:
                scan_text(
                    report, needles, "log lines", str(path.relative_to(settings.state_dir)), handle
                )
        for path in sorted(outputs.glob("*.out")):
            if path.name.startswith(("cases-", "audit-")):
                continue
            scan_text(
                report,
                needles,
                "command output lines",
                path.name,
                path.read_text(errors="replace").splitlines(),
            )
        scan_kafka(scoped, needles, report)
    report.seconds = time.monotonic() - began
    return report


# Files published by `accord publish` processes; the rest through the same code in-process.
PROCESS_PUBLISHED = 3


def publish_all(
    settings: Settings,
    files: list[tuple[str, str, Path]],
    folder: Path,
    outputs: Path,
    report: Report,
    echo: Echo,
) -> None:
    by_process = [f for f in files if f[1] == SHIELDING_LIST][:PROCESS_PUBLISHED]
    over_http = next(f for f in files if f[1] == SUPPORT_REQUEST)
    for org, dataset, path in by_process:
        run_command(settings, ["publish", "--as", org, "-d", dataset, str(path)], outputs, report)
    for org, dataset, path in files:
        if (org, dataset, path) in by_process or (org, dataset, path) == over_http:
            continue
        try:
            publish_file(settings, org, dataset, path)
        except Exception as exc:
            report.crashes.append(f"publish {dataset}: {type(exc).__name__}")
    org, dataset, path = over_http
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]
    with gateway_process(settings, folder / "gateway") as gateway:
        token = gateway.token(org)
        for start in range(0, len(rows), 500):
            body = json.dumps(rows[start : start + 500]).encode()
            response = gateway.post(token, dataset, body)
            if response.status_code != 200:
                report.crashes.append(f"gateway answered {response.status_code}")
        if gateway.process.poll() is not None:
            report.crashes.append(f"the gateway exited with code {gateway.process.returncode}")
    echo(
        f"published {len(files)} files ({len(by_process)} by `accord publish` processes, "
        f"{org}'s {len(rows)} requests over HTTP)"
    )


def cli_commands(
    settings: Settings,
    files: list[tuple[str, str, Path]],
    folder: Path,
    outputs: Path,
    needles: Needles,
    report: Report,
) -> None:
    from accord.core.scotland import COUNCIL_AREAS

    for council in ("City of Edinburgh", "Fife", COUNCIL_AREAS[0]):
        text = run_command(settings, ["cases", "--council", council, "-n", "0"], outputs, report)
        lines = text.splitlines()
        scan_text(report, needles, "accord cases lines (CHI only)", council, lines, kinds=("chi",))
        control = f"{CONTROL}accord cases names, phones, postcodes (released)"
        scan_text(report, needles, control, council, lines, kinds=("name", "phone", "postcode"))
    board_list = next(path for _, dataset, path in files if dataset == SHIELDING_LIST)
    with board_list.open(newline="", encoding="utf-8") as handle:
        chis = [row["chi_number"] for row in csv.DictReader(handle) if _valid_chi(row)][:3]
    for chi in chis:
        text = run_command(settings, ["audit", "who-received"], outputs, report, stdin=chi + "\n")
        scan_text(report, needles, "who-received lines", "who-received", text.splitlines())
    agreements = sorted(p.stem for p in (settings.home / "policies" / "agreements").glob("*.yaml"))
    for agreement in agreements[:4]:
        text = run_command(settings, ["audit", "agreement", agreement], outputs, report)
        scan_text(report, needles, "audit agreement lines", agreement, text.splitlines())


def _valid_chi(row: dict[str, str]) -> bool:
    from accord.ingest.validation import RowInvalid, validate_chi

    try:
        validate_chi(row.get("chi_number") or "")
    except RowInvalid:
        return False
    return True
