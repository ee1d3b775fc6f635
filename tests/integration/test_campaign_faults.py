"""The fault campaign at CI size: the demo's mix through a worker SIGKILLed twice at seeded
random moments, the broker SIGKILLed and restarted, OPA and the registry stopped and the
worker frozen out of its group; every recipient's list compared with a fault-free run and
every share record checked against the audit (real stack).

`accord campaign faults` runs the same at full size (42,000 people, about 51,500 events,
three kills, the outages at full length)."""

from __future__ import annotations

import sys

import pytest

from accord.campaign import FAULTS
from accord.campaign.faults import run_campaign

pytestmark = [pytest.mark.integration, pytest.mark.campaign]
PEOPLE = 1500
KILLS = 2
SEED = 11
SCALE = 0.3  # OPA down 9 s, registry 6 s, the worker frozen 36 s (past its 10 s session)


def test_lists_after_faults_equal_the_fault_free_run_and_every_share_is_audited(stack):
    report = run_campaign(
        stack,
        people=PEOPLE,
        seed=SEED,
        kills=KILLS,
        faults=FAULTS,
        fault_scale=SCALE,
        echo=lambda line: print(line, file=sys.stderr),
    )
    for line in report.lines():
        print(line, file=sys.stderr)
    assert report.data.requests_without_chi > 0.3 * report.data.requests
    assert report.faulty.events_in == report.reference.events_in > PEOPLE
    assert len(report.faulty.kills) == KILLS
    assert len(report.faulty.faults) == len(FAULTS)
    assert report.faulty.opa_down  # OPA was really stopped during the run
    assert report.comparison.shared > 0 and report.checks.records > 0
    assert report.faulty.lag_zero, report.faulty.lag_note
    c, checks = report.comparison, report.checks
    assert (c.missing, c.extra, c.differing) == (0, 0, 0), c.examples
    assert checks.duplicated == 0
    assert checks.unaudited == 0
    assert checks.while_opa_down == 0
    assert report.passed
