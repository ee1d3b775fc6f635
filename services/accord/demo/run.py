"""`accord demo`: the whole spine on synthetic data, from partner files to council lists.

Brings the stack up, writes one synthetic shielding-list file per NHS board, publishes
each as that board, runs the worker until it has caught up, then reports per council
what was shared, what was withheld and why, and what was quarantined.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.core.auditrecords import recipient_decisions
from accord.core.credentials import ADMIN, private_dir, write_private
from accord.core.errors import ConfigurationError
from accord.core.kafka import read_topic
from accord.core.pseudonym import person_key
from accord.core.scotland import COUNCIL_AREAS, HEALTH_BOARDS, org_id
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.terminal import markup_safe, plain
from accord.core.topics import (
    CASES,
    MATCH_REVIEW,
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
    Topics,
)
from accord.demo import governance
from accord.governance.opa import IsolatedOpa
from accord.ingest.publish import publish_file
from accord.ingest.validation import RowInvalid, validate_shielding_row
from accord.stack import local, processes
from accord.synthetic.people import generate_shielding_list, write_csv
from accord.synthetic.requests import (
    OUTCOME_COLUMNS,
    REQUEST_COLUMNS,
    generate_requests,
    valid_rows,
    write_rows,
)

SAMPLE_COUNCIL = "City of Edinburgh"
WORKER_LABEL = "worker matching, joining, deciding"


@dataclass
class CouncilFigures:
    residents: int = 0
    shared: int = 0
    withheld: int = 0
    quarantined: int = 0
    requests: int = 0
    cases: int = 0
    matched: int = 0
    new_people: int = 0
    reviews: int = 0
    closed: int = 0
    urgent: int = 0
    high: int = 0
    withheld_reasons: Counter[str] = field(default_factory=Counter)
    view_keys: set[str] = field(default_factory=set)


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def write_board_files(rows: list[dict[str, str]], folder: Path) -> dict[str, Path]:
    """One CSV per NHS board, as each board would extract its own list."""
    by_board: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_board[row["health_board"]].append(row)
    private_dir(folder)
    files = {}
    for board in HEALTH_BOARDS:
        path = folder / f"{org_id(board)}.csv"
        write_csv(by_board.get(board, []), path)
        files[org_id(board)] = path
    return files


def lag_bar(progress: Progress, label: str) -> Callable[[int, int], None]:
    """A progress line for the worker's catching up (records done out of the most seen)."""
    task = progress.add_task(label, total=None)
    return lambda done, most: progress.update(task, total=most, completed=done)


def latest_decisions(settings: Settings, serde: AvroSerde) -> dict[tuple[str, str], dict]:
    """The latest decision per (person key, recipient), from the audit topic."""
    latest: dict[tuple[str, str], dict] = {}
    for message in read_topic(settings, Topics(settings).audit):
        for decision in recipient_decisions(serde.decode(message.value)[1]):
            latest[(decision["subject_key"], decision["recipient"] or "")] = decision
    return latest


def shared_view(settings: Settings, serde: AvroSerde, recipient: str) -> dict[str, dict]:
    """A recipient's compacted list: the latest case per key, tombstones removed."""
    view: dict[str, dict] = {}
    for message in read_topic(settings, Topics(settings).share(recipient)):
        key = message.key.decode()
        if message.value is None:
            view.pop(key, None)
        else:
            view[key] = serde.decode(message.value)[1]
    return view


def with_demo_key(settings: Settings, console: Console) -> Settings:
    """The demo's settings with a pseudonymisation key: the one configured, or else a
    throwaway key made for the demo's synthetic data and kept beside it (0600). The demo
    is the only run that may make its own; everything else refuses to start without one."""
    try:
        settings.require_pseudonym_key()
        return settings
    except ConfigurationError:
        pass
    path = settings.state_dir / "demo" / "pseudonym-key"
    if not path.exists():
        write_private(path, secrets.token_hex(32) + "\n")
    console.print(
        f"  [yellow]no ACCORD_PSEUDONYM_KEY set: the demo uses a throwaway key of its own "
        f"({path}), for its synthetic data only[/yellow]"
    )
    return settings.model_copy(update={"pseudonym_key_file": path})


def run_demo(settings: Settings, people: int, bad_rows: int, seed: int) -> None:
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.monotonic()
    console.rule("[bold]Accord demo")
    local.up(settings, lambda line: console.print(f"  {line}"))
    print_console_sign_ins(console, settings)
    settings = with_demo_key(settings, console)
    # The demo's own OPA watches a copy of policies/, so suspending an agreement mid-demo
    # changes the copy, never the repository's files.
    policies = governance.demo_policies(settings)
    log_file = settings.state_dir / "logs" / "demo-opa.log"
    with IsolatedOpa(settings, policies, watch=True, log_file=log_file) as opa:
        console.print(f"  the demo's OPA on {opa.url} watches {policies}")
        demo_settings = settings.model_copy(update={"opa_url": opa.url})
        run_flow(console, demo_settings, policies, people, bad_rows, seed, started)


def print_console_sign_ins(console: Console, settings: Settings) -> None:
    """The console's address and the demo users' sign-ins (made on the first run)."""
    from accord.console.demo import ensure_demo_users

    console.print(
        f"  the console: {local.console_url(settings)} (the stack's certificate: "
        f"{settings.trusted_ca})"
    )
    for user in ensure_demo_users(settings):
        scope = f" for {user.org}" if user.org else ""
        console.print(
            f"    sign in as [bold]{user.username}[/bold] / {user.password}  ({user.role}{scope})"
        )


def run_flow(
    console: Console,
    settings: Settings,
    policies: Path,
    people: int,
    bad_rows: int,
    seed: int,
    started: float,
) -> None:

    rows = generate_shielding_list(people, seed=seed, bad_rows=bad_rows)
    files = write_board_files(rows, settings.state_dir / "demo")
    console.print(
        f"  generated {len(rows)} synthetic people across {len(files)} NHS boards "
        f"({bad_rows} deliberately bad rows) in {files[org_id('NHS Lothian')].parent}"
    )

    topics = Topics(settings)
    reasons: Counter[str] = Counter()
    published = 0
    requests, outcomes = generate_requests(valid_rows(rows), seed=seed)
    with progress_bar(console) as progress:
        task = progress.add_task("boards publishing their lists", total=len(rows))
        for org, path in files.items():
            report = publish_file(
                settings, org, SHIELDING_LIST, path, lambda n: progress.advance(task, n)
            )
            published += report.published
            reasons.update(report.reasons)

        folder = settings.state_dir / "demo"
        sent = sum(len(r) for r in requests.values()) + sum(len(o) for o in outcomes.values())
        task = progress.add_task("councils publishing requests", total=sent)
        for org, council_rows in requests.items():
            path = write_rows(council_rows, REQUEST_COLUMNS, folder / f"{org}-requests.csv")
            report = publish_file(
                settings, org, SUPPORT_REQUEST, path, lambda n: progress.advance(task, n)
            )
            reasons.update(report.reasons)
        for org, outcome_rows in outcomes.items():
            path = write_rows(outcome_rows, OUTCOME_COLUMNS, folder / f"{org}-outcomes.csv")
            report = publish_file(
                settings, org, SUPPORT_OUTCOME, path, lambda n: progress.advance(task, n)
            )
            reasons.update(report.reasons)
        published_requests = {org: len(r) for org, r in requests.items()}

        serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
        with processes.Workers(settings, settings.state_dir / "logs", name="demo-worker") as pool:
            pool.start()
            worker_started = time.monotonic()

            def caught_up() -> None:
                pool.wait_until_caught_up(900.0, lag_bar(progress, WORKER_LABEL))

            caught_up()
            worker_s = time.monotonic() - worker_started
            food_view = governance.view_of(
                governance.share_log(settings, serde, governance.FOOD_PARTNER)
            )
            suspension = governance.run_suspension(
                settings, serde, policies, governance.trickle_rows(seed), folder, caught_up
            )
    rows = rows + suspension.published

    decisions = latest_decisions(settings, serde)
    figures = council_figures(settings, serde, rows, decisions, published_requests)
    print_summary(console, figures, reasons)
    events = len(rows) + sent
    console.print(
        f"  the worker took {worker_s:.0f}s for {events} partner events, start-up included: "
        f"{events / worker_s:.0f} events/s through checking, matching, joining and deciding"
    )
    print_sample(console, settings, serde)
    governance.print_governance(console, settings, serde, policies, food_view, suspension, rows)
    console.print(
        f"\n  finished in {time.monotonic() - started:.0f}s; every decision is on "
        f"{topics.audit}, rejected rows on each publisher's {topics.rejects('<org>')}, "
        "uncertain matches on "
        f"{topics.internal('match.review')}"
    )


def review_counts(settings: Settings) -> Counter[str]:
    """Uncertain matches waiting for a coordinator, per council that sent the request."""
    latest: dict[bytes, dict] = {}
    for message in read_topic(settings, Topics(settings).internal(MATCH_REVIEW)):
        latest[message.key] = json.loads(message.value)
    return Counter(item["source_org"] for item in latest.values())


def closed_counts(settings: Settings) -> Counter[str]:
    """Closed cases per council (needs met, stopped shielding, opted out, merged)."""
    latest: dict[bytes, dict] = {}
    for message in read_topic(settings, Topics(settings).internal(CASES)):
        if message.value is not None:
            latest[message.key] = json.loads(message.value)
    return Counter(
        view["source"]["fields"].get("council_area")
        for view in latest.values()
        if view["status"] == "CLOSED"
    )


def council_figures(
    settings: Settings,
    serde: AvroSerde,
    rows: list[dict[str, str]],
    decisions: dict[tuple[str, str], dict],
    requests: dict[str, int],
) -> dict[str, CouncilFigures]:
    """Per council: its residents on the list, what the hub decided for that council, and
    the cases on its support list."""
    secret = settings.require_pseudonym_key()
    figures = {council: CouncilFigures() for council in COUNCIL_AREAS}
    reviews = review_counts(settings)
    closed = closed_counts(settings)
    for council, fig in figures.items():
        fig.closed = closed.get(council, 0)
        view = shared_view(settings, serde, org_id(council))
        fig.requests = requests.get(org_id(council), 0)
        fig.reviews = reviews.get(org_id(council), 0)
        for case in view.values():
            fig.cases += 1
            fig.new_people += case["agreement_id"] == "own-data"
            fig.matched += case["match_method"] == "probabilistic"
            fig.urgent += case["priority"] == "URGENT"
            fig.high += case["priority"] == "HIGH"
        fig.view_keys = set(view)
    for row in rows:
        try:
            record = validate_shielding_row(row)
        except RowInvalid:
            council = row.get("council_area", "")
            if council in figures:
                figures[council].quarantined += 1
            continue
        fig = figures[record["council_area"]]
        fig.residents += 1
        key = person_key(secret, record["chi_number"])
        if key in fig.view_keys:
            fig.shared += 1
            continue
        fig.withheld += 1
        decision = decisions.get((key, org_id(record["council_area"])))
        if record["shielding_status"] != "SHIELDING" and (decision is None or decision["allow"]):
            reason = "not shielding and no open need: no case"
        elif decision is not None and decision["reasons"]:
            reason = decision["reasons"][0]
        else:
            reason = "not decided"
        fig.withheld_reasons[reason] += 1
    return figures


def print_summary(
    console: Console, figures: dict[str, CouncilFigures], reasons: Counter[str]
) -> None:
    columns = (
        "council",
        "on list",
        "shared",
        "withheld",
        "quarantined",
        "requests",
        "cases",
        "matched",
        "new",
        "review",
        "closed",
        "urgent",
        "high",
        "main reason withheld",
    )
    table = Table(title="What each council's support list holds", title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in (columns[0], columns[-1]) else "right")
    total = CouncilFigures()
    numbers = (
        "residents",
        "shared",
        "withheld",
        "quarantined",
        "requests",
        "cases",
        "matched",
        "new_people",
        "reviews",
        "closed",
        "urgent",
        "high",
    )
    for council, fig in figures.items():
        why = fig.withheld_reasons.most_common(1)[0][0] if fig.withheld_reasons else ""
        table.add_row(council, *(str(getattr(fig, n)) for n in numbers), plain(why))
        for n in numbers:
            setattr(total, n, getattr(total, n) + getattr(fig, n))
    table.add_row("all councils", *(str(getattr(total, n)) for n in numbers), "", style="bold")
    console.print(table)
    console.print(
        "  on list: valid shielding-list rows for residents; shared: of those, on the council's "
        "list; requests: support requests the council published; cases: open cases on its list; "
        "matched: joined to a listed person without a CHI; new: requests about people not on "
        "the list (returned to the council as its own data); review: uncertain matches held for "
        "a coordinator, never merged; closed: cases whose needs were met, or whose person stopped "
        "shielding, opted out or was merged"
    )
    console.print(f"  rows quarantined: {sum(reasons.values())}")
    for reason, count in reasons.most_common():
        console.print(f"    {count:>4}  {markup_safe(reason)}")


def sample_table(view: dict[str, dict], size: int = 5) -> Table:
    """The first `size` cases of a shared view; cells are Text, never markup (they are
    other organisations' data, see core.terminal)."""
    table = Table(
        title=f"{SAMPLE_COUNCIL}'s support list: {len(view)} people (first {size})",
        title_justify="left",
    )
    columns = ("case", "name", "address", "postcode", "phone", "shielding", "agreement")
    for column in columns:
        table.add_column(column)
    for key, case in sorted(view.items())[:size]:
        table.add_row(
            plain(key[:10]),
            plain(f"{case['given_name'] or ''} {case['family_name'] or ''}".strip()),
            plain(case["address_line1"]),
            plain(case["postcode"]),
            plain(case["contact_phone"]),
            {True: "yes", False: "no"}.get(case["is_shielding"], "-"),
            plain(case["agreement_id"]),
        )
    return table


def print_sample(console: Console, settings: Settings, serde: AvroSerde, size: int = 5) -> None:
    view = shared_view(settings, serde, org_id(SAMPLE_COUNCIL))
    table = sample_table(view, size)
    console.print(table)
    if view:
        withheld = sorted({"chi_number", "clinical_risk_group", "date_of_birth"})
        console.print(f"  not in the list (not released by the agreement): {', '.join(withheld)}")
