# METADATA
# title: Who may call the hub's OPA over its REST API
# description: >-
#   OPA runs with --authentication=token --authorization=basic, so this policy decides
#   every API call. The hub's token (its SHA-256 is loaded as data.system.accord) may ask
#   decision queries under the hub's packages and read what the worker and tools read
#   (the agreements, and the policy list for the revision); nothing may write policies
#   or data through the API; /health stays open for liveness probes. Default deny.
package system.authz

import rego.v1

default allow := false

# METADATA
# title: Liveness is open without a token
allow if {
	input.method == "GET"
	input.path == ["health"]
}

# METADATA
# title: The hub's token asks decision queries and reads agreements and the policy list
allow if {
	hub_token
	some route in hub_routes
	route.method == input.method
	on_route(route)
}

# What the hub's clients call today: accord.core.policy (decisions, revision),
# governance.opa.decide (simulation), the worker's agreement_parties and retention.
hub_routes := [
	{"method": "POST", "path": ["v1", "data", "accord"], "subtree": true},
	{"method": "GET", "path": ["v1", "data", "agreements"], "subtree": true},
	{"method": "GET", "path": ["v1", "policies"], "subtree": false},
]

on_route(route) if input.path == route.path

on_route(route) if {
	route.subtree
	count(input.path) > count(route.path)
	array.slice(input.path, 0, count(route.path)) == route.path
}

# Only the token's hash is loaded into OPA, never the token itself.
hub_token if {
	is_string(input.identity)
	crypto.sha256(input.identity) in data.system.accord.token_sha256
}
