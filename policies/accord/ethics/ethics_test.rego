package accord.ethics_test

import data.accord.ethics

e1(field) := sprintf(
	"%s withheld: clinical detail never goes to non-health recipients (ethics rule E1, UK GDPR Art. 9)",
	[field],
)

test_withheld_fields_table if {
	cases := [
		# [recipient kind, fields withheld]
		["health", set()],
		["council", {"clinical_risk_group"}],
		["third-sector", {"clinical_risk_group"}],
		["", {"clinical_risk_group"}],
	]
	every case in cases {
		ethics.withheld_fields(case[0]) == case[1]
	}
}

test_chi_number_is_an_identifier_not_clinical if {
	not "chi_number" in ethics.clinical_fields
}

test_withheld_reason_text if {
	ethics.withheld_reason("clinical_risk_group") == "clinical_risk_group withheld: clinical detail never goes to non-health recipients (ethics rule E1, UK GDPR Art. 9)"
}

test_withheld_reasons_only_for_fields_present if {
	ethics.withheld_reasons("council", {"given_name", "clinical_risk_group"}) == [e1("clinical_risk_group")]
	ethics.withheld_reasons("council", {"given_name"}) == []
	ethics.withheld_reasons("health", {"clinical_risk_group"}) == []
}

test_clinical_fields_can_be_extended if {
	extended := {"clinical_risk_group", "diagnosis"}
	ethics.withheld_fields("council") == extended with ethics.clinical_fields as extended
	ethics.withheld_reasons("council", {"diagnosis", "postcode", "clinical_risk_group"}) == [
		e1("clinical_risk_group"),
		e1("diagnosis"),
	] with ethics.clinical_fields as extended
}

test_permits_table if {
	cases := [["health", true], ["council", true], ["marketing-agency", false], ["", false]]
	every case in cases {
		permits_bool(case[0]) == case[1]
		denied_bool(case[0]) != case[1]
	}
}

denied_bool(kind) if {
	count(ethics.denials("org", kind)) > 0
} else := false

permits_bool(kind) if {
	ethics.permits(kind)
} else := false

test_denial_text if {
	ethics.denials("acme", "broker") == ["denied: recipient acme is of kind \"broker\", which ethics rule E2 does not recognise, so clinical safeguards cannot be applied (accountability)"]
}
