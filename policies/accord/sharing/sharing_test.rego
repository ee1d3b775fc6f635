package accord.sharing_test

import data.accord.sharing

# --- fixtures -----------------------------------------------------------------

clauses := {
	"2.1": {"topic": "purpose", "text": "Purpose: support for people asked to shield"},
	"4.1": {"topic": "residence", "text": "Only residents of the recipient council's area"},
	"4.2": {"topic": "minimisation", "text": "Only the listed fields"},
	"5.1": {"topic": "clinical", "text": "No clinical detail beyond shielding"},
	"5.2": {"topic": "opt-out", "text": "An opt-out stops sharing at once"},
	"5.3": {"topic": "children", "text": "Children only to the council"},
	"8.1": {"topic": "emergency", "text": "This emergency agreement lapses after 30 days"},
}

base_agreement := {
	"id": "DSA-900",
	"type": "standard",
	"title": "Test board shares the shielding list with the councils in its area",
	"version": 3,
	"status": "active",
	"controller_relationship": "separate-controllers",
	"valid_from": "2026-01-01T00:00:00Z",
	"valid_until": "2027-12-31T23:59:59Z",
	"review_date": "2026-12-01",
	"retention": {"days": 90, "then": "delete"},
	"purposes": ["shielding-support"],
	"lawful_basis": {"article_6": "6(1)(e) public task", "article_9": "9(2)(h) health or social care"},
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
	"children": {"permitted": true, "dpia": "DPIA-900"},
	"clauses": clauses,
}

# Overrides replace top-level keys whole (object.union would merge nested objects).
agreements_with(overrides) := {"DSA-900": object.union(object.remove(base_agreement, object.keys(overrides)), overrides)}

without_children := {"DSA-900": object.remove(base_agreement, ["children"])}

base_request := {
	"now": "2026-11-27T18:00:00Z",
	"source_org": "nhs-test",
	"dataset": "shielding-list",
	"purpose": "shielding-support",
}

request(overrides, records) := object.union(object.union(base_request, overrides), {"records": records})

record(id, fields) := {"record_id": id, "subject_key": concat("", ["key-", id]), "fields": fields}

north_resident := {
	"event_id": "e-1",
	"given_name": "Ann",
	"family_name": "Kerr",
	"date_of_birth": "1950-01-01",
	"postcode": "NT1 1AA",
	"council_area": "North Town",
	"address_line2": null,
	"clinical_risk_group": "SPECIFIC_CANCERS",
	"chi_number": "0101011234",
	"contact_phone": "+441310000000",
}

decide(agreement_overrides, request_overrides, fields) := decide_record(
	agreement_overrides, request_overrides,
	record("r1", fields),
)

decide_record(agreement_overrides, request_overrides, rec) := decisions if {
	decisions := sharing.decisions with data.agreements as agreements_with(agreement_overrides)
		with input as request(request_overrides, [rec])
}

only(decisions, recipient) := d if {
	matching := [x | some x in decisions; x.recipient == recipient]
	count(matching) == 1
	d := matching[0]
}

e1 := "clinical_risk_group withheld: clinical detail never goes to non-health recipients: data minimisation, ethics rule E1, UK GDPR Art. 9, DSA-900 clause 5.1"

shared := "shared with north-town for purpose shielding-support: lawfulness (6(1)(e) public task; 9(2)(h) health or social care), DSA-900 clause 2.1"

# --- allow --------------------------------------------------------------------

test_resident_is_shared_with_their_council if {
	d := only(decide({}, {}, north_resident), "north-town")
	d == {
		"record_id": "r1",
		"recipient": "north-town",
		"agreement_id": "DSA-900",
		"agreement_version": 3,
		"allow": true,
		"fields_released": ["council_area", "family_name", "given_name", "postcode"],
		"fields_masked": {},
		"obligations": ["pseudonymise:subject_key", "retain:90d"],
		"reasons": [
			shared,
			e1,
			"chi_number, contact_phone, date_of_birth withheld: data minimisation, DSA-900 clause 4.2",
		],
		"clause": "2.1",
		"principle": "lawfulness",
		"clauses": ["2.1", "5.1", "4.2"],
		"principles": ["lawfulness", "data minimisation"],
		"content_independent": false,
		"retract": false,
	}
}

test_fields_released_excludes_unlisted_null_and_clinical if {
	d := only(decide({}, {}, north_resident), "north-town")
	released := {f | some f in d.fields_released}
	not "chi_number" in released # not listed
	not "contact_phone" in released # not listed
	not "address_line2" in released # listed, but null
	not "clinical_risk_group" in released # listed, but clinical
	not "event_id" in released # envelope, never listed
	d2 := only(decide({}, {}, object.union(north_resident, {"address_line2": "Flat 2"})), "north-town")
	"address_line2" in d2.fields_released
}

test_a_recipient_field_list_overrides_the_dataset_list if {
	ds := decide(
		{"datasets": {"shielding-list": {
			"fields": ["given_name", "postcode", "council_area"],
			"recipient_fields": {"north-town": ["council_area"]},
		}}},
		{},
		north_resident,
	)
	only(ds, "north-town").fields_released == ["council_area"]
	"chi_number, contact_phone, date_of_birth, family_name, given_name, postcode withheld: data minimisation, DSA-900 clause 4.2" in only(ds, "north-town").reasons
	ds2 := decide(
		{"datasets": {"shielding-list": {
			"fields": ["given_name", "council_area"],
			"recipient_fields": {"north-town": ["council_area"]},
		}}},
		{},
		object.union(north_resident, {"council_area": "South Town"}),
	)
	only(ds2, "south-town").fields_released == ["council_area", "given_name"]
}

test_masked_fields_leave_only_as_obligations if {
	d := only(
		decide(
			{"datasets": {"shielding-list": {
				"fields": ["given_name", "council_area", "date_of_birth", "clinical_risk_group"],
				"mask": {"date_of_birth": "year-only", "clinical_risk_group": "last-4"},
			}}},
			{},
			north_resident,
		),
		"north-town",
	)
	d.allow
	d.fields_released == ["council_area", "given_name"]
	d.fields_masked == {"date_of_birth": "year-only"} # clinical stays withheld, masked or not
	d.obligations == ["pseudonymise:subject_key", "mask:date_of_birth:year-only", "retain:90d"]
	"date_of_birth masked (year-only): data minimisation, DSA-900 clause 4.2" in d.reasons
}

test_retention_obligation_only_with_a_retention_period if {
	sharing.retention_obligation({"retention_days": 30}) == ["retain:30d"]
	sharing.retention_obligation({"retention_days": null}) == []
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

test_third_sector_gets_no_clinical_detail if {
	d := only(
		decide(
			{"recipients": [{"org": "food-bank", "kind": "third-sector", "council_area": "North Town"}]},
			{},
			north_resident,
		),
		"food-bank",
	)
	d.allow
	not "clinical_risk_group" in d.fields_released
	"clinical_risk_group withheld: clinical detail never goes to non-health recipients: data minimisation, ethics rule E1, UK GDPR Art. 9, DSA-900 clause 5.1" in d.reasons
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
		"reason": "denied: person lives in South Town, not in North Town's area: data minimisation, DSA-900 clause 4.1",
		"clause": "4.1",
	},
	"council_area missing": {
		"fields": {"given_name": "Ann", "date_of_birth": "1950-01-01"},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown: data minimisation, DSA-900 clause 4.1",
	},
	"council_area null": {
		"fields": {"given_name": "Ann", "council_area": null},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown: data minimisation, DSA-900 clause 4.1",
	},
	"council_area blank": {
		"fields": {"council_area": "  "},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown: data minimisation, DSA-900 clause 4.1",
	},
	"council_area not a string": {
		"fields": {"council_area": 7},
		"reason": "denied: record has no council_area, so residence in North Town's area cannot be shown: data minimisation, DSA-900 clause 4.1",
	},
	"draft agreement": {
		"agreement": {"status": "draft"},
		"reason": "denied: agreement DSA-900 is draft, not active: lawfulness, DSA-900",
		"independent": true,
	},
	"suspended agreement": {
		"agreement": {"status": "suspended", "status_reason": "breach under investigation"},
		"reason": "denied: agreement DSA-900 is suspended, not active (breach under investigation): lawfulness, DSA-900",
		"independent": true,
		"retract": true,
	},
	"agreement marked expired": {
		"agreement": {"status": "expired"},
		"reason": "denied: agreement DSA-900 is expired, not active: lawfulness, DSA-900",
		"independent": true,
		"retract": true,
	},
	"agreement without status": {
		"agreement": {"status": null},
		"reason": "denied: agreement DSA-900 is null, not active: lawfulness, DSA-900",
		"independent": true,
	},
	"valid_until in the past": {
		"agreement": {"valid_until": "2026-10-31T23:59:59Z"},
		"reason": "denied: agreement DSA-900 expired at 2026-10-31T23:59:59Z: lawfulness, DSA-900",
		"independent": true,
		"retract": true,
	},
	"emergency agreement past its time box": {
		"agreement": {"type": "emergency", "valid_from": "2026-10-01T00:00:00Z"},
		"reason": "denied: emergency agreement DSA-900 expired 30 days after it began: lawfulness, DSA-900 clause 8.1",
		"independent": true,
		"retract": true,
	},
	"valid_from in the future": {
		"request": {"now": "2025-12-31T23:59:59Z"},
		"reason": "denied: agreement DSA-900 not valid until 2026-01-01T00:00:00Z: lawfulness, DSA-900",
		"independent": true,
	},
	"unreadable validity": {
		"agreement": {"valid_from": "1 January 2026"},
		"reason": "denied: validity of agreement DSA-900 cannot be checked: valid_from, valid_until or the request's now is not RFC3339: lawfulness, DSA-900",
		"independent": true,
	},
	"unreadable now": {
		"request": {"now": "yesterday"},
		"reason": "denied: validity of agreement DSA-900 cannot be checked: valid_from, valid_until or the request's now is not RFC3339: lawfulness, DSA-900",
		"independent": true,
	},
	"wrong purpose": {
		"request": {"purpose": "marketing"},
		"reason": "denied: purpose marketing is not an agreed purpose: purpose limitation, DSA-900 clause 2.1",
		"independent": true,
	},
	"no purpose": {
		"request": {"purpose": ""},
		"reason": "denied: purpose (none given) is not an agreed purpose: purpose limitation, DSA-900 clause 2.1",
		"independent": true,
	},
	"condition the policy cannot check": {
		"agreement": {"conditions": {"resident_in_recipient_area": true, "over_70": true}},
		"reason": "denied: condition over_70 cannot be checked by this policy: accountability, DSA-900",
		"independent": true,
	},
	"agreement not matching the schema": {
		"agreement": {"controller_relationship": "friends"},
		"reason": "denied: agreement DSA-900 is malformed (controller_relationship: controller_relationship must be one of the following: \"separate-controllers\", \"joint-controllers\", \"controller-to-processor\"): accountability, DSA-900",
		"independent": true,
	},
	"unrecognised recipient kind": {
		"agreement": {"recipients": [{"org": "north-town", "kind": "broker", "council_area": "North Town"}]},
		"reason": "denied: recipient north-town is of kind \"broker\", which the ethics rules do not recognise, so clinical and children's safeguards cannot be applied: accountability, ethics rule E2, DSA-900",
		"independent": true,
	},
	"no Art. 9 condition for health data": {
		"agreement": {"lawful_basis": {"article_6": "6(1)(e) public task"}},
		"reason": "denied: shielding-list is special-category (health) data and the agreement names no Art. 9 condition: lawfulness, ethics rule E3, UK GDPR Art. 9, DSA-900",
		"independent": true,
	},
	"opted out": {
		"subject": {"opted_out": true},
		"reason": "denied: the person has opted out of sharing or withdrawn consent; sharing about them stops at once: the right to object, lawfulness and fairness, ethics rule E4, DSA-900 clause 5.2",
		"clause": "5.2",
		"retract": true,
	},
	"consent withdrawn": {
		"subject": {"opted_out": false, "consent_withdrawn": true},
		"reason": "denied: the person has opted out of sharing or withdrawn consent; sharing about them stops at once: the right to object, lawfulness and fairness, ethics rule E4, DSA-900 clause 5.2",
		"retract": true,
	},
	"opt-out state unreadable (fail closed)": {
		"subject": {"opted_out": "no"},
		"reason": "denied: the person's opt-out state cannot be read, so an opt-out is assumed: the right to object, lawfulness and fairness, ethics rule E4, DSA-900 clause 5.2",
		"retract": true,
	},
	"subject not an object (fail closed)": {
		"subject": "opted in",
		"reason": "denied: the person's opt-out state cannot be read, so an opt-out is assumed: the right to object, lawfulness and fairness, ethics rule E4, DSA-900 clause 5.2",
		"retract": true,
	},
	"child, agreement silent on children": {
		"agreements": without_children,
		"fields": object.union(north_resident, {"date_of_birth": "2015-03-01"}),
		"reason": "denied: the person is a child (under 18) and the agreement does not provide for children: children merit specific protection, ethics rule E5, DSA-900 clause 5.3",
	},
	"age unreadable, agreement excludes children (fail closed)": {
		"agreement": {"children": {"permitted": false}},
		"fields": object.union(north_resident, {"date_of_birth": null}),
		"reason": "denied: the person is possibly a child (no readable date_of_birth) and the agreement does not provide for children: children merit specific protection, ethics rule E5, DSA-900 clause 5.3",
	},
	"residence condition not a boolean (fail closed)": {
		"agreement": {
			"recipients": [{"org": "north-town", "kind": "council", "council_area": "South Town"}],
			"conditions": {"resident_in_recipient_area": "yes"},
		},
		"reason": "denied: person lives in North Town, not in South Town's area: data minimisation, DSA-900 clause 4.1",
		"independent": true, # the schema rejects a non-boolean condition too
	},
}

denied_with_reason(case) if {
	rec := object.union(
		record("r1", object.get(case, "fields", north_resident)),
		{"subject": s | s := case.subject},
	)
	fixture := object.get(case, "agreements", agreements_with(object.get(case, "agreement", {})))
	ds := sharing.decisions with data.agreements as fixture
		with input as request(object.get(case, "request", {}), [rec])
	d := only(ds, "north-town")
	d.allow == false
	d.fields_released == []
	d.fields_masked == {}
	d.obligations == []
	d.agreement_id == "DSA-900"
	d.agreement_version == 3
	case.reason in d.reasons
	d.content_independent == object.get(case, "independent", false)
	d.retract == object.get(case, "retract", false)
	d.clause == object.get(case, "clause", d.clause)
}

test_deny_table if {
	failures := {name | some name, case in deny_cases; not denied_with_reason(case)}
	print("deny cases failing:", failures)
	failures == set()
}

test_every_deny_lists_each_reason_that_applies if {
	d := only(decide({"status": "draft"}, {"purpose": "marketing"}, {"council_area": "South Town", "date_of_birth": "1950-01-01"}), "north-town")
	d.reasons == [
		"denied: agreement DSA-900 is draft, not active: lawfulness, DSA-900",
		"denied: purpose marketing is not an agreed purpose: purpose limitation, DSA-900 clause 2.1",
		"denied: person lives in South Town, not in North Town's area: data minimisation, DSA-900 clause 4.1",
	]
	d.clause == ""
	d.principle == "lawfulness"
}

test_children_table if {
	child := object.union(north_resident, {"date_of_birth": "2010-11-28"}) # 17 on the decision date
	adult := object.union(north_resident, {"date_of_birth": "2008-11-27"}) # 18 that day
	food_bank := [
		{"org": "north-town", "kind": "council", "council_area": "North Town"},
		{"org": "food-bank", "kind": "third-sector", "council_area": "North Town"},
	]
	only(decide({}, {}, child), "north-town").allow # permitted, council
	only(decide({}, {}, adult), "north-town").allow
	not only(decide({"recipients": food_bank}, {}, child), "food-bank").allow # never third-sector
	only(decide({"recipients": food_bank}, {}, adult), "food-bank").allow
	d := only(decide({"recipients": food_bank}, {}, child), "food-bank")
	d.reasons == ["denied: the person is a child (under 18) and children's records go only to health and council recipients: children merit specific protection, ethics rule E5, DSA-900 clause 5.3"]
	not only(decide({"children": {"permitted": false}}, {}, child), "north-town").allow
}

test_absent_or_false_opt_out_does_not_deny if {
	every subject in [{}, {"opted_out": false, "consent_withdrawn": false}, {"opted_out": null}] {
		only(decide_record({}, {}, object.union(record("r1", north_resident), {"subject": subject})), "north-town").allow
	}
	only(decide_record({}, {}, object.union(record("r1", north_resident), {"subject": null})), "north-town").allow
}

test_opt_out_denies_every_recipient_at_once if {
	rec := object.union(record("r1", north_resident), {"subject": {"opted_out": true}})
	ds := decide_record({}, {}, rec)
	count(ds) == 2
	every d in ds {
		not d.allow
		d.retract
	}
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
		reason := sprintf("no agreement covers dataset %s from %s: lawfulness", [request(overrides, []).dataset, request(overrides, []).source_org])
		ds == [
			{
				"record_id": "r1", "recipient": "", "agreement_id": "", "agreement_version": null,
				"allow": false, "fields_released": [], "fields_masked": {}, "obligations": [],
				"reasons": [reason], "clause": "", "principle": "lawfulness",
				"clauses": [], "principles": ["lawfulness"],
				"content_independent": true, "retract": false,
			},
			{
				"record_id": "r2", "recipient": "", "agreement_id": "", "agreement_version": null,
				"allow": false, "fields_released": [], "fields_masked": {}, "obligations": [],
				"reasons": [reason], "clause": "", "principle": "lawfulness",
				"clauses": [], "principles": ["lawfulness"],
				"content_independent": true, "retract": false,
			},
		]
	}
}

test_several_records_each_get_their_decisions if {
	records := [
		record("r1", north_resident),
		record("r2", {"given_name": "Bob", "council_area": "South Town", "date_of_birth": "1960-01-01"}),
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
		"id": "DSA-901",
		"status": "suspended",
		"recipients": [{"org": "east-town", "kind": "council", "council_area": "East Town"}],
	})
	ds := sharing.decisions with data.agreements as {"DSA-900": base_agreement, "DSA-901": second}
		with input as request({}, [record("r1", north_resident)])
	[[d.agreement_id, d.recipient, d.allow] | some d in ds] == [
		["DSA-900", "north-town", true],
		["DSA-900", "south-town", false],
		["DSA-901", "east-town", false],
	]
}

test_an_id_that_does_not_match_its_key_is_denied if {
	ds := sharing.decisions with data.agreements as {"DSA-902": base_agreement}
		with input as request({}, [record("r1", north_resident)])
	d := only(ds, "north-town")
	not d.allow
	d.reasons == ["denied: agreement DSA-902 is malformed (id field is DSA-900): accountability, DSA-902"]
}

test_the_fallback_denies_when_no_explanation_exists if {
	target := {"agreement_id": "DSA-900"}
	sharing.not_open_fallback(target, []) == [{"text": "denied: agreement DSA-900 is not in force", "clause": "", "principle": "lawfulness"}]
}

released_iff_allowed(d) if {
	d.allow
	count(d.fields_released) > 0
}

released_iff_allowed(d) if {
	not d.allow
	d.fields_released == []
}

# --- retractions ---------------------------------------------------------------

test_retractions_list_recipients_of_suspended_and_expired_agreements if {
	fixture := {
		"DSA-900": base_agreement,
		"DSA-901": object.union(base_agreement, {"id": "DSA-901", "status": "suspended"}),
		"DSA-902": object.union(base_agreement, {"id": "DSA-902", "valid_until": "2026-02-01T00:00:00Z"}),
		"DSA-903": object.union(base_agreement, {"id": "DSA-903", "status": "draft"}),
	}
	r := sharing.retractions with data.agreements as fixture with input as {"now": "2026-11-27T18:00:00Z"}
	[[x.agreement_id, x.recipient] | some x in r] == [
		["DSA-901", "north-town"], ["DSA-901", "south-town"],
		["DSA-902", "north-town"], ["DSA-902", "south-town"],
	]
	r[0].reasons == ["denied: agreement DSA-901 is suspended, not active: lawfulness, DSA-901"]
	r[2].reasons == ["denied: agreement DSA-902 expired at 2026-02-01T00:00:00Z: lawfulness, DSA-902"]
	r[0].datasets == ["shielding-list"]
}

test_active_agreements_have_nothing_to_retract if {
	count(sharing.retractions) == 0 with data.agreements as agreements_with({})
		with input as {"now": "2026-11-27T18:00:00Z"}
}

# --- a third-sector partner beside the councils ----------------------------------
# One provider with two agreements: its councils (DSA-900) and a food partner serving
# two of their areas (DSA-905) that gets delivery details only, never a child's record.

food_partner := {
	"id": "DSA-905",
	"type": "standard",
	"title": "Test board shares delivery details with a food partner",
	"version": 1,
	"status": "active",
	"controller_relationship": "separate-controllers",
	"valid_from": "2026-01-01T00:00:00Z",
	"valid_until": "2027-12-31T23:59:59Z",
	"review_date": "2026-12-01",
	"retention": {"days": 90, "then": "delete"},
	"purposes": ["shielding-support"],
	"lawful_basis": {"article_6": "6(1)(e) public task", "article_9": "9(2)(h) health or social care"},
	"providers": ["nhs-test"],
	"recipients": [{"org": "food-network", "kind": "third-sector", "council_areas": ["North Town", "East Town"]}],
	"datasets": {"shielding-list": {
		"fields": ["given_name", "family_name", "address_line1", "address_line2", "town", "postcode", "contact_phone"],
		"derived": ["needs"],
	}},
	"conditions": {"resident_in_recipient_area": true},
	"children": {"permitted": false},
	"clauses": clauses,
}

with_food_partner := {"DSA-900": base_agreement, "DSA-905": food_partner}

decide_with_food_partner(fields) := decisions if {
	decisions := sharing.decisions with data.agreements as with_food_partner
		with input as request({}, [record("r1", fields)])
}

test_every_agreement_of_the_provider_is_decided if {
	ds := decide_with_food_partner(north_resident)
	[[d.agreement_id, d.recipient] | some d in ds] == [
		["DSA-900", "north-town"], ["DSA-900", "south-town"], ["DSA-905", "food-network"],
	]
	only(ds, "north-town").allow
	only(ds, "food-network").allow
}

test_food_partner_gets_delivery_details_only if {
	fields := object.union(north_resident, {
		"shielding_status": "SHIELDING", "address_line1": "1 Main Street",
		"town": "Northton", "needs": ["FOOD"], "priority": "HIGH",
	})
	d := only(decide_with_food_partner(fields), "food-network")
	d.agreement_id == "DSA-905"
	d.allow
	d.fields_released == ["address_line1", "contact_phone", "family_name", "given_name", "needs", "postcode", "town"]
	d.clauses == ["2.1", "5.1", "4.2"]
	d.principles == ["lawfulness", "data minimisation"]
	"chi_number, council_area, date_of_birth, priority, shielding_status withheld: data minimisation, DSA-905 clause 4.2" in d.reasons
}

test_food_partner_serves_only_its_areas if {
	fields := object.union(north_resident, {"council_area": "South Town"})
	d := only(decide_with_food_partner(fields), "food-network")
	not d.allow
	d.reasons == ["denied: person lives in South Town, not in the areas food-network serves (East Town, North Town): data minimisation, DSA-905 clause 4.1"]
	d.clauses == ["4.1"]
	d.principles == ["data minimisation"]
}

test_food_partner_never_gets_children if {
	ds := decide_with_food_partner(object.union(north_resident, {"date_of_birth": "2015-01-01"}))
	not only(ds, "food-network").allow
	only(ds, "food-network").principles == ["children merit specific protection"]
	only(ds, "north-town").allow
}

# --- clauses and principles ----------------------------------------------------

test_a_deny_cites_each_clause_and_principle_once_decisive_first if {
	fields := object.union(north_resident, {"council_area": "South Town", "date_of_birth": "2015-01-01"})
	d := only(decide({"children": {"permitted": false}}, {"purpose": "marketing"}, fields), "north-town")
	not d.allow
	d.clause == "2.1"
	d.principle == "purpose limitation"
	d.clauses == ["2.1", "4.1", "5.3"]
	d.principles == ["purpose limitation", "data minimisation", "children merit specific protection"]
}

test_distinct_keeps_first_appearances_and_drops_empty if {
	sharing.distinct(["4.2", "", "5.1", "4.2", "2.1", "5.1"]) == ["4.2", "5.1", "2.1"]
	sharing.distinct([]) == []
}

# --- recipients serving several areas --------------------------------------------

several_areas := {"recipients": [{"org": "food-bank", "kind": "third-sector", "council_areas": ["North Town", "East Town"]}]}

test_a_recipient_serving_several_areas_gets_their_residents if {
	d := only(decide(several_areas, {}, north_resident), "food-bank")
	d.allow
	d.fields_released == ["council_area", "family_name", "given_name", "postcode"]
}

test_a_recipient_serving_several_areas_is_denied_other_residents if {
	fields := object.union(north_resident, {"council_area": "South Town"})
	d := only(decide(several_areas, {}, fields), "food-bank")
	not d.allow
	d.reasons == ["denied: person lives in South Town, not in the areas food-bank serves (East Town, North Town): data minimisation, DSA-900 clause 4.1"]
}

test_a_recipient_naming_no_area_is_denied_under_a_residence_condition if {
	overrides := {"recipients": [{"org": "food-bank", "kind": "third-sector"}]}
	d := only(decide(overrides, {}, north_resident), "food-bank")
	not d.allow

	# The agreement schema also refuses it (fail closed twice over).
	"denied: person lives in North Town, not in food-bank's area: data minimisation, DSA-900 clause 4.1" in d.reasons
	no_area := only(decide(overrides, {}, object.remove(north_resident, ["council_area"])), "food-bank")
	"denied: record has no council_area, so residence in food-bank's area cannot be shown: data minimisation, DSA-900 clause 4.1" in no_area.reasons
}

# --- derived attributes (needs, priority, ...) ---------------------------------

with_derived := object.union(north_resident, {"needs": ["FOOD"], "priority": "MEDIUM", "match_method": "chi"})

test_derived_attributes_are_released_only_when_listed if {
	d := only(decide({}, {}, with_derived), "north-town")
	d.allow
	not "needs" in d.fields_released
	not "priority" in d.fields_released
	some reason in d.reasons
	contains(reason, "date_of_birth, match_method, needs, priority withheld: data minimisation")
	datasets := {"shielding-list": {"fields": ["given_name"], "derived": ["needs"]}}
	d2 := only(decide({"datasets": datasets}, {}, with_derived), "north-town")
	d2.fields_released == ["given_name", "needs"]
}

test_recipient_derived_replaces_the_dataset_list if {
	datasets := {"shielding-list": {
		"fields": ["given_name"], "derived": ["needs", "priority"],
		"recipient_derived": {"south-town": []},
	}}
	south := object.union(with_derived, {"council_area": "South Town"})
	only(decide({"datasets": datasets}, {}, south), "south-town").fields_released == ["given_name"]
	only(decide({"datasets": datasets}, {}, with_derived), "north-town").fields_released == ["given_name", "needs", "priority"]
}

# --- the gate's query -----------------------------------------------------------

test_answer_holds_the_decisions_and_what_made_them if {
	fixture := agreements_with({})
	a := sharing.answer with data.agreements as fixture
		with input as request({}, [record("r1", north_resident)])
	a.decisions == decide({}, {}, north_resident)
	a.served == {"rules": data.accord.revision.rules, "agreements": fixture}
}
