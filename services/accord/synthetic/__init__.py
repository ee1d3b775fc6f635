"""Synthetic data, in one place: nobody in it is real.

- `people`: a board's shielding list (the demo's, the campaigns', the tests' files);
- `requests`: councils' support requests and outcomes about the people on it;
- `population`: a labelled population of listed people and noisy queries, for
  `accord match evaluate`;
- `workload`: the bench's realistic event mix, validated as `accord publish` validates
  and Avro-encoded, generated in chunks and cached;
- `records`: small deterministic people and partner records for the tests.

A lower layer: it may import `core`, `ingest` and the pure parts of `matching`, never
the demo, the bench, the worker or anything that runs a process.
"""
