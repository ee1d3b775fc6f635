"""The synthetic data for fixed seeds is what it was before it moved to `accord.synthetic`.

The fingerprints were taken on the code before the move (demo/synthetic.py,
demo/requests.py, matching/population.py, bench/workload.py): the demo, the campaigns,
the matching evaluation and the bench keep generating the same people, requests and
events for the same seed. A deliberate change to the generators changes them here too.
"""

from __future__ import annotations

import hashlib
import json

from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.synthetic.people import generate_shielding_list_with_labels
from accord.synthetic.population import generate_population
from accord.synthetic.requests import generate_requests, valid_rows
from accord.synthetic.workload import build

from .test_serde import FakeRegistry


def fingerprint(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def test_the_demos_list_requests_and_outcomes_are_unchanged_for_its_seed() -> None:
    rows, labels = generate_shielding_list_with_labels(5000, seed=2020, bad_rows=12)
    # bad rows changed when synonyms ("Edinburgh", "Yes") stopped being errors
    assert fingerprint([rows, labels]) == "792ebdf6c792f490"
    requests, outcomes = generate_requests(valid_rows(rows), seed=2020)
    assert fingerprint([requests, outcomes]) == "0607b3c22eea5483"


def test_the_matchers_population_is_unchanged_for_a_seed() -> None:
    population = generate_population(2000, 1000, seed=11)
    assert fingerprint([sorted(population.people.items()), population.queries]) == (
        "3dcd9e300e67b22c"
    )


def test_the_benchs_encoded_events_are_unchanged_for_a_seed(tmp_path) -> None:
    settings = Settings()
    serde = AvroSerde(FakeRegistry(), settings.schemas_dir)  # type: ignore[arg-type]
    events = [
        [e.org, e.dataset, e.event_id, e.key.hex(), e.value.hex()]
        for e in build(settings, serde, 5000, 2020, spill_dir=tmp_path)
    ]
    assert len(events) == 5000
    # SupportOutcome gained the optional case_key (last field): each outcome's body ends
    # with one more byte (its null branch), nothing else changed (it was 81488926f4ec9d5b
    # with that byte left off).
    assert fingerprint(events) == "20504ab776392bf7"
