"""The intake's authority check: the query it builds and how it reads OPA's answer.

OPA itself decides in the Rego package accord.authority (policies/accord/authority/);
these tests cover the worker's side: one query per batch, and an answer it did not expect
holds the batch (AuthorityUnavailable) instead of passing or rejecting records."""

import asyncio

import pytest

from accord.core.errors import InfrastructureError, PolicyUnavailableError
from accord.pipeline.authority import (
    AUTHORITY_PACKAGE,
    AuthorityUnavailable,
    Refusal,
    authority_input,
    check_authority,
    refusals,
)


def envelope(org, dataset, **data):
    return {
        "kind": "x",
        "dataset": dataset,
        "source_org": org,
        "event_id": "e",
        "data": {"chi_number": "0101011234", "given_name": "Ann", **data},
    }


BATCH = [
    ("t/0/1", envelope("nhs-lothian", "shielding-list")),
    ("t/0/2", envelope("food", "support-outcome", request_org="city-of-edinburgh")),
    ("t/0/3", envelope("city-of-edinburgh", "support-outcome", request_org=None)),
]


def test_the_query_names_publisher_dataset_and_request_owner_and_no_personal_data():
    query = authority_input(BATCH)
    assert query == {
        "records": [
            {
                "record_id": "t/0/1",
                "source_org": "nhs-lothian",
                "dataset": "shielding-list",
                "request_org": None,
            },
            {
                "record_id": "t/0/2",
                "source_org": "food",
                "dataset": "support-outcome",
                "request_org": "city-of-edinburgh",
            },
            {
                "record_id": "t/0/3",
                "source_org": "city-of-edinburgh",
                "dataset": "support-outcome",
                "request_org": None,
            },
        ]
    }
    assert "0101011234" not in str(query) and "Ann" not in str(query)


def allowed(record_id):
    return {"record_id": record_id, "allow": True, "reason_code": "", "reason": ""}


def refused(record_id, code="not_request_owner", reason="food may not report outcomes"):
    return {"record_id": record_id, "allow": False, "reason_code": code, "reason": reason}


IDS = ["a", "b"]


def test_refusals_name_the_refused_records_with_code_reason_and_field():
    found = refusals(IDS, [allowed("a"), refused("b")])
    assert found == {
        "b": Refusal("not_request_owner", "food may not report outcomes", "request_org")
    }
    other = refusals(IDS, [refused("a", "not_a_publisher", "x may not"), allowed("b")])
    assert other["a"].field == "source_org"


MALFORMED = {
    "not a list": {"a": allowed("a")},
    "too few": [allowed("a")],
    "too many": [allowed("a"), allowed("b"), allowed("c")],
    "out of order": [allowed("b"), allowed("a")],
    "not an object": [allowed("a"), "yes"],
    "allow as text": [allowed("a"), {**allowed("b"), "allow": "true"}],
    "allow missing": [allowed("a"), {"record_id": "b"}],
    "refusal without code": [allowed("a"), refused("b", code="")],
    "refusal without reason": [allowed("a"), refused("b", reason="")],
    "allow false as text": [allowed("a"), {**refused("b"), "allow": "false"}],
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_an_answer_not_in_the_expected_shape_holds_the_batch(answer):
    with pytest.raises(AuthorityUnavailable):
        refusals(IDS, answer)
    assert issubclass(AuthorityUnavailable, InfrastructureError)  # process_until_done retries


class Decider:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.calls = answer, error, []

    async def decide(self, policy_input, package="accord.sharing"):
        self.calls.append((policy_input, package))
        if self.error is not None:
            raise self.error
        return self.answer


def test_one_query_per_batch_to_the_authority_package():
    decider = Decider([allowed(i) for i, _ in BATCH])
    assert asyncio.run(check_authority(decider, BATCH)) == {}
    assert len(decider.calls) == 1 and decider.calls[0][1] == AUTHORITY_PACKAGE
    assert len(decider.calls[0][0]["records"]) == len(BATCH)


def test_an_empty_batch_asks_nothing():
    decider = Decider([])
    assert asyncio.run(check_authority(decider, [])) == {}
    assert decider.calls == []


@pytest.mark.parametrize(
    "error", [PolicyUnavailableError("OPA down"), ValueError("bad json"), OSError("reset")]
)
def test_opa_not_answering_holds_the_batch(error):
    with pytest.raises(AuthorityUnavailable):
        asyncio.run(check_authority(Decider(error=error), BATCH))
