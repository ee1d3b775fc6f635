"""Replay before release against the real stack: a candidate that suspends DSA-010 and
another that drops postcode show as flips and withheld fields, and nothing is written to
any share or audit topic while simulating."""

from __future__ import annotations

import shutil
import uuid

import pytest

from accord.bench.measure import Offsets
from accord.core.kafka import admin_client
from accord.core.topics import Topics
from accord.governance.simulate import simulate
from accord.ingest.publish import publish_file
from accord.synthetic.people import write_csv
from accord.synthetic.records import lothian_people

pytestmark = pytest.mark.integration


def hub_topics(settings) -> set[str]:
    admin = admin_client(settings)
    try:
        return {t for t in admin.list_topics() if t.startswith(settings.topic_prefix)}
    finally:
        admin.close()


def records_in(settings, topics: list[str]) -> int:
    offsets = Offsets(settings)
    try:
        return offsets.records(topics)
    finally:
        offsets.close()


@pytest.fixture
def candidate(tmp_path, stack):
    copy = tmp_path / "candidate"
    shutil.copytree(stack.policies_dir, copy)
    return copy


def test_simulation_reports_flips_and_fields_and_writes_nothing(
    settings, serde, candidate, tmp_path
):
    rows = lothian_people(8)  # two in each of Lothian's four councils
    path = tmp_path / f"lothian-{uuid.uuid4().hex[:6]}.csv"
    write_csv(rows, path)
    assert publish_file(settings, "nhs-lothian", "shielding-list", path).published == 8
    before = hub_topics(settings)
    # The administrator made every list and the audit ahead of time; all are empty.
    outputs = [t for t in before if ".share." in t or t == Topics(settings).audit]
    assert Topics(settings).audit in outputs and len(outputs) > 1
    assert records_in(settings, outputs) == 0

    agreement = candidate / "agreements" / "DSA-010.yaml"
    text = agreement.read_text()
    agreement.write_text(text.replace("postcode, ", ""))
    sim = simulate(settings, serde, candidate)
    assert sim.records == 8 and sim.skipped == 0
    assert sim.decisions == 40  # 8 people x (4 councils + the food partner, DSA-015)
    withheld = {(r, n): c for (r, n, kind), c in sim.fields.items() if kind == "newly withheld"}
    assert set(withheld) == {
        (org, "postcode")
        for org in ("city-of-edinburgh", "east-lothian", "midlothian", "west-lothian")
    }
    assert all(c.count == 2 and len(c.examples) == 2 for c in withheld.values())
    assert not sim.flips

    agreement.write_text(text.replace("status: active", "status: suspended"))
    sim = simulate(settings, serde, candidate)
    flips = {r: c.count for (r, flip), c in sim.flips.items() if flip == "allow→deny"}
    assert flips == {
        "city-of-edinburgh": 2,
        "east-lothian": 2,
        "midlothian": 2,
        "west-lothian": 2,
    }
    example = next(iter(sim.flips.values())).examples[0]
    assert len(example) == 64 and all(row["chi_number"] not in example for row in rows)

    # No data left: no topic appeared, and no list or audit record was written.
    assert hub_topics(settings) == before
    assert records_in(settings, outputs) == 0
