package accord.agreements_test

import data.accord.agreements

ns(ts) := time.parse_rfc3339_ns(ts)

fixture := {
	"DSA-101": {
		"id": "DSA-101",
		"status": "active",
		"valid_from": "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"providers": ["nhs-one"],
		"recipients": [{"org": "town", "kind": "council", "council_area": "Town"}],
		"datasets": {"shielding-list": {
			"fields": ["given_name", "postcode"],
			"recipient_fields": {"village": ["postcode"]},
			"mask": {"postcode": "outward-code"},
		}},
		"conditions": {"resident_in_recipient_area": true},
		"clauses": {
			"4.2": {"topic": "minimisation", "text": "Only the listed fields"},
			"4.10": {"topic": "minimisation", "text": "And nothing else"},
			"9": "not an object",
		},
	},
	"DSA-102": {
		"id": "DSA-102",
		"status": "draft",
		"valid_from": "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"providers": ["nhs-two", "nhs-one"],
		"recipients": [],
		"datasets": {"shielding-list": {"fields": []}, "other": {"fields": ["x"]}},
	},
	"DSA-103": {
		"id": "DSA-103",
		"status": "active",
		"valid_from": "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"providers": ["nhs-one"],
		"recipients": [],
		"datasets": {"other": {"fields": ["x"]}},
	},
}

# A complete agreement, as an officer would write one (the shipped agreements themselves
# are checked by `accord policy validate`, not here, so changing them never fails a test).
complete := {
	"id": "DSA-110",
	"type": "standard",
	"title": "A board shares the shielding list with its council",
	"version": 2,
	"status": "active",
	"controller_relationship": "separate-controllers",
	"valid_from": "2026-01-01T00:00:00Z",
	"valid_until": "2027-12-31T23:59:59Z",
	"review_date": "2026-12-01",
	"retention": {"days": 365, "then": "delete"},
	"purposes": ["shielding-support"],
	"lawful_basis": {"article_6": "6(1)(e) public task", "article_9": "9(2)(h) health or social care"},
	"providers": ["nhs-one"],
	"recipients": [{"org": "town", "kind": "council", "council_area": "Town"}],
	"datasets": {"shielding-list": {
		"fields": ["given_name", "family_name", "postcode"],
		"derived": ["needs", "priority"],
		"recipient_derived": {"town": ["needs"]},
	}},
	"conditions": {"resident_in_recipient_area": true},
	"children": {"permitted": true, "dpia": "DPIA-110"},
	"clauses": {
		"2.1": {"topic": "purpose", "text": "Purpose: support for people asked to shield"},
		"4.1": {"topic": "residence", "text": "Only residents of the council's area"},
		"4.2": {"topic": "minimisation", "text": "Only the listed fields"},
		"5.1": {"topic": "clinical", "text": "No clinical detail beyond shielding"},
		"5.2": {"topic": "opt-out", "text": "An opt-out stops sharing at once"},
		"5.3": {"topic": "children", "text": "Children only to the council"},
	},
}

test_a_complete_agreement_is_well_formed if {
	by_id := agreements.by_id with data.agreements as {"DSA-110": complete}
	count(by_id) == 1
	problems := agreements.problems with data.agreements as {"DSA-110": complete}
	problems == set()
}

test_a_complete_agreement_cites_every_clause_the_rules_need if {
	every topic in ["purpose", "residence", "minimisation", "clinical", "opt-out", "children"] {
		agreements.clause(complete, topic) != ""
	}
	agreements.cite("DSA-110", complete, "minimisation") == "DSA-110 clause 4.2"
}

test_a_suspended_or_trimmed_agreement_is_still_well_formed if {
	trimmed := object.union(complete, {
		"status": "suspended", "status_reason": "under review",
		"datasets": {"shielding-list": {"fields": ["given_name"]}},
	})
	problems := agreements.problems with data.agreements as {"DSA-110": trimmed}
	problems == set()
}

# --- accessor -----------------------------------------------------------------

test_by_id_is_empty_when_no_agreements_are_loaded if {
	agreements.by_id == {} with data.agreements as []
}

test_covering_table if {
	cases := [
		["nhs-one", "shielding-list", ["DSA-101", "DSA-102"]],
		["nhs-two", "shielding-list", ["DSA-102"]],
		["nhs-one", "other", ["DSA-102", "DSA-103"]],
		["nhs-three", "shielding-list", []],
		["nhs-one", "missing", []],
	]
	every case in cases {
		agreements.covering(case[0], case[1]) == case[2] with data.agreements as fixture
	}
}

test_fields_per_recipient if {
	a := fixture["DSA-101"]
	agreements.fields(a, "shielding-list", "town") == {"given_name", "postcode"}
	agreements.fields(a, "shielding-list", "village") == {"postcode"}
	agreements.fields(a, "other", "town") == set()
}

test_masks if {
	agreements.masks(fixture["DSA-101"], "shielding-list") == {"postcode": "outward-code"}
	agreements.masks(fixture["DSA-102"], "shielding-list") == {}
}

test_clause_and_cite if {
	a := fixture["DSA-101"]
	agreements.clause(a, "minimisation") == "4.10" # lowest as text; both are minimisation clauses
	agreements.clause(a, "purpose") == ""
	agreements.clause(fixture["DSA-102"], "purpose") == ""
	agreements.cite("DSA-101", a, "minimisation") == "DSA-101 clause 4.10"
	agreements.cite("DSA-101", a, "purpose") == "DSA-101"
}

# --- time ---------------------------------------------------------------------

test_in_force_table if {
	a := fixture["DSA-101"]
	cases := [
		# [agreement, now, in force?]
		[a, "2026-06-01T00:00:00Z", true],
		[a, "2026-01-01T00:00:00Z", true], # valid_from is inclusive
		[a, "2026-12-31T23:59:59Z", true], # valid_until is inclusive
		[a, "2025-12-31T23:59:59Z", false],
		[a, "2027-01-01T00:00:00Z", false],
		[fixture["DSA-102"], "2026-06-01T00:00:00Z", false], # draft
		[object.union(a, {"status": "suspended"}), "2026-06-01T00:00:00Z", false],
		[object.union(a, {"valid_until": "soon"}), "2026-06-01T00:00:00Z", false],
		# emergency: at most 30 days from valid_from, whatever valid_until says
		[object.union(a, {"type": "emergency"}), "2026-01-31T00:00:00Z", true],
		[object.union(a, {"type": "emergency"}), "2026-01-31T00:00:01Z", false],
		[object.union(a, {"type": "emergency", "valid_until": "2026-01-10T00:00:00Z"}), "2026-01-11T00:00:00Z", false],
	]
	every case in cases {
		in_force_bool(case[0], ns(case[1])) == case[2]
	}
}

in_force_bool(agreement, now) if {
	agreements.in_force(agreement, now)
} else := false

test_emergency_cut_short if {
	a := fixture["DSA-101"]
	agreements.emergency_cut_short(object.union(a, {"type": "emergency"}))
	not agreements.emergency_cut_short(object.union(a, {"type": "emergency", "valid_until": "2026-01-10T00:00:00Z"}))
	not agreements.emergency_cut_short(a)
}

test_not_yet_valid_and_expired if {
	a := fixture["DSA-101"]
	agreements.not_yet_valid(a, ns("2025-06-01T00:00:00Z"))
	not agreements.expired(a, ns("2025-06-01T00:00:00Z"))
	agreements.expired(a, ns("2027-06-01T00:00:00Z"))
	not agreements.not_yet_valid(a, ns("2027-06-01T00:00:00Z"))
}

# --- data checks --------------------------------------------------------------

test_problems_reported if {
	bad := {"DSA-900": {
		"id": "DSA-901",
		"status": "pending",
		"valid_from": "2026-01-01",
		"valid_until": "2027-12-31T23:59:59Z",
	}}
	problems := agreements.problems with data.agreements as bad
	"DSA-900: id field does not match its key" in problems
	"DSA-900: valid_until must be a timestamp after valid_from" in problems
	"DSA-900: status: status must be one of the following: \"draft\", \"active\", \"suspended\", \"expired\"" in problems
	"DSA-900: (Root): type is required" in problems
}

test_schema_missing_fails_closed if {
	agreements.schema_errors(fixture["DSA-101"]) == ["the agreement schema (data.schemas.agreement) is not loaded"] with data.schemas as {}
}

test_derived_per_recipient if {
	a := {"datasets": {"shielding-list": {"fields": [], "derived": ["needs", "priority"], "recipient_derived": {"village": ["needs"]}}}}
	agreements.derived(a, "shielding-list", "town") == {"needs", "priority"}
	agreements.derived(a, "shielding-list", "village") == {"needs"}
	agreements.derived(a, "other", "town") == set()
}

test_recipient_derived_of_a_complete_agreement if {
	agreements.derived(complete, "shielding-list", "town") == {"needs"}
	agreements.derived(complete, "shielding-list", "village") == {"needs", "priority"}
}
