"""The bad-input campaign's generator and bookkeeping, without the stack: every bad row
it makes is one the pipeline rejects (so a bad record found accepted on the stack is a
defect of the hub, not of the generator), and the plan is seeded and covers every kind."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from accord.campaign.bad_input import (
    KINDS,
    WAYS,
    Generator,
    Probe,
    RawBytes,
    base_rows,
    http_original,
    plan,
    write_csv,
)
from accord.ingest.pipeline import Location, Pipeline, Rejected
from accord.ingest.readers import open_table

BASES = base_rows(2000, 3)


@pytest.mark.parametrize("way", ["csv", "jsonl", "xlsx", "http"])
def test_every_generated_bad_row_is_rejected_by_the_pipeline(way: str) -> None:
    generator = Generator(random.Random(way), BASES)
    pipeline = Pipeline("nhs-lothian", "shielding-list")
    seen: Counter[str] = Counter()
    for n in range(1500):
        kind = generator.kinds_for(way)[n % len(generator.kinds_for(way))]
        row = generator.row(way, kind)
        if not isinstance(row, dict):
            assert kind in ("malformed", "non_record")  # the readers refuse these
            continue
        if any(isinstance(v, str) and len(v) > 1_000_000 for v in row.values()):
            continue  # over the readers' 1 MiB limit: refused before the pipeline
        outcome = pipeline.process(row, Location("FILE", "t", "t"), b"")
        assert isinstance(outcome, Rejected), (way, kind, row)
        seen[kind] += 1
    assert {"invalid_identifier", "injection", "unicode", "wrong_type", "missing_field"} <= set(
        seen
    )


def test_the_plan_is_seeded_and_covers_every_kind_and_way() -> None:
    first, again = plan(2000, 10, seed=4), plan(2000, 10, seed=4)
    assert [(p.way, p.kind) for p in first] == [(p.way, p.kind) for p in again]
    assert {p.kind for p in first if not p.good} == set(KINDS)
    assert {p.way for p in first} == set(WAYS)
    goods = [p for p in first if p.good]
    assert len(goods) == 50 and len({p.chi for p in goods}) == 50
    assert all(
        p.council in {"city-of-edinburgh", "east-lothian", "midlothian", "west-lothian"}
        for p in goods
    )


def test_csv_locations_are_the_lines_the_reader_reports(tmp_path: Path) -> None:
    base = BASES[0]
    probes = [
        Probe("csv", "injection", {**base, "family_name": "Kerr\r\nforged"}),
        Probe("csv", "good", dict(base)),
        Probe("csv", "injection", {**base, "town": "a\nb\nc"}),
        Probe("csv", "malformed", ["only", "three", "cells"]),
    ]
    write_csv(probes, tmp_path / "x.csv", "x.csv")
    lines = [f"x.csv line {row.line_number}" for row in open_table(tmp_path / "x.csv", "csv").rows]
    assert lines == [p.location for p in probes]


def test_http_originals_are_kept_as_the_gateway_keeps_them() -> None:
    record = json.loads('{"family_name": "Kerr\\ud800"}')
    assert http_original(record) == b'{"family_name": "Kerr\\ud800"}'
    assert isinstance(RawBytes(b"x").data, bytes)
