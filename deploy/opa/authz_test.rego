package system.authz_test

import rego.v1

import data.system.authz

token := "hub-token-for-tests"

tokens := {"token_sha256": [crypto.sha256(token)]}

call(method, path, identity) := {"method": method, "path": path, "identity": identity}

anonymous(method, path) := {"method": method, "path": path}

test_health_is_open if {
	authz.allow with input as anonymous("GET", ["health"])
		with data.system.accord as tokens
}

test_decision_query_with_the_hub_token if {
	authz.allow with input as call("POST", ["v1", "data", "accord", "sharing", "decisions"], token)
		with data.system.accord as tokens
}

test_agreements_and_policy_list_readable_with_the_hub_token if {
	authz.allow with input as call("GET", ["v1", "data", "agreements"], token)
		with data.system.accord as tokens
	authz.allow with input as call("GET", ["v1", "data", "agreements", "DSA-001"], token)
		with data.system.accord as tokens
	authz.allow with input as call("GET", ["v1", "policies"], token)
		with data.system.accord as tokens
}

test_no_token_no_query if {
	not authz.allow with input as anonymous("POST", ["v1", "data", "accord", "sharing", "decisions"])
		with data.system.accord as tokens
}

test_wrong_token_no_query if {
	not authz.allow with input as call("POST", ["v1", "data", "accord", "sharing", "decisions"], "guess")
		with data.system.accord as tokens
}

test_no_tokens_loaded_means_no_one if {
	not authz.allow with input as call("POST", ["v1", "data", "accord", "sharing", "decisions"], token)
		with data.system.accord as {}
}

refused := [
	["PUT", ["v1", "policies", "x"]],
	["DELETE", ["v1", "policies", "accord", "sharing", "sharing.rego"]],
	["PUT", ["v1", "data", "x"]],
	["PATCH", ["v1", "data", "agreements"]],
	["PUT", ["v1", "data", "accord", "sharing"]],
	["DELETE", ["v1", "data", "agreements", "DSA-001"]],
	["POST", ["v1", "data", "system", "accord"]],
	["GET", ["v1", "data", "system", "accord"]],
	["GET", ["v1", "data"]],
	["POST", ["v1", "data"]],
	["POST", ["v1", "query"]],
	["POST", ["v0", "data", "accord", "sharing"]],
	["POST", ["v1", "compile"]],
	["GET", ["v1", "config"]],
	["GET", ["v1", "status"]],
	["GET", ["v1", "policies", "accord", "sharing", "sharing.rego"]],
	["POST", ["v1", "policies"]],
	["POST", ["v1", "data", "agreements"]],
	["GET", ["v1", "data", "accordx"]],
	["GET", ["metrics"]],
	["POST", ["health"]],
]

test_writes_and_other_routes_refused_even_with_the_hub_token if {
	every case in refused {
		not authz.allow with input as call(case[0], case[1], token)
			with data.system.accord as tokens
	}
}
