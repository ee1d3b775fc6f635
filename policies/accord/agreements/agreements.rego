# METADATA
# title: Data-sharing agreements
# description: |
#   The one accessor for the agreements loaded at data.agreements (one YAML
#   file per agreement under policies/agreements/, top-level key = agreement
#   id) and for the agreement schema loaded at data.schemas.agreement
#   (policies/schemas/agreement/schema.json). Other packages read agreements
#   only through the rules here.
package accord.agreements

# METADATA
# title: Agreements by id
# description: Agreement id -> agreement; empty when no agreements are loaded.
default by_id := {}

by_id := data.agreements if is_object(data.agreements)

# METADATA
# title: Agreement schema
# description: The JSON Schema every agreement must match; undefined when it is not loaded.
schema := data.schemas.agreement

# METADATA
# title: Agreement statuses
# description: The statuses an agreement may have; only "active" agreements can be in force.
statuses := {"draft", "active", "suspended", "expired"}

# METADATA
# title: Longest emergency agreement
# description: |
#   An agreement of type "emergency" is time-boxed: it stops being in force
#   at most this many days after valid_from, whatever its valid_until says.
emergency_max_days := 30

# METADATA
# title: Agreements covering a provider's dataset
# description: |
#   Sorted ids of every agreement, whatever its status, that names the
#   provider among its providers and the dataset among its datasets.
covering(provider, dataset) := sort([id |
	some id, agreement in by_id
	provider in agreement.providers
	is_object(agreement.datasets[dataset])
])

# METADATA
# title: Schema errors
# description: |
#   Messages of the agreement schema's errors for one agreement; empty when it
#   matches. Fails closed: with no schema loaded, every agreement has an error.
schema_errors(agreement) := [sprintf("%s: %s", [e.field, e.desc]) | some e in result[1]] if {
	result := json.match_schema(agreement, schema)
} else := ["the agreement schema (data.schemas.agreement) is not loaded"]

# METADATA
# title: Start of validity
# description: valid_from in nanoseconds since the epoch; undefined when missing or not RFC3339.
valid_from_ns(agreement) := time.parse_rfc3339_ns(agreement.valid_from)

# METADATA
# title: End of validity
# description: |
#   The end of validity in nanoseconds: valid_until, or for an emergency
#   agreement the earlier of valid_until and valid_from + emergency_max_days.
#   Undefined when a timestamp is missing or not RFC3339.
valid_until_ns(agreement) := min([
	time.parse_rfc3339_ns(agreement.valid_until),
	time.add_date(valid_from_ns(agreement), 0, 0, emergency_max_days),
]) if {
	agreement.type == "emergency"
} else := time.parse_rfc3339_ns(agreement.valid_until)

# METADATA
# title: Emergency cut short
# description: True for an emergency agreement whose valid_until lies beyond emergency_max_days.
emergency_cut_short(agreement) if {
	agreement.type == "emergency"
	valid_until_ns(agreement) < time.parse_rfc3339_ns(agreement.valid_until)
}

# METADATA
# title: Within the validity period
# description: True when valid_from <= now_ns <= end of validity (both ends inclusive).
within_validity(agreement, now_ns) if {
	valid_from_ns(agreement) <= now_ns
	now_ns <= valid_until_ns(agreement)
}

# METADATA
# title: Not yet valid
# description: True when now_ns is before the agreement's valid_from.
not_yet_valid(agreement, now_ns) if now_ns < valid_from_ns(agreement)

# METADATA
# title: Expired
# description: True when now_ns is after the agreement's end of validity.
expired(agreement, now_ns) if valid_until_ns(agreement) < now_ns

# METADATA
# title: In force
# description: True when the agreement is active and now_ns is within its validity period.
in_force(agreement, now_ns) if {
	agreement.status == "active"
	within_validity(agreement, now_ns)
}

# METADATA
# title: Fields for a recipient
# description: |
#   The set of field names the agreement permits for the dataset and
#   recipient: the recipient's own list (datasets.<d>.recipient_fields.<org>)
#   when the agreement gives one, else the dataset's list; empty when none.
fields(agreement, dataset, org) := {field |
	some field in agreement.datasets[dataset].recipient_fields[org]
} if {
	is_array(agreement.datasets[dataset].recipient_fields[org])
} else := {field |
	some field in agreement.datasets[dataset].fields
}

# METADATA
# title: Derived attributes for a recipient
# description: |
#   The attributes the hub derives for a case (needs, priority, priority_reasons,
#   latest_outcome, opened_at, open_requests, match_method) that the agreement
#   permits for the dataset and recipient: datasets.<d>.recipient_derived.<org>
#   when given, else datasets.<d>.derived; empty when none (all withheld).
derived(agreement, dataset, org) := {name |
	some name in agreement.datasets[dataset].recipient_derived[org]
} if {
	is_array(agreement.datasets[dataset].recipient_derived[org])
} else := {name |
	some name in object.get(agreement, ["datasets", dataset, "derived"], [])
}

# METADATA
# title: Masked fields
# description: Field -> masking method for the dataset; such fields leave only in masked form.
masks(agreement, dataset) := object.get(agreement, ["datasets", dataset, "mask"], {})

# METADATA
# title: Clause cited for a topic
# description: |
#   The lowest-numbered clause whose topic is the given one (e.g. "4.2" for
#   "minimisation"); "" when the agreement has none.
clause(agreement, topic) := sort([number |
	some number, c in object.get(agreement, "clauses", {})
	is_object(c)
	c.topic == topic
])[0]

default clause(_, _) := ""

# METADATA
# title: Citation
# description: '"DSA-007 clause 4.2" for a topic the agreement has a clause for, else just the id.'
cite(id, agreement, topic) := sprintf("%s clause %s", [id, clause(agreement, topic)]) if {
	clause(agreement, topic) != ""
} else := id

# METADATA
# title: Agreement data problems
# description: |
#   Messages for loaded agreements that are malformed; empty when all are
#   well formed. The sharing policy fails closed on such agreements anyway;
#   this rule lets tests and operators spot them.
problems contains msg if {
	some id, agreement in by_id
	object.get(agreement, "id", null) != id
	msg := sprintf("%s: id field does not match its key", [id])
}

problems contains msg if {
	some id, agreement in by_id
	some error in schema_errors(agreement)
	msg := sprintf("%s: %s", [id, error])
}

problems contains msg if {
	some id, agreement in by_id
	not ordered_validity(agreement)
	msg := sprintf("%s: valid_until must be a timestamp after valid_from", [id])
}

ordered_validity(agreement) if valid_until_ns(agreement) > valid_from_ns(agreement)
