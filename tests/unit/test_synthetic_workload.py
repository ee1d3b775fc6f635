"""The bench's workload: deterministic, the demo's mix, streamed in chunks, cached safely."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, SUPPORT_OUTCOME, SUPPORT_REQUEST
from accord.synthetic import workload
from accord.synthetic.people import generate_shielding_list
from accord.synthetic.requests import RequestMaker, generate_requests
from accord.synthetic.workload import Workload, build, load, people_for, write

from .test_serde import FakeRegistry

EVENTS = 2000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture(scope="module")
def serde() -> AvroSerde:
    return AvroSerde(FakeRegistry(), Settings().schemas_dir)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference(serde: AvroSerde, tmp_path_factory) -> list[workload.Event]:
    """The workload built in one go: one chunk, this process."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"))
    return list(build(settings, serde, EVENTS, 7, chunk=10**9, processes=0))


def test_the_same_seed_gives_the_same_events_and_another_seed_others(
    settings, serde, reference
) -> None:
    again = list(build(settings, serde, EVENTS, 7, processes=0))
    assert again == reference
    other = list(build(settings, serde, EVENTS, 8, processes=0))
    assert {e.event_id for e in other}.isdisjoint({e.event_id for e in reference})


def test_chunks_of_any_size_and_worker_processes_give_the_same_events(
    settings, serde, reference
) -> None:
    assert list(build(settings, serde, EVENTS, 7, chunk=137, processes=0)) == reference
    assert list(build(settings, serde, EVENTS, 7, chunk=400, processes=2)) == reference


def test_the_mix_is_the_demos_lists_then_requests_then_outcomes(serde, reference) -> None:
    assert len(reference) == EVENTS
    datasets = [e.dataset for e in reference]
    # Lists ahead of requests, requests ahead of outcomes, as in real life.
    order = [SHIELDING_LIST, SUPPORT_REQUEST, SUPPORT_OUTCOME]
    assert datasets == sorted(datasets, key=order.index)
    # The demo's generator for the same people and seed, row for row: every listed
    # person, every request, and the outcomes that fit in the size (the tail is cut).
    people = generate_shielding_list(people_for(EVENTS), seed=7, bad_rows=0)
    requests, outcomes = generate_requests(people, seed=7)
    decoded = [(e.org, e.dataset, serde.decode(e.value)[1]) for e in reference]
    assert [r["chi_number"] for _, d, r in decoded if d == SHIELDING_LIST] == [
        p["chi_number"] for p in people
    ]
    assert [(o, r["request_id"]) for o, d, r in decoded if d == SUPPORT_REQUEST] == [
        (org, row["request_id"]) for org, rows in requests.items() for row in rows
    ]
    sent = [(o, r["request_id"]) for o, d, r in decoded if d == SUPPORT_OUTCOME]
    made = [(org, row["request_id"]) for org, rows in outcomes.items() for row in rows]
    assert sent and sent == made[: len(sent)]
    # The proportions: 80% lists; about 15% of listed people ask for help (and 100
    # strangers); about half of the requests get an outcome.
    assert datasets.count(SHIELDING_LIST) == len(people) == EVENTS * 4 // 5
    asked = datasets.count(SUPPORT_REQUEST) - 100
    assert 0.12 < asked / len(people) < 0.18
    assert 0.4 < len(made) / (asked + 100) < 0.6


def test_four_in_ten_requests_about_listed_people_come_without_a_chi_number() -> None:
    people = generate_shielding_list(8000, seed=3, bad_rows=0)
    maker = RequestMaker(len(people), seed=3, strangers=0)
    made = [made[1] for row in people if (made := maker.listed(row)) is not None]
    without = sum(1 for row in made if not row["chi_number"]) / len(made)
    assert 0.35 < without < 0.45
    maker = RequestMaker(len(people), seed=3, strangers=50)
    for row in people:
        maker.listed(row)
    strangers = list(maker.strangers())
    assert len(strangers) == 50 and all(not row["chi_number"] for _, row in strangers)


def test_requests_without_a_chi_number_in_the_workload(serde, reference) -> None:
    requests = [serde.decode(e.value)[1] for e in reference if e.dataset == SUPPORT_REQUEST]
    without = sum(1 for r in requests if r["chi_number"] is None) / len(requests)
    assert 0.35 < without < 0.6  # 40% of listed people's, and every stranger's


def test_the_cache_round_trips_and_is_private(settings, serde, reference, tmp_path) -> None:
    path = settings.state_dir / "bench" / "w.events"
    cached = write(path, iter(reference), {"events": EVENTS, "seed": 7}, chunk=256)
    assert list(cached) == reference
    assert list(Workload.open(path)) == reference
    assert len(cached) == EVENTS and dict(cached.key) == {"events": EVENTS, "seed": 7}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    head = cached[:1000]
    assert len(head) == 1000 and list(head) == reference[:1000]
    assert set(head.partners()) == {(e.org, e.dataset) for e in reference[:1000]}
    assert set(cached.partners()) == {(e.org, e.dataset) for e in reference}
    assert list(tmp_path.glob("**/.*.tmp")) == []


def test_an_incomplete_cache_file_is_refused(settings, reference) -> None:
    path = settings.state_dir / "bench" / "w.events"
    write(path, iter(reference[:500]), {"events": 500})
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError):
        Workload.open(path)


def test_load_reuses_only_a_cache_of_the_same_size_seed_and_generator(
    settings, serde, monkeypatch
) -> None:
    said: list[str] = []

    def builds() -> int:
        return sum(1 for line in said if line.startswith("generating"))

    expected = list(build(settings, serde, 600, 7, processes=0))
    first = load(settings, 600, 7, said.append, serde=serde, processes=0)
    assert list(first) == expected and builds() == 1
    again = load(settings, 600, 7, said.append, serde=serde, processes=0)
    assert again.path == first.path and builds() == 1  # from the cache
    # A file truncated by a crash is built again, not served.
    first.path.write_bytes(first.path.read_bytes()[:1000])
    rebuilt = load(settings, 600, 7, said.append, serde=serde, processes=0)
    assert list(rebuilt) == expected and builds() == 2
    # Another generator (a schema, a rule, the code changed) is another file; the old
    # one for the same size and seed goes, those of other sizes stay.
    other_size = load(settings, 300, 7, said.append, serde=serde, processes=0)
    monkeypatch.setattr(workload, "fingerprint", lambda _settings: "0123456789abcdef")
    changed = load(settings, 600, 7, said.append, serde=serde, processes=0)
    assert changed.path != first.path and not first.path.exists() and builds() == 4
    assert other_size.path.exists()


def test_spill_files_are_gone_when_the_build_ends_early(settings, serde) -> None:
    folder = settings.state_dir / "spill"
    events = build(settings, serde, EVENTS, 7, processes=0, spill_dir=folder)
    next(events)
    events.close()
    assert list(folder.iterdir()) == []
