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

# --- the agreements shipped in policies/agreements/ -------------------------

test_shipped_agreements_are_well_formed if {
	count(agreements.by_id) == 15
	print("problems:", agreements.problems)
	agreements.problems == set()
}

test_shipped_agreements_one_per_board_in_order if {
	boards := [
		"nhs-ayrshire-and-arran", "nhs-borders", "nhs-dumfries-and-galloway", "nhs-fife",
		"nhs-forth-valley", "nhs-grampian", "nhs-greater-glasgow-and-clyde", "nhs-highland",
		"nhs-lanarkshire", "nhs-lothian", "nhs-orkney", "nhs-shetland", "nhs-tayside",
		"nhs-western-isles",
	]
	every i, board in boards {
		agreements.covering(board, "shielding-list")[0] == sprintf("DSA-%03d", [i + 1])
	}
}

test_shipped_lothian_also_shares_with_the_food_partner if {
	agreements.covering("nhs-lothian", "shielding-list") == ["DSA-010", "DSA-015"]
	agreements.by_id["DSA-015"].recipients == [{
		"org": "community-food-network", "kind": "third-sector",
		"council_areas": ["City of Edinburgh", "Midlothian"],
	}]
	not "shielding_status" in agreements.fields(agreements.by_id["DSA-015"], "shielding-list", "community-food-network")
}

test_shipped_agreements_cover_all_32_councils_once if {
	orgs := [recipient.org |
		some agreement in agreements.by_id
		some recipient in agreement.recipients
		recipient.kind == "council"
	]
	count(orgs) == 32
	count({org | some org in orgs}) == 32
}

test_shipped_orkney_is_draft_and_the_rest_active if {
	agreements.by_id["DSA-011"].status == "draft"
	active := {id | some id, agreement in agreements.by_id; agreement.status == "active"}
	count(active) == 14
	not "DSA-011" in active
}

test_shipped_agreements_cite_the_clauses_rules_need if {
	every agreement in agreements.by_id {
		every topic in ["purpose", "residence", "minimisation", "clinical", "opt-out", "children"] {
			agreements.clause(agreement, topic) != ""
		}
	}
	agreements.cite("DSA-007", agreements.by_id["DSA-007"], "minimisation") == "DSA-007 clause 4.2"
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

test_food_partner_gets_needs_and_no_other_derived_attribute if {
	agreements.derived(agreements.by_id["DSA-015"], "shielding-list", "community-food-network") == {"needs"}
	agreements.derived(agreements.by_id["DSA-007"], "shielding-list", "fife") == {
		"needs", "priority", "priority_reasons", "latest_outcome",
		"opened_at", "open_requests", "match_method",
	}
}
