"""Replay before release against the real stack: a candidate that suspends DSA-010 and
another that drops postcode show as flips and withheld fields, and nothing is written to
any share or audit topic while simulating."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from accord.bench.measure import Offsets
from accord.core.kafka import admin_client
from accord.core.pseudonym import person_key
from accord.core.scotland import org_id
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
    someone = person_key(settings.require_pseudonym_key(), rows[0]["chi_number"])
    # What each council holds now, as the audit index would say: everyone of theirs.
    held = {
        (
            person_key(settings.require_pseudonym_key(), row["chi_number"]),
            org_id(row["council_area"]),
        )
        for row in rows
    }
    sim = simulate(settings, serde, candidate, held=held, person=someone)
    flips = {
        (r, agreement_id, clause): c.count
        for (r, flip, agreement_id, clause), c in sim.flips.items()
        if flip == "allow→deny"
    }
    # each flip names the agreement whose deny causes it (a suspension cites no clause)
    assert flips == {
        ("city-of-edinburgh", "DSA-010", ""): 2,
        ("east-lothian", "DSA-010", ""): 2,
        ("midlothian", "DSA-010", ""): 2,
        ("west-lothian", "DSA-010", ""): 2,
    }
    assert all("DSA-010 is suspended" in c.reason for c in sim.flips.values())
    example = next(iter(sim.flips.values())).examples[0]
    assert len(example) == 64 and all(row["chi_number"] not in example for row in rows)
    # the records each council holds now would be withdrawn
    assert {k: c.count for k, c in sim.retracted.items()} == {
        (org, "DSA-010"): 2
        for org in ("city-of-edinburgh", "east-lothian", "midlothian", "west-lothian")
    }
    # one person before and after: shared now, withheld under the candidate
    council = org_id(rows[0]["council_area"])
    assert sim.person_found
    now, then = sim.person_decisions[council]
    assert now.allow and "given_name" in now.fields
    assert not then.allow and "suspended" in then.reason
    assert all(row["chi_number"] not in json.dumps(sim.as_dict()) for row in rows)

    # No data left: no topic appeared, and no list or audit record was written.
    assert hub_topics(settings) == before
    assert records_in(settings, outputs) == 0
