"""The gate trusts nothing it did not check: malformed policy results hold the batch."""

import asyncio
import copy

import pytest

from accord.core.errors import InfrastructureError
from accord.core.settings import Settings
from accord.pipeline.decision import Gate, check_decisions

KEY = "ab" * 32
AGREEMENTS = {
    "DSA-010": {
        "id": "DSA-010",
        "status": "active",
        "providers": ["nhs-lothian"],
        "recipients": [{"org": "city-of-edinburgh", "kind": "council"}],
        "datasets": {
            "shielding-list": {
                "fields": ["given_name", "postcode", "shielding_status"],
                "derived": ["needs"],
            }
        },
    },
    "DSA-015": {
        "id": "DSA-015",
        "status": "suspended",
        "providers": ["nhs-lothian"],
        "recipients": [{"org": "community-food-network", "kind": "third-sector"}],
        "datasets": {"shielding-list": {"fields": ["given_name"]}},
    },
}
GOOD = {
    "record_id": KEY,
    "recipient": "city-of-edinburgh",
    "agreement_id": "DSA-010",
    "agreement_version": 1,
    "allow": True,
    "fields_released": ["given_name", "needs", "shielding_status"],
    "obligations": [],
    "reasons": ["shared"],
    "clauses": ["2.1"],
    "principles": ["lawfulness"],
}
RECORDS = {
    KEY: {"given_name": "Ann", "postcode": "EH1 1AA", "needs": ["FOOD"], "shielding_status": "S"}
}


def problems(decisions, own_data=False, source_org="nhs-lothian"):
    return check_decisions(
        decisions,
        RECORDS,
        AGREEMENTS,
        source_org=source_org,
        dataset="support-request" if own_data else "shielding-list",
        own_data=own_data,
    )


def test_a_well_formed_result_is_accepted():
    deny = dict(GOOD, allow=False, recipient="", agreement_id="", fields_released=[])
    assert problems([GOOD, deny]) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"allow": "false"}, "allow is a str, not a boolean"),
        ({"allow": "true"}, "allow is a str, not a boolean"),
        ({"allow": 1}, "allow is a int, not a boolean"),
        ({"allow": None}, "allow is a NoneType, not a boolean"),
        ({"record_id": "someone-else"}, "is about no record of the query"),
        ({"recipient": None}, "recipient and agreement_id must be strings"),
        ({"fields_released": "given_name"}, "fields_released must be lists of strings"),
        ({"reasons": [1]}, "reasons must be lists of strings"),
        ({"clauses": {"2.1": True}}, "clauses must be lists of strings"),
        ({"recipient": "rogue-partner"}, "allows a recipient the agreement does not name"),
        ({"recipient": ""}, "allows a recipient the agreement does not name"),
        ({"agreement_id": "DSA-999"}, "an agreement the worker is not served"),
        ({"agreement_id": ""}, "an agreement the worker is not served"),
        (
            {"agreement_id": "DSA-015", "recipient": "community-food-network"},
            "an agreement that is not active",
        ),
        (
            {"fields_released": ["given_name", "contact_phone", "priority"]},
            "releases contact_phone, priority, which the agreement does not list",
        ),
    ],
)
def test_malformed_or_untrusted_decisions_are_refused(change, expected):
    found = problems([dict(GOOD, **change)])
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("key", ["allow", "record_id", "recipient", "fields_released", "reasons"])
def test_a_decision_missing_a_required_key_is_refused(key):
    decision = {k: v for k, v in GOOD.items() if k != key}
    assert problems([decision])


@pytest.mark.parametrize("result", [None, "allow", {"allow": True}, 3, [["allow"]], ["x"]])
def test_a_result_that_is_not_a_list_of_objects_is_refused(result):
    assert problems(result)


def test_a_denial_needs_no_agreement_but_still_its_shape():
    assert problems([dict(GOOD, allow=False, recipient="rogue", agreement_id="DSA-999")]) == []
    assert problems([dict(GOOD, allow=0)])


def test_the_provider_must_be_named_by_the_agreement():
    assert "does not name the provider" in problems([GOOD], source_org="nhs-fife")[0]


def test_own_data_goes_back_to_the_requester_only_with_its_own_fields():
    own = dict(GOOD, agreement_id="", recipient="city-of-edinburgh")
    assert problems([own], own_data=True, source_org="city-of-edinburgh") == []
    assert problems([own], own_data=True, source_org="fife")
    assert problems(
        [dict(own, agreement_id="DSA-010")], own_data=True, source_org="city-of-edinburgh"
    )
    extra = dict(own, fields_released=["given_name", "contact_phone"])
    assert (
        "which the record does not have"
        in problems([extra], own_data=True, source_org="city-of-edinburgh")[0]
    )


def test_problems_never_quote_record_content():
    leaky = dict(GOOD, allow="Ann Kerr EH1 1AA", recipient="Ann Kerr")
    leaky2 = dict(GOOD, fields_released=["given_name", "Ann Kerr 0101011234"])
    text = repr(problems([leaky, leaky2]))
    assert "Ann" not in text and "0101011234" not in text


# --- the gate holds a malformed result, like OPA being down ------------------------


class FakePolicy:
    """Answers from a script of results; serves AGREEMENTS as OPA would."""

    def __init__(self, results):
        self.results = list(results)
        self.asked = 0
        self.agreements = {}

    async def decide_all_with_revision(self, queries, retry_s):
        self.asked += 1
        self.agreements = AGREEMENTS
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        return [copy.deepcopy(result) for _ in queries], "r1"

    async def fresh_revision(self):
        self.agreements = AGREEMENTS
        return "r1"

    def forget_revision(self):
        pass


class FakeSerde:
    def encode(self, subject, record_name, record):
        return repr((record_name, record)).encode()


def run_gate(results, audit_fails=False, held=()):
    from accord.pipeline import cases

    state = cases.new_state(KEY)
    state = cases.apply_event(
        state,
        {
            "kind": "entry",
            "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
            "occurred_at": "2020-06-01T00:00:00.000+00:00",
            "source_org": "nhs-lothian",
            "match_method": "chi",
            "data": {"given_name": "Ann", "shielding_status": "SHIELDING"},
        },
    )
    view = cases.build_case(state, cases.load_priority_rules())
    sent = []

    async def send(topic, key, value, headers):
        sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def set_released(key, holders):
        sent.append(("released", list(holders)))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def audit(records):
        if audit_fails:
            raise InfrastructureError("audit topic refused the write")
        sent.extend(("hub.audit.decisions", record) for _, record in records)

    policy = FakePolicy(results)
    gate = Gate(
        Settings(opa_retry_s=0.0),
        FakeSerde(),
        policy,
        send,
        released=lambda key: list(held),
        set_released=set_released,
        audit=audit,
    )
    counts = asyncio.run(gate.process([view]))
    return policy, counts, sent


def test_no_share_is_sent_when_the_audit_cannot_be_written():
    with pytest.raises(InfrastructureError):
        run_gate([[GOOD]], audit_fails=True)


def test_the_recorded_revision_is_the_one_the_decision_came_with():
    policy, counts, sent = run_gate([[GOOD]])
    audits = [record for topic, record in sent if topic == "hub.audit.decisions"]
    assert audits and all(record["policy_revision"] == "r1" for record in audits)


def test_a_string_allow_is_held_and_asked_again_until_well_formed():
    policy, counts, sent = run_gate([[dict(GOOD, allow="false")], [GOOD]])
    assert policy.asked == 2 and counts["allowed"] == 1
    # The audit record is durable before the share is sent.
    assert [t for t, _ in sent if t != "released"] == [
        "hub.audit.decisions",
        "share.city-of-edinburgh.support-list",
    ]


def test_who_holds_the_case_is_recorded_before_the_share_is_sent():
    _, _, sent = run_gate([[GOOD]])
    order = [topic for topic, _ in sent]
    first_record = order.index("released")
    assert sent[first_record][1] == ["city-of-edinburgh"]
    assert first_record < order.index("share.city-of-edinburgh.support-list")


def test_an_unknown_recipient_is_never_shared_to_while_held():
    rogue = dict(GOOD, recipient="rogue-partner")
    policy, counts, sent = run_gate([[rogue], [rogue], [dict(GOOD, allow=False)]])
    assert policy.asked == 3 and counts["allowed"] == 0
    assert not any("rogue" in topic for topic, _ in sent)


def test_a_decision_carries_the_revision_read_around_its_query_and_is_asked_again_if_it_moved():
    from accord.core.policy import PolicyClient

    class Moving(PolicyClient):
        def __init__(self, revisions):
            self._fresh = None
            self.stamped = False  # rules without a current stamp: read around the queries
            self.revisions = iter(revisions)
            self.asked = 0

        async def decide_when_available(self, policy_input, retry_s=1.0, package=""):
            self.asked += 1
            return [{"answer": self.asked}]

        async def fresh_revision(self):
            self._fresh = next(self.revisions)
            return self._fresh

    # The agreements changed while the first query was answered: asked again under "b".
    moving = Moving(["a", "b", "b"])
    assert asyncio.run(moving.decide_all_with_revision([({}, "p")], 0.0)) == (
        [[{"answer": 2}]],
        "b",
    )
    steady = Moving(["a", "a"])
    assert asyncio.run(steady.decide_all_with_revision([({}, "p")], 0.0)) == (
        [[{"answer": 1}]],
        "a",
    )
    assert steady.asked == 1
    # Every query of a batch, with one reading of the revision after them all.
    together = Moving(["a", "a"])
    answers, revision = asyncio.run(
        together.decide_all_with_revision([({}, "p"), ({}, "q"), ({}, "r")], 0.0)
    )
    assert sorted(a[0]["answer"] for a in answers) == [1, 2, 3] and revision == "a"
    assert next(together.revisions, None) is None  # read twice: before and after


class Stamped:
    """A PolicyClient whose OPA answers each query with the stamp and agreements it served."""

    @staticmethod
    def make(served, text_digest):
        from accord.core.policy import PolicyClient

        class Client(PolicyClient):
            def __init__(self):
                self._fresh = None
                self._revision = None
                self._texts = (0.0, text_digest)
                self._rules_ttl_s = 1e9
                self._revision_ttl_s = 0.0
                self.stamped = True
                self.served = iter(served)
                self.asked = 0
                self.texts_read = 0

            async def _answer(self, policy_input, package):
                self.asked += 1
                rules, agreements = next(self.served)
                return [{"n": self.asked}], rules, agreements

            async def _served(self):
                rules, agreements = next(self.served)
                return rules, agreements

            async def _text_digest(self):
                self.texts_read += 1
                return text_digest

            async def decide_when_available(self, policy_input, retry_s=1.0, package=""):
                self.asked += 1
                return [{"n": self.asked}]

        return Client()


def test_stamped_decisions_name_the_stamp_and_agreements_they_came_with_and_read_no_rules():
    from accord.core.policy import revision_of

    a = {"DSA-1": {"status": "active"}}
    client = Stamped.make([("sha256:s", a), ("sha256:s", a)], "sha256:s")
    answers, revision = asyncio.run(client.decide_all_with_revision([({}, "p"), ({}, "q")], 0))
    assert revision == revision_of("sha256:s", a)
    assert [x[0]["n"] for x in answers] == [1, 2]
    assert client.texts_read == 0 and client.agreements == a and client.rules == "sha256:s"


def test_stamped_queries_that_saw_different_agreements_are_asked_again():
    from accord.core.policy import revision_of

    a, b = {"DSA-1": {"status": "active"}}, {"DSA-1": {"status": "suspended"}}
    client = Stamped.make([("sha256:s", a), ("sha256:s", b)] + [("sha256:s", b)] * 2, "sha256:s")
    answers, revision = asyncio.run(client.decide_all_with_revision([({}, "p"), ({}, "q")], 0))
    assert client.asked == 4 and revision == revision_of("sha256:s", b)
    assert client.agreements == b


def test_a_stamp_that_does_not_match_the_rules_text_is_decided_the_unstamped_way():
    from accord.core.policy import revision_of

    a = {"DSA-1": {"status": "active"}}
    # OPA serves a new stamp whose text does not match it (rules edited, stamp stale).
    client = Stamped.make([("sha256:new", a)] + [("sha256:new", a)] * 3, "sha256:text")
    client._texts = (0.0, "sha256:old")
    answers, revision = asyncio.run(client.decide_all_with_revision([({}, "p")], 0))
    assert client.stamped is False
    # Named after the text OPA serves, not the stale stamp; the queries asked again.
    assert revision == revision_of("sha256:text", a)
    assert client.texts_read >= 1 and answers == [[{"n": 2}]]


def test_the_rules_digest_leaves_out_the_stamp_and_opas_own_authorisation_policy():
    from accord.core.policy import rules_digest

    rules = ["package accord.sharing\nx := 1\n", "package accord.ethics\ny := 2\n"]
    base = rules_digest(rules)
    assert rules_digest(list(reversed(rules))) == base  # order of listing does not matter
    stamp = 'package accord.revision\nrules := "sha256:x"\n'
    authz = "package system.authz\ndefault allow := false\n"
    assert rules_digest([*rules, stamp, authz]) == base
    assert rules_digest([rules[0], rules[1].replace("2", "3")]) != base


def test_the_repositorys_rules_are_stamped():
    from accord.core.settings import REPO_ROOT
    from accord.governance.stamp import stamp_problem

    assert stamp_problem(REPO_ROOT / "policies") is None


def test_stamping_writes_the_digest_and_notices_an_edit(tmp_path):
    import shutil

    from accord.core.settings import REPO_ROOT
    from accord.governance.stamp import computed_stamp, stamp_problem, write_stamp

    folder = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", folder)
    rule = folder / "accord" / "ethics" / "ethics.rego"
    rule.write_text(rule.read_text() + "\n# an edit\n")
    assert "run `accord policy stamp`" in stamp_problem(folder)
    stamp, changed = write_stamp(folder)
    assert changed and stamp == computed_stamp(folder) and stamp_problem(folder) is None
    assert write_stamp(folder) == (stamp, False)
    # Tests and agreements are not part of the stamp.
    (folder / "accord" / "ethics" / "ethics_test.rego").write_text("package x_test\n")
    (folder / "agreements" / "DSA-001.yaml").write_text("id: DSA-001\n")
    assert stamp_problem(folder) is None


def test_the_policy_reads_bench_has_a_stale_copy_and_a_report_relative_to_unstamped(tmp_path):
    from accord.bench.policy_reads import report, stale_copy
    from accord.core.settings import REPO_ROOT
    from accord.governance.stamp import stamp_problem

    copy = stale_copy(REPO_ROOT / "policies", tmp_path)
    assert "run `accord policy stamp`" in stamp_problem(copy)
    lines = report({"stamped": [10.0, 20.0], "unstamped": [20.0, 40.0]})
    stamped, unstamped = (line.split() for line in lines[2:4])
    assert stamped[0] == "stamped" and stamped[2] == "0.50" and unstamped[2] == "1.00"


def test_a_withdrawal_and_the_deny_that_caused_it_are_two_decisions_with_their_own_ids():
    """The audit index keeps one row per decision id: a withdrawal sharing its cause's id
    would be overwritten by it, and who-received would say the recipient still holds it."""
    deny = dict(GOOD, allow=False, fields_released=[], reasons=["denied: suspended"])
    _, counts, sent = run_gate([[deny]], held=["city-of-edinburgh"])
    assert counts["withdrawn"] == 1
    [record] = [r for topic, r in sent if topic == "hub.audit.decisions"]
    entries = {e["outcome"]: e for e in record["recipients"]}
    assert set(entries) == {"WITHDRAW", "DENY"}
    assert entries["WITHDRAW"]["decision_id"] != entries["DENY"]["decision_id"]
    # Replayed, the same batch gets the same ids (duplicates stay harmless).
    _, _, again = run_gate([[deny]], held=["city-of-edinburgh"])
    [replayed] = [r for topic, r in again if topic == "hub.audit.decisions"]
    assert [e["decision_id"] for e in replayed["recipients"]] == [
        e["decision_id"] for e in record["recipients"]
    ]
