"""The bad-input campaign at CI size: about 6,000 generated bad records through CSV, JSON
Lines, .xlsx, a real gateway and raw Kafka frames, with known good records interleaved,
while a real `accord worker` runs (real stack).

`accord campaign bad-input` runs the same at full size (100,000 records)."""

from __future__ import annotations

import sys

import pytest

from accord.campaign.bad_input import KINDS, WAYS, run_campaign

pytestmark = [pytest.mark.integration, pytest.mark.campaign]
RECORDS = 6000
SEED = 7


def test_every_bad_record_is_rejected_with_a_reason_and_every_good_one_shared(stack):
    figures = run_campaign(
        stack, records_count=RECORDS, seed=SEED, echo=lambda line: print(line, file=sys.stderr)
    )
    for line in figures.lines():
        print(line, file=sys.stderr)
    assert figures.bad >= RECORDS
    assert set(figures.sent) == set(WAYS) and set(figures.kinds) == set(KINDS)
    assert all(figures.good[way] >= 10 for way in WAYS)
    assert figures.crashes == []
    assert figures.good_lost == 0
    assert figures.unaccounted == 0 and figures.reasonless == 0
    assert figures.in_rejects + figures.at_door == figures.bad
    assert figures.bad_shared == 0
    # Another organisation's credentials never reach the board's topic.
    assert (
        figures.reason_codes["kafka_TopicAuthorizationFailedError"]
        == figures.kinds["foreign_credentials"]
    )
    assert figures.passed
