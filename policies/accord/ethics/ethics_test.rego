package accord.ethics_test

import data.accord.ethics

ns(ts) := time.parse_rfc3339_ns(ts)

test_withheld_fields_table if {
	cases := [
		# [recipient kind, fields withheld]
		["health", set()],
		["council", ethics.clinical_fields],
		["third-sector", ethics.clinical_fields],
		["", ethics.clinical_fields],
	]
	every case in cases {
		ethics.withheld_fields(case[0]) == case[1]
	}
}

test_is_shielding_and_identifiers_are_not_clinical if {
	not "chi_number" in ethics.clinical_fields
	not "shielding_status" in ethics.clinical_fields
	"shielding_status" in ethics.special_category_fields
}

test_withheld_finding_only_for_fields_present if {
	ethics.withheld("council", {"given_name", "clinical_risk_group", "diagnosis"}) == [{
		"text": "clinical_risk_group, diagnosis withheld: clinical detail never goes to non-health recipients",
		"topic": "clinical",
		"principle": "data minimisation",
		"rule": "ethics rule E1, UK GDPR Art. 9",
	}]
	ethics.withheld("council", {"given_name"}) == []
	ethics.withheld("health", {"clinical_risk_group"}) == []
}

test_kind_denials_table if {
	cases := [["health", 0], ["council", 0], ["third-sector", 0], ["marketing-agency", 1], ["", 1]]
	every case in cases {
		count(ethics.kind_denials("org", case[0])) == case[1]
	}
	ethics.kind_denials("acme", "broker")[0].rule == "ethics rule E2"
}

test_article_9_table if {
	with9 := {"lawful_basis": {"article_6": "6(1)(e) public task", "article_9": "9(2)(h) health or social care"}}
	without9 := {"lawful_basis": {"article_6": "6(1)(e) public task"}}
	bogus9 := {"lawful_basis": {"article_6": "6(1)(e) public task", "article_9": "because"}}
	ethics.article_9_denials(with9, "shielding-list", set()) == []
	count(ethics.article_9_denials(without9, "shielding-list", set())) == 1
	count(ethics.article_9_denials(bogus9, "shielding-list", set())) == 1
	count(ethics.article_9_denials(without9, "support-request", {"clinical_risk_group"})) == 1
	ethics.article_9_denials(without9, "support-request", {"given_name"}) == []
}

test_objection_table if {
	cases := [
		[{}, ""],
		[{"subject": null}, ""],
		[{"subject": {}}, ""],
		[{"subject": {"opted_out": false, "consent_withdrawn": null}}, ""],
		[{"subject": {"opted_out": true}}, "objected"],
		[{"subject": {"consent_withdrawn": true}}, "objected"],
		[{"subject": {"opted_out": "no"}}, "unreadable"],
		[{"subject": {"consent_withdrawn": 0}}, "unreadable"],
		[{"subject": "yes"}, "unreadable"],
	]
	every case in cases {
		ethics.objection(case[0]) == case[1]
	}
	ethics.objection_denials("") == []
	ethics.objection_denials("objected")[0].topic == "opt-out"
	ethics.objection_denials("unreadable")[0].text == "denied: the person's opt-out state cannot be read, so an opt-out is assumed"
}

test_age_band_table if {
	now := ns("2026-11-27T18:00:00Z")
	cases := [
		[{"date_of_birth": "1950-01-01"}, "adult"],
		[{"date_of_birth": "2008-11-27"}, "adult"], # 18th birthday
		[{"date_of_birth": "2008-11-28"}, "child"],
		[{"date_of_birth": "2020-01-01"}, "child"],
		[{"date_of_birth": null}, "unknown"],
		[{"date_of_birth": "1 Jan 1950"}, "unknown"],
		[{}, "unknown"],
	]
	every case in cases {
		ethics.age_band(case[0], now) == case[1]
	}
}

test_children_denials_table if {
	permitted := {"children": {"permitted": true}}
	cases := [
		# [agreement, kind, band, denied?]
		[{}, "council", "adult", false],
		[permitted, "council", "child", false],
		[permitted, "health", "unknown", false],
		[permitted, "third-sector", "child", true],
		[{}, "council", "child", true],
		[{"children": {"permitted": false}}, "health", "unknown", true],
	]
	every case in cases {
		count(ethics.children_denials(case[0], case[1], case[2])) > 0 == case[3]
	}
}
