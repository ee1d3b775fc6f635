package accord.own_data_test

import rego.v1

import data.accord.own_data

record(subject) := {
	"record_id": "r1",
	"subject_key": "k1",
	"fields": {"given_name": "Ann", "postcode": "EH1 1AA", "contact_phone": null},
	"subject": subject,
}

query(purpose, subject) := {
	"source_org": "city-of-edinburgh",
	"dataset": "support-request",
	"purpose": purpose,
	"records": [record(subject)],
}

test_requester_gets_its_own_non_null_fields if {
	[d] := own_data.decisions with input as query("shielding-support", {})
	d.allow
	d.recipient == "city-of-edinburgh"
	d.fields_released == ["given_name", "postcode"]
	d.principles == []
}

test_opted_out_person_is_not_returned if {
	[d] := own_data.decisions with input as query("shielding-support", {"opted_out": true})
	not d.allow
	d.fields_released == []
	contains(d.reasons[0], "opted out")
	d.principles == ["lawfulness", "the right to object"]
}

test_other_purpose_is_denied if {
	[d] := own_data.decisions with input as query("marketing", {})
	not d.allow
	contains(d.reasons[0], "purpose limitation")
	d.principles == ["purpose limitation"]
}

test_missing_source_is_denied if {
	q := object.remove(query("shielding-support", {}), ["source_org"])
	[d] := own_data.decisions with input as q
	not d.allow
	contains(d.reasons[0], "no source organisation")
	d.principles == ["accountability"]
}

test_answer_holds_the_decisions_and_what_made_them if {
	fixture := {"DSA-T1": {"id": "DSA-T1"}}
	a := own_data.answer with input as query("shielding-support", {})
		with data.agreements as fixture
	a.decisions == own_data.decisions with input as query("shielding-support", {})
	a.served.agreements == fixture
}
