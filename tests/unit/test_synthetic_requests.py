from accord.ingest.pipeline import Accepted, Location, Pipeline
from accord.synthetic.people import generate_shielding_list
from accord.synthetic.requests import THIRD_SECTOR, generate_requests, referring_councils


def test_requests_mix_chi_and_noisy_forms_and_outcomes_refer_to_requests():
    rows = generate_shielding_list(2000, bad_rows=0)
    requests, outcomes = generate_requests(rows, seed=7)
    flat = [r for council in requests.values() for r in council]
    with_chi = [r for r in flat if r["chi_number"]]
    assert 0.3 < len(with_chi) / len(flat) < 0.8
    ids = {(org, r["request_id"]) for org, council in requests.items() for r in council}
    for publisher, rows_out in outcomes.items():
        for outcome in rows_out:
            owner = outcome["request_org"] or publisher
            assert (owner, outcome["request_id"]) in ids
    assert THIRD_SECTOR in outcomes
    # The network reports only on requests of councils that refer requests to it.
    owners = {o["request_org"] for o in outcomes[THIRD_SECTOR]}
    assert owners and owners <= referring_councils() == {"city-of-edinburgh", "midlothian"}
    assert all(
        o["request_org"] == ""
        for org, rows in outcomes.items()
        if org != THIRD_SECTOR
        for o in rows
    )


def test_generated_requests_and_outcomes_pass_validation():
    rows = generate_shielding_list(500, bad_rows=0)
    requests, outcomes = generate_requests(rows, seed=3)
    for datasets, dataset in ((requests, "support-request"), (outcomes, "support-outcome")):
        for org, org_rows in datasets.items():
            pipeline = Pipeline(org, dataset)
            for n, row in enumerate(org_rows, start=2):
                outcome = pipeline.process(row, Location("FILE", f"line {n}", f"row {n}", n), b"")
                assert isinstance(outcome, Accepted), (dataset, org, n, outcome)


def test_the_same_seed_gives_the_same_requests():
    rows = generate_shielding_list(300, bad_rows=0)
    assert generate_requests(rows, seed=1) == generate_requests(rows, seed=1)
