package accord.authority_test

import rego.v1

import data.accord.authority

agreements := {
	"DSA-010": {
		"providers": ["nhs-lothian"],
		"recipients": [
			{"org": "city-of-edinburgh", "kind": "council"},
			{"org": "midlothian", "kind": "council"},
		],
		"datasets": {"shielding-list": {"fields": ["given_name"]}},
	},
	"DSA-015": {
		"providers": ["nhs-lothian"],
		"recipients": [{"org": "community-food-network", "kind": "third-sector"}],
		"datasets": {"shielding-list": {"fields": ["given_name"]}},
	},
	"DSA-004": {
		"providers": ["nhs-fife"],
		"recipients": [{"org": "fife", "kind": "council"}],
		"datasets": {"shielding-list": {"fields": ["given_name"]}},
	},
}

rules := {
	"version": 1,
	"publishers": {
		"shielding-list": {"providers_of": ["shielding-list"]},
		"support-request": {"recipient_kinds": ["council"], "orgs": ["nhs-24"]},
		"support-outcome": {"recipient_kinds": ["council"]},
		"consent-change": {"providers_of": ["shielding-list"], "recipient_kinds": ["council"]},
	},
	"referrals": {"city-of-edinburgh": ["community-food-network"]},
}

record(org, dataset) := {"record_id": "r1", "source_org": org, "dataset": dataset, "request_org": null}

outcome(org, request_org) := object.union(record(org, "support-outcome"), {"request_org": request_org})

decide(records) := decisions if {
	decisions := authority.decisions with input as {"records": records}
		with data.agreements as agreements
		with data.authority as rules
}

test_the_fixture_rules_match_their_schema if {
	authority.rules_valid with data.authority as rules
}

test_the_board_publishes_its_shielding_list if {
	[d] := decide([record("nhs-lothian", "shielding-list")])
	d == {"record_id": "r1", "allow": true, "reason_code": "", "reason": ""}
}

test_a_charity_may_not_publish_a_shielding_list if {
	[d] := decide([record("community-food-network", "shielding-list")])
	not d.allow
	d.reason_code == "not_a_publisher"
	d.reason == "community-food-network may not publish shielding-list: the authority rules and agreements do not name it as a publisher of that dataset"
}

test_a_council_may_not_publish_a_shielding_list if {
	[d] := decide([record("city-of-edinburgh", "shielding-list")])
	not d.allow
}

test_councils_and_listed_orgs_publish_requests if {
	[a, b, c] := decide([
		record("fife", "support-request"),
		record("nhs-24", "support-request"),
		record("community-food-network", "support-request"),
	])
	a.allow
	b.allow
	not c.allow
	c.reason_code == "not_a_publisher"
}

test_consent_only_from_boards_and_councils if {
	[a, b, c] := decide([
		record("nhs-lothian", "consent-change"),
		record("midlothian", "consent-change"),
		record("community-food-network", "consent-change"),
	])
	a.allow
	b.allow
	not c.allow
	c.reason_code == "not_a_publisher"
}

test_an_outcome_from_the_request_owner if {
	[a, b] := decide([outcome("fife", null), outcome("fife", "fife")])
	a.allow
	b.allow
}

test_an_outcome_from_an_organisation_the_owner_refers_to if {
	[d] := decide([outcome("community-food-network", "city-of-edinburgh")])
	d.allow
}

test_an_outcome_naming_another_councils_request_is_refused if {
	[a, b] := decide([outcome("fife", "city-of-edinburgh"), outcome("community-food-network", "midlothian")])
	not a.allow
	a.reason_code == "not_request_owner"
	a.reason == "fife may not report outcomes of city-of-edinburgh's requests: only the request's owner or an organisation it refers requests to may"
	not b.allow
	b.reason_code == "not_request_owner"
}

test_an_outcome_of_its_own_from_an_org_that_owns_no_requests_is_refused if {
	[d] := decide([outcome("community-food-network", "")])
	not d.allow
	d.reason_code == "not_a_publisher"
	contains(d.reason, "owns no support requests")
}

test_an_unknown_dataset_has_no_publishers if {
	[d] := decide([record("nhs-lothian", "prescriptions")])
	not d.allow
	d.reason_code == "not_a_publisher"
}

test_one_decision_per_record_in_order if {
	decisions := decide([record("nhs-lothian", "shielding-list"), record("fife", "shielding-list")])
	[d.allow | some d in decisions] == [true, false]
}

test_invalid_rules_decide_nothing if {
	broken := object.remove(rules, ["referrals"])
	not authority.decisions with input as {"records": [record("nhs-lothian", "shielding-list")]}
		with data.agreements as agreements
		with data.authority as broken
}

test_missing_rules_decide_nothing if {
	not authority.decisions with input as {"records": [record("nhs-lothian", "shielding-list")]}
		with data.agreements as agreements
		with data.authority as "nothing"
}

test_the_datasets_an_organisation_may_publish if {
	datasets := authority.datasets with input as {"org": "community-food-network"}
		with data.agreements as agreements
		with data.authority as rules
	datasets == ["support-outcome"]
	board := authority.datasets with input as {"org": "nhs-lothian"}
		with data.agreements as agreements
		with data.authority as rules
	board == ["consent-change", "shielding-list"]
	council := authority.datasets with input as {"org": "fife"}
		with data.agreements as agreements
		with data.authority as rules
	council == ["consent-change", "support-outcome", "support-request"]
	nobody := authority.datasets with input as {"org": "nhs-lothain"}
		with data.agreements as agreements
		with data.authority as rules
	nobody == []
}
