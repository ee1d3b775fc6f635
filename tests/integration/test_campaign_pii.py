"""The PII campaign at CI size: the demo's mix for a few hundred people through files,
`accord publish` processes, a gateway process and a real worker, then every log line,
Kafka key and header, audit record, rejects record and the coordinator's and auditor's
commands scanned for the input's CHI numbers, names, phones and postcodes (real stack).

`accord campaign pii` runs the same at full size (5,000 people)."""

from __future__ import annotations

import sys

import pytest

from accord.campaign.pii import REQUIRED_PLACES, run_campaign

pytestmark = [pytest.mark.integration, pytest.mark.campaign]
PEOPLE = 300
SEED = 3


def test_no_identifier_of_the_input_where_it_must_not_be(stack):
    report = run_campaign(
        stack, people=PEOPLE, seed=SEED, echo=lambda line: print(line, file=sys.stderr)
    )
    for line in report.lines():
        print(line, file=sys.stderr)
    assert report.needles["chi"] >= PEOPLE and report.needles["name"] > 50
    assert report.needles["phone"] > 100 and report.needles["postcode"] > 100
    for place in REQUIRED_PLACES:
        assert report.places[place].scanned > 0, place
    assert report.places["audit records"].scanned > PEOPLE
    assert report.places["kafka keys"].scanned > 2 * PEOPLE
    assert report.crashes == []
    assert report.hits == 0
    assert report.passed
