"""`accord bench --policy-reads`: what naming the policy revision costs the gate, side by side.

The gate's policy work for one join batch (two queries of 50 records: a board's entries
and a council's requests), both ways, on two OPAs of the hub started alike, alternating
round by round (A B, then B A) so that the machine's load falls on both:

    stamped    what the worker does: `<package>.answer` returns the decisions with the
               rules' stamp and the agreements from one evaluation
    unstamped  what it does when the stamp is stale (and did before the stamp): the
               decisions, then the rules' text (with its syntax trees) and the agreements
               read around them

Reports the per-batch time (p50, p90, mean) and each as a ratio of `unstamped`.
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accord.bench.measure import percentile
from accord.core.policy import PolicyClient, opa_token
from accord.core.settings import Settings
from accord.governance.opa import IsolatedOpa
from accord.governance.stamp import STAMP_FILE

MODES = ("stamped", "unstamped")
RECORDS = 50


def batch_queries(records: int = RECORDS) -> list[tuple[dict[str, Any], str]]:
    """A join batch's queries: a board's shielding entries and a council's own requests."""
    fields = {
        "given_name": "A",
        "family_name": "B",
        "postcode": "EH1 1AA",
        "council_area": "city-of-edinburgh",
        "date_of_birth": "1950-01-01",
    }
    rows = [
        {"record_id": f"r{i}", "subject_key": f"k{i}", "fields": fields} for i in range(records)
    ]
    entries = {
        "source_org": "nhs-lothian",
        "dataset": "shielding-list",
        "purpose": "shielding-support",
        "records": rows,
    }
    requests = dict(entries, source_org="city-of-edinburgh", dataset="support-request")
    return [(entries, "accord.sharing"), (requests, "accord.own_data")]


def stale_copy(policies: Path, into: Path) -> Path:
    """A copy of `policies` whose rules' stamp names no text."""
    copy = into / "policies"
    shutil.copytree(policies, copy)
    stamp = copy / STAMP_FILE
    stamp.write_text(
        re.sub(r'"sha256:[0-9a-f]{64}"', '"sha256:' + "0" * 64 + '"', stamp.read_text())
    )
    return copy


async def run(settings: Settings, rounds: int, say: Callable[[str], None]) -> dict[str, list]:
    queries = batch_queries()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(dir=settings.state_dir) as scratch:
        folders = {
            "stamped": settings.policies_dir,
            "unstamped": stale_copy(settings.policies_dir, Path(scratch)),
        }
        with (
            IsolatedOpa(settings, folders["stamped"]) as a,
            IsolatedOpa(settings, folders["unstamped"]) as b,
        ):
            token = opa_token(settings)
            async with (
                PolicyClient(a.url, token=token) as pa,
                PolicyClient(b.url, token=token) as pb,
            ):
                clients = {"stamped": pa, "unstamped": pb}
                for mode, client in clients.items():
                    await client.decide_all_with_revision(queries, 0.1)  # warm, and the path
                    if client.stamped != (mode == "stamped"):
                        raise RuntimeError(f"the {mode} OPA was read the other way")
                for round_number in range(rounds):
                    order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
                    for mode in order:
                        began = time.perf_counter()
                        await clients[mode].decide_all_with_revision(queries, 0.1)
                        times[mode].append((time.perf_counter() - began) * 1000)
                    if (round_number + 1) % 50 == 0:
                        say(f"policy reads: {round_number + 1}/{rounds} rounds")
    return times


def report(times: dict[str, list[float]]) -> list[str]:
    def figures(mode: str) -> tuple[float, float, float]:
        values = sorted(times[mode])
        return percentile(values, 0.5), percentile(values, 0.9), statistics.mean(values)

    base = figures("unstamped")
    lines = [
        f"policy reads per join batch (2 queries of {RECORDS} records), "
        f"{len(times['stamped'])} rounds:",
        f"  {'mode':<10} {'p50 ms':>8} {'x':>6} {'p90 ms':>8} {'x':>6} {'mean ms':>8} {'x':>6}",
    ]
    for mode in MODES:
        p50, p90, mean = figures(mode)
        lines.append(
            f"  {mode:<10} {p50:>8.1f} {p50 / base[0]:>6.2f} {p90:>8.1f} {p90 / base[1]:>6.2f} "
            f"{mean:>8.1f} {mean / base[2]:>6.2f}"
        )
    return lines
