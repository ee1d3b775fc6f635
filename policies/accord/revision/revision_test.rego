package accord.revision_test

import data.accord.revision
import rego.v1

fixture := {"DSA-T1": {"id": "DSA-T1", "status": "active"}}

test_served_names_the_stamp_and_the_agreements if {
	served := revision.served with data.agreements as fixture
	served.rules == revision.rules
	served.agreements == fixture
}

test_the_stamp_is_a_sha256 if {
	startswith(revision.rules, "sha256:")
	count(revision.rules) == 71
}

test_no_agreements_loaded_serves_none if {
	revision.served.agreements == {} with data.agreements as "not an object"
}
