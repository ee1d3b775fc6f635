package accord.agreements_test

import data.accord.agreements

ns(ts) := time.parse_rfc3339_ns(ts)

fixture := {
	"DSA-A": {
		"id": "DSA-A",
		"status": "active",
		"valid_from": "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"providers": ["nhs-one"],
		"recipients": [{"org": "town", "kind": "council", "council_area": "Town"}],
		"datasets": {"shielding-list": {"fields": ["given_name", "postcode"]}},
		"conditions": {"resident_in_recipient_area": true},
	},
	"DSA-B": {
		"id": "DSA-B",
		"status": "draft",
		"valid_from": "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"providers": ["nhs-two", "nhs-one"],
		"recipients": [],
		"datasets": {"shielding-list": {"fields": []}, "other": {"fields": ["x"]}},
	},
	"DSA-C": {
		"id": "DSA-C",
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
	count(agreements.by_id) == 14
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
		agreements.covering(board, "shielding-list") == [sprintf("DSA-%03d", [i + 1])]
	}
}

test_shipped_agreements_cover_all_32_councils_once if {
	orgs := [recipient.org |
		some agreement in agreements.by_id
		some recipient in agreement.recipients
	]
	count(orgs) == 32
	count({org | some org in orgs}) == 32
}

test_shipped_orkney_is_draft_and_the_rest_active if {
	agreements.by_id["DSA-011"].status == "draft"
	active := {id | some id, agreement in agreements.by_id; agreement.status == "active"}
	count(active) == 13
	not "DSA-011" in active
}

# --- accessor -----------------------------------------------------------------

test_by_id_is_empty_when_no_agreements_are_loaded if {
	agreements.by_id == {} with data.agreements as []
}

test_covering_table if {
	cases := [
		["nhs-one", "shielding-list", ["DSA-A", "DSA-B"]],
		["nhs-two", "shielding-list", ["DSA-B"]],
		["nhs-one", "other", ["DSA-B", "DSA-C"]],
		["nhs-three", "shielding-list", []],
		["nhs-one", "missing", []],
	]
	every case in cases {
		agreements.covering(case[0], case[1]) == case[2] with data.agreements as fixture
	}
}

test_fields if {
	agreements.fields(fixture["DSA-A"], "shielding-list") == {"given_name", "postcode"}
	agreements.fields(fixture["DSA-A"], "other") == set()
}

# --- time ---------------------------------------------------------------------

test_in_force_table if {
	a := fixture["DSA-A"]
	cases := [
		# [agreement, now, in force?]
		[a, "2026-06-01T00:00:00Z", true],
		[a, "2026-01-01T00:00:00Z", true], # valid_from is inclusive
		[a, "2026-12-31T23:59:59Z", true], # valid_until is inclusive
		[a, "2025-12-31T23:59:59Z", false],
		[a, "2027-01-01T00:00:00Z", false],
		[fixture["DSA-B"], "2026-06-01T00:00:00Z", false], # draft
		[object.union(a, {"status": "suspended"}), "2026-06-01T00:00:00Z", false],
		[object.union(a, {"valid_until": "soon"}), "2026-06-01T00:00:00Z", false],
	]
	every case in cases {
		in_force_bool(case[0], ns(case[1])) == case[2]
	}
}

in_force_bool(agreement, now) if {
	agreements.in_force(agreement, now)
} else := false

test_not_yet_valid_and_expired if {
	a := fixture["DSA-A"]
	agreements.not_yet_valid(a, ns("2025-06-01T00:00:00Z"))
	not agreements.expired(a, ns("2025-06-01T00:00:00Z"))
	agreements.expired(a, ns("2027-06-01T00:00:00Z"))
	not agreements.not_yet_valid(a, ns("2027-06-01T00:00:00Z"))
}

# --- data checks --------------------------------------------------------------

test_problems_reported if {
	bad := {"DSA-X": {
		"id": "DSA-Y",
		"status": "pending",
		"valid_from": "2026-01-01",
		"valid_until": "2027-12-31T23:59:59Z",
		"providers": ["nhs-one"],
		"recipients": [{"org": "town"}],
		"datasets": {},
		"conditions": {"resident_in_recipient_area": true},
	}}
	agreements.problems == {
		"DSA-X: id field does not match its key",
		"DSA-X: status must be one of [\"active\", \"draft\", \"expired\", \"suspended\"]",
		"DSA-X: valid_from is not an RFC3339 timestamp",
		"DSA-X: recipient 0 has no kind",
		"DSA-X: recipient 0 has no council_area, which resident_in_recipient_area needs",
	} with data.agreements as bad
}

test_fixture_has_no_problems if {
	agreements.problems == set() with data.agreements as fixture
}
