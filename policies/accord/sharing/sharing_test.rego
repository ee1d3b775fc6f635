package accord.sharing_test

import data.accord.sharing

# --- fixtures -----------------------------------------------------------------

base_agreement := {
	"id": "DSA-T",
	"title": "Test board shares the shielding list with the councils in its area",
	"version": 3,
	"status": "active",
	"valid_from": "2026-01-01T00:00:00Z",
	"valid_until": "2027-12-31T23:59:59Z",
	"purposes": ["shielding-support"],
	"providers": ["nhs-test"],
	"recipients": [
		{"org": "north-town", "kind": "council", "council_area": "North Town"},
		{"org": "south-town", "kind": "council", "council_area": "South Town"},
	],
	# Lists clinical_risk_group on purpose: ethics must still withhold it.
	"datasets": {"shielding-list": {"fields": [
		"given_name", "family_name", "postcode", "council_area",
		"address_line2", "clinical_risk_group",
	]}},
	"conditions": {"resident_in_recipient_area": true},
}

agreements_with(overrides) := {"DSA-T": object.union(base_agreement, overrides)}

base_request := {
	"now": "2026-11-27T18:00:00Z",
	"source_org": "nhs-test",
	"dataset": "shielding-list",
	"purpose": "shielding-support",
}

request(overrides, records) := object.union(object.union(base_request, overrides), {"records": records})

record(id, fields) := {"record_id": id, "subject_key": concat("", ["key-", id]), "fields": fields}

north_resident := {
	"given_name": "Ann",
	"family_name": "Kerr",
	"postcode": "NT1 1AA",
	"council_area": "North Town",
	"address_line2": null,
	"clinical_risk_group": "SPECIFIC_CANCERS",
	"chi_number": "0101011234",
	"contact_phone": "+441310000000",
}

decide(agreement_overrides, request_overrides, fields) := decisions if {
	decisions := sharing.decisions with data.agreements as agreements_with(agreement_overrides)
		with input as request(request_overrides, [record("r1", fields)])
}

only(decisions, recipient) := d if {
	matching := [x | some x in decisions; x.recipient == recipient]
	count(matching) == 1
	d := matching[0]
}

e1 := "clinical_risk_group withheld: clinical detail never goes to non-health recipients (ethics rule E1, UK GDPR Art. 9)"

# --- allow --------------------------------------------------------------------

test_resident_is_shared_with_their_council if {
	d := only(decide({}, {}, north_resident), "north-town")
	d == {
		"record_id": "r1",
		"recipient": "north-town",
		"agreement_id": "DSA-T",
		"agreement_version": 3,
		"allow": true,
		"fields_released": ["council_area", "family_name", "given_name", "postcode"],
		"obligations": [],
		"reasons": [
			"shared under DSA-T clause 2.1 for purpose shielding-support",
			e1,
			"chi_number, contact_phone withheld: not listed in DSA-T clause 4.2 (data minimisation)",
		],
	}
}

test_fields_released_excludes_unlisted_null_and_clinical if {
	d := only(decide({}, {}, north_resident), "north-town")
	released := {f | some f in d.fields_released}
	not "chi_number" in released # not listed
	not "contact_phone" in released # not listed
	not "address_line2" in released # listed, but null
	not "clinical_risk_group" in released # listed, but clinical
	d2 := only(decide({}, {}, object.union(north_resident, {"address_line2": "Flat 2"})), "north-town")
	"address_line2" in d2.fields_released
}

test_clinical_detail_never_goes_to_a_council if {
	# Even an agreement that lists only clinical_risk_group does not release it.
	ds := decide(
		{"datasets": {"shielding-list": {"fields": ["clinical_risk_group", "council_area"]}}},
		{},
		north_resident,
	)
	every d in ds {
		not "clinical_risk_group" in d.fields_released
	}
	d := only(ds, "north-town")
	d.allow
	d.fields_released == ["council_area"]
	e1 in d.reasons
}

test_clinical_detail_may_go_to_a_health_recipient if {
	d := only(
		decide(
			{
				"recipients": [{"org": "gp-practice", "kind": "health", "council_area": "North Town"}],
				"conditions": {"resident_in_recipient_area": false},
			},
			{},
			object.union(north_resident, {"council_area": "Elsewhere"}),
		),
		"gp-practice",
	)
	d.allow
	"clinical_risk_group" in d.fields_released
	not e1 in d.reasons
}

test_now_defaults_to_the_current_time if {
	ds := sharing.decisions with data.agreements as agreements_with({})
		with input as object.remove(request({}, [record("r1", north_resident)]), ["now"])
		with time.now_ns as time.parse_rfc3339_ns("2026-06-01T00:00:00Z")
	only(ds, "north-town").allow
	ds2 := sharing.decisions with data.agreements as agreements_with({})
		with input as request({"now": null}, [record("r1", north_resident)])
		with time.now_ns as time.parse_rfc3339_ns("2030-06-01T00:00:00Z")
	not only(ds2, "north-town").allow
}

# --- deny ---------------------------------------------------------------------

deny_cases := {
	"non-resident": {
		"fields": {"council_area": "South Town"},
		"reason": "denied: person lives in South Town, not in North Town's area (DSA-T clause 4.1, data minimisation)",
	},
	"council_area missing": {
		"fields": {"given_name": "Ann"},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown (DSA-T clause 4.1, data minimisation)",
	},
	"council_area null": {
		"fields": {"given_name": "Ann", "council_area": null},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown (DSA-T clause 4.1, data minimisation)",
	},
	"council_area blank": {
		"fields": {"council_area": "  "},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown (DSA-T clause 4.1, data minimisation)",
	},
	"council_area not a string": {
		"fields": {"council_area": 7},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown (DSA-T clause 4.1, data minimisation)",
	},
	"draft agreement": {
		"agreement": {"status": "draft"},
		"reason": "denied: agreement DSA-T is draft, not active (lawfulness)",
	},
	"suspended agreement": {
		"agreement": {"status": "suspended"},
		"reason": "denied: agreement DSA-T is suspended, not active (lawfulness)",
	},
	"agreement marked expired": {
		"agreement": {"status": "expired"},
		"reason": "denied: agreement DSA-T is expired, not active (lawfulness)",
	},
	"agreement without status": {
		"agreement": {"status": null},
		"reason": "denied: agreement DSA-T is null, not active (lawfulness)",
	},
	"valid_until in the past": {
		"agreement": {"valid_until": "2026-10-31T23:59:59Z"},
		"reason": "denied: agreement DSA-T expired at 2026-10-31T23:59:59Z (lawfulness)",
	},
	"valid_from in the future": {
		"request": {"now": "2025-12-31T23:59:59Z"},
		"reason": "denied: agreement DSA-T not valid until 2026-01-01T00:00:00Z (lawfulness)",
	},
	"unreadable validity": {
		"agreement": {"valid_from": "1 January 2026"},
		"reason": "denied: validity of agreement DSA-T cannot be checked: valid_from, valid_until or the request's now is not RFC3339 (lawfulness)",
	},
	"unreadable now": {
		"request": {"now": "yesterday"},
		"reason": "denied: validity of agreement DSA-T cannot be checked: valid_from, valid_until or the request's now is not RFC3339 (lawfulness)",
	},
	"wrong purpose": {
		"request": {"purpose": "marketing"},
		"reason": "denied: purpose marketing is not an agreed purpose of DSA-T clause 2.1 (purpose limitation)",
	},
	"no purpose": {
		"request": {"purpose": ""},
		"reason": "denied: purpose (none given) is not an agreed purpose of DSA-T clause 2.1 (purpose limitation)",
	},
	"condition the policy cannot check": {
		"agreement": {"conditions": {"resident_in_recipient_area": true, "over_70": true}},
		"reason": "denied: agreement DSA-T has condition over_70, which this policy cannot check (accountability)",
	},
	"unrecognised recipient kind": {
		"agreement": {"recipients": [{"org": "north-town", "kind": "broker", "council_area": "North Town"}]},
		"reason": "denied: recipient north-town is of kind \"broker\", which ethics rule E2 does not recognise, so clinical safeguards cannot be applied (accountability)",
	},
	"recipient without a council_area": {
		"agreement": {"recipients": [{"org": "north-town", "kind": "council"}]},
		"reason": "denied: person lives in North Town, not in north-town's area (DSA-T clause 4.1, data minimisation)",
	},
	"residence condition not a boolean (fail closed)": {
		"agreement": {
			"recipients": [{"org": "north-town", "kind": "council", "council_area": "South Town"}],
			"conditions": {"resident_in_recipient_area": "yes"},
		},
		"reason": "denied: person lives in North Town, not in South Town's area (DSA-T clause 4.1, data minimisation)",
	},
}

denied_with_reason(case) if {
	d := only(
		decide(
			object.get(case, "agreement", {}),
			object.get(case, "request", {}),
			object.get(case, "fields", north_resident),
		),
		"north-town",
	)
	d.allow == false
	d.fields_released == []
	d.agreement_id == "DSA-T"
	d.agreement_version == 3
	case.reason in d.reasons
}

test_deny_table if {
	failures := {name | some name, case in deny_cases; not denied_with_reason(case)}
	print("deny cases failing:", failures)
	failures == set()
}

test_every_deny_lists_each_reason_that_applies if {
	d := only(decide({"status": "draft"}, {"purpose": "marketing"}, {"council_area": "South Town"}), "north-town")
	d.reasons == [
		"denied: agreement DSA-T is draft, not active (lawfulness)",
		"denied: purpose marketing is not an agreed purpose of DSA-T clause 2.1 (purpose limitation)",
		"denied: person lives in South Town, not in North Town's area (DSA-T clause 4.1, data minimisation)",
	]
}

# --- coverage of records and recipients --------------------------------------

test_record_no_agreement_covers_gets_one_deny if {
	cases := [
		{"source_org": "nhs-nowhere"},
		{"dataset": "vaccinations"},
	]
	every overrides in cases {
		ds := sharing.decisions with data.agreements as agreements_with({})
			with input as request(overrides, [record("r1", north_resident), record("r2", {})])
		ds == [
			{
				"record_id": "r1", "recipient": "", "agreement_id": "", "agreement_version": null,
				"allow": false, "fields_released": [], "obligations": [],
				"reasons": [sprintf("no agreement covers dataset %s from %s", [request(overrides, []).dataset, request(overrides, []).source_org])],
			},
			{
				"record_id": "r2", "recipient": "", "agreement_id": "", "agreement_version": null,
				"allow": false, "fields_released": [], "obligations": [],
				"reasons": [sprintf("no agreement covers dataset %s from %s", [request(overrides, []).dataset, request(overrides, []).source_org])],
			},
		]
	}
}

test_several_records_each_get_their_decisions if {
	records := [
		record("r1", north_resident),
		record("r2", {"given_name": "Bob", "council_area": "South Town"}),
		record("r3", {"given_name": "Cat"}),
		"not a record",
		{"record_id": "r4"},
	]
	ds := sharing.decisions with data.agreements as agreements_with({}) with input as request({}, records)
	count(ds) == 8 # 4 records x 2 recipients; the string is ignored
	allowed := {[d.record_id, d.recipient] | some d in ds; d.allow}
	allowed == {["r1", "north-town"], ["r2", "south-town"]}
	every d in ds {
		released_iff_allowed(d)
		count(d.reasons) > 0
	}
	[d.record_id | some d in ds] == ["r1", "r1", "r2", "r2", "r3", "r3", "r4", "r4"]
}

test_every_recipient_of_every_covering_agreement_is_decided if {
	second := object.union(base_agreement, {
		"id": "DSA-U",
		"status": "suspended",
		"recipients": [{"org": "east-town", "kind": "council", "council_area": "East Town"}],
	})
	ds := sharing.decisions with data.agreements as {"DSA-T": base_agreement, "DSA-U": second}
		with input as request({}, [record("r1", north_resident)])
	[[d.agreement_id, d.recipient, d.allow] | some d in ds] == [
		["DSA-T", "north-town", true],
		["DSA-T", "south-town", false],
		["DSA-U", "east-town", false],
	]
}

released_iff_allowed(d) if {
	d.allow
	count(d.fields_released) > 0
}

released_iff_allowed(d) if {
	not d.allow
	d.fields_released == []
}

# --- the shipped agreements ---------------------------------------------------

test_shipped_lothian_agreement_shares_with_edinburgh if {
	ds := sharing.decisions with input as {
		"now": "2026-11-27T18:00:00Z",
		"source_org": "nhs-lothian",
		"dataset": "shielding-list",
		"purpose": "shielding-support",
		"records": [record("r1", {"given_name": "Ann", "council_area": "City of Edinburgh", "clinical_risk_group": "SPECIFIC_CANCERS"})],
	}
	count(ds) == 4
	d := only(ds, "city-of-edinburgh")
	d.agreement_id == "DSA-010"
	d.allow
	d.fields_released == ["council_area", "given_name"]
	e1 in d.reasons
}

test_shipped_orkney_agreement_is_draft_so_people_are_withheld if {
	ds := sharing.decisions with input as {
		"now": "2026-11-27T18:00:00Z",
		"source_org": "nhs-orkney",
		"dataset": "shielding-list",
		"purpose": "shielding-support",
		"records": [record("r1", {"given_name": "Ann", "council_area": "Orkney Islands"})],
	}
	d := only(ds, "orkney-islands")
	d.agreement_id == "DSA-011"
	not d.allow
	d.reasons == ["denied: agreement DSA-011 is draft, not active (lawfulness)"]
}
