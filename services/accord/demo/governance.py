"""The demo's governance part: the food partner's minimised list, retention, a live
suspension of its agreement, and `who-received` for one sample person.

The demo's OPA serves a copy of policies/ under the state dir, so suspending an agreement
there leaves the repository's files untouched.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from accord.core.kafka import read_topic
from accord.core.pseudonym import person_key
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.terminal import plain
from accord.core.topics import SHIELDING_LIST, Topics
from accord.governance import audit_index
from accord.governance.retention import check_broker
from accord.ingest.publish import publish_file
from accord.ingest.validation import RowInvalid, validate_shielding_row
from accord.pipeline.retention import agreements_from_dir
from accord.synthetic.people import generate_shielding_list, write_csv

FOOD_PARTNER = "community-food-network"
FOOD_AGREEMENT = "DSA-015"
FOOD_AREAS = ("City of Edinburgh", "Midlothian")
PROVIDER = "nhs-lothian"
COUNCIL = "city-of-edinburgh"
# What the food partner must never see in a SupportCase (DSA-015, ethics rule E1).
NEVER_TO_FOOD = ("is_shielding", "date_of_birth", "council_area")


def demo_policies(settings: Settings) -> Path:
    """A fresh copy of policies/ for the demo's own OPA to watch."""
    copy = settings.state_dir / "demo" / "policies"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(settings.policies_dir, copy)
    return copy


def suspend(policies: Path, agreement_id: str, reason: str) -> float:
    """Set the agreement's status to suspended in the copy (atomically); the wall time."""
    path = policies / "agreements" / f"{agreement_id}.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("  status: active", f'  status: suspended\n  status_reason: "{reason}"', 1)
    staged = path.with_suffix(".tmp")
    staged.write_text(text, encoding="utf-8")
    staged.replace(path)
    return time.time()


@dataclass
class Share:
    """One record of a share topic: a case (value) or a tombstone (None)."""

    key: str
    at: float  # broker timestamp, seconds
    case: dict[str, Any] | None


def share_log(settings: Settings, serde: AvroSerde, recipient: str) -> list[Share]:
    log = []
    for message in read_topic(settings, Topics(settings).share(recipient)):
        case = serde.decode(message.value)[1] if message.value is not None else None
        log.append(Share(message.key.decode(), message.timestamp / 1000, case))
    return log


def view_of(log: list[Share]) -> dict[str, dict[str, Any]]:
    view: dict[str, dict[str, Any]] = {}
    for share in log:
        if share.case is None:
            view.pop(share.key, None)
        else:
            view[share.key] = share.case
    return view


def trickle_rows(seed: int, count: int = 40) -> list[dict[str, str]]:
    """Newly listed Lothian residents of the food partner's areas, published one by one
    while the agreement is suspended."""
    rows = []
    for row in generate_shielding_list(1500, seed=seed + 1, bad_rows=0):
        if row["council_area"] in FOOD_AREAS and row["shielding_status"] == "SHIELDING":
            rows.append(row)
    return rows[:count]


def publish_one_by_one(
    settings: Settings, rows: list[dict[str, str]], folder: Path, stop: threading.Event
) -> list[dict[str, str]]:
    published = []
    for i, row in enumerate(rows):
        if stop.is_set():
            break
        path = folder / f"trickle-{i}.csv"
        write_csv([row], path)
        publish_file(settings, PROVIDER, SHIELDING_LIST, path)
        published.append(row)
        time.sleep(0.15)
    return published


@dataclass
class Suspension:
    changed_at: float
    food_before: int
    council_before: int
    food_after: int = 0
    council_after: int = 0
    tombstones: int = 0
    last_tombstone_s: float | None = None
    last_share_s: float | None = None
    shares_after: int = 0
    published: list[dict[str, str]] = field(default_factory=list)


def run_suspension(
    settings: Settings,
    serde: AvroSerde,
    policies: Path,
    rows: list[dict[str, str]],
    folder: Path,
    wait_for_worker: Callable[[], None],
) -> Suspension:
    """With the worker running and caught up: publish a trickle of new Lothian residents,
    suspend DSA-015 in the middle of it, let the worker catch up, and measure."""
    food_before = len(view_of(share_log(settings, serde, FOOD_PARTNER)))
    council_before = len(view_of(share_log(settings, serde, COUNCIL)))
    stop = threading.Event()
    published: list[dict[str, str]] = []
    publisher = threading.Thread(
        target=lambda: published.extend(publish_one_by_one(settings, rows, folder, stop)),
        daemon=True,
    )
    publisher.start()
    time.sleep(2.0)  # a few shares under the active agreement first
    changed_at = suspend(policies, FOOD_AGREEMENT, "suspended in the demo by the IG officer")
    publisher.join(timeout=60)
    stop.set()
    wait_for_worker()
    # The worker re-decides every case it holds after a policy change (its sweep), which
    # the consumer lag does not show: wait until the partner's list is empty.
    deadline = time.monotonic() + 300
    while True:
        food_log = share_log(settings, serde, FOOD_PARTNER)
        if not view_of(food_log) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    result = Suspension(changed_at, food_before, council_before, published=published)
    result.food_after = len(view_of(food_log))
    result.council_after = len(view_of(share_log(settings, serde, COUNCIL)))
    shares = [
        s.case["updated_at"].timestamp()
        for s in food_log
        if s.case is not None and s.case["agreement_id"] == FOOD_AGREEMENT
    ]
    tombstones = [s.at for s in food_log if s.case is None and s.at >= changed_at]
    result.tombstones = len(tombstones)
    result.last_tombstone_s = max(tombstones) - changed_at if tombstones else None
    result.last_share_s = max(shares) - changed_at if shares else None
    result.shares_after = sum(t > changed_at for t in shares)
    return result


def food_partner_fields(view: dict[str, dict[str, Any]]) -> tuple[list[str], int]:
    """The source fields the food partner received, and how many cases carry anything
    it must never see."""
    released = sorted({name for case in view.values() for name in case["fields_released"]})
    leaks = sum(any(case[name] is not None for name in NEVER_TO_FOOD) for case in view.values())
    return released, leaks


def sample_person(
    settings: Settings, rows: list[dict[str, str]], food_keys: set[str]
) -> tuple[str, str] | None:
    """A synthetic person the food partner received: (CHI, pseudonymous key)."""
    secret = settings.require_pseudonym_key()
    for row in rows:
        try:
            record = validate_shielding_row(row)
        except RowInvalid:
            continue
        key = person_key(secret, record["chi_number"])
        if key in food_keys:
            return record["chi_number"], key
    return None


def deny_reasons_since(db: Any, recipient: str, since: float) -> list[tuple[str, str, str, int]]:
    """(reasons, clauses, principles, count) of denials to a recipient since a time."""
    return db.execute(
        "SELECT reasons, clauses, principles, COUNT(*) FROM decisions "
        "WHERE recipient = ? AND allow = 0 AND decided_at >= ? "
        "GROUP BY reasons, clauses, principles ORDER BY COUNT(*) DESC LIMIT 2",
        (recipient, int(since * 1000)),
    ).fetchall()


def print_governance(
    console: Console,
    settings: Settings,
    serde: AvroSerde,
    policies: Path,
    food_view: dict[str, dict[str, Any]],
    suspension: Suspension,
    rows: list[dict[str, str]],
) -> None:
    console.rule("[bold]Governance")
    released, leaks = food_partner_fields(food_view)
    console.print(
        f"  {FOOD_AGREEMENT}: NHS Lothian -> {FOOD_PARTNER} (third sector; residents of "
        f"{' and '.join(FOOD_AREAS)}), for food deliveries"
    )
    console.print(
        f"    before the suspension it held {len(food_view)} people: "
        f"{', '.join(released)} and needs"
    )
    console.print(
        f"    cases carrying is_shielding, date of birth or council area: {leaks} of "
        f"{len(food_view)} (clinical detail is never in a SupportCase)"
    )

    agreements = agreements_from_dir(policies)
    checks = [c for c in check_broker(settings, agreements) if not c.uncovered]
    periods = sorted({(c.wanted.days, c.recipient) for c in checks if c.wanted})
    food_days = next((d for d, org in periods if org == FOOD_PARTNER), None)
    console.print(
        f"  retention: {sum(c.ok for c in checks)} of {len(checks)} share topics follow their "
        f"agreements (cleanup.policy=compact,delete; {FOOD_PARTNER} {food_days} days, "
        "councils 365 days); `accord policy retention` checks them"
    )

    s = suspension
    changed = datetime.fromtimestamp(s.changed_at, UTC)
    console.print(
        f"  {FOOD_AGREEMENT} suspended at {changed:%H:%M:%S.%f}"[:-3]
        + f"Z (status: suspended, in the demo's copy of policies/ that its OPA watches; "
        f"{len(s.published)} new Lothian residents published one by one around the change)"
    )
    console.print(
        f"    {FOOD_PARTNER}: {s.food_before} people before, {s.food_after} after; "
        f"{s.tombstones} tombstones"
        + (
            f", the last {s.last_tombstone_s:.2f} s after the change"
            if s.last_tombstone_s is not None
            else ""
        )
    )
    if s.last_share_s is not None:
        when = "after" if s.last_share_s > 0 else "before"
        console.print(
            f"    last share under {FOOD_AGREEMENT}: {abs(s.last_share_s):.2f} s {when} the "
            f"change; {s.shares_after} shares after it"
        )
    console.print(
        f"    {COUNCIL} (DSA-010, still active): {s.council_before} people before, "
        f"{s.council_after} after"
    )

    audit_index.catch_up(settings, serde)
    db = audit_index.connect(audit_index.index_path(settings))
    try:
        for reasons, clauses, principles, count in deny_reasons_since(
            db, FOOD_PARTNER, s.changed_at
        ):
            cited = ", ".join(audit_index.split(principles)) or "-"
            console.print(plain(f"    audit: {count} x {audit_index.split(reasons)[0]!r}"))
            console.print(
                plain(
                    f"           principles: {cited}; clauses: "
                    f"{', '.join(audit_index.split(clauses)) or '-'}"
                )
            )
        sample = sample_person(settings, rows, set(food_view))
        if sample is None:
            return
        _, key = sample
        receipts, denied = audit_index.who_received(db, key)
    finally:
        db.close()
    console.print(
        "  accord audit who-received   (one synthetic person this demo generated; the CHI is "
        "given at a hidden prompt or on stdin, never on the command line)"
    )
    for line in audit_index.receipt_lines(key, receipts, denied):
        console.print(plain(f"    {line}"))
