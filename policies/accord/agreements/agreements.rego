# METADATA
# title: Data-sharing agreements
# description: |
#   The one accessor for the agreements loaded at data.agreements (one YAML
#   file per agreement under policies/agreements/, top-level key = agreement
#   id). Other packages read agreements only through the rules here.
package accord.agreements

# METADATA
# title: Agreements by id
# description: Agreement id -> agreement; empty when no agreements are loaded.
default by_id := {}

by_id := data.agreements if is_object(data.agreements)

# METADATA
# title: Agreement statuses
# description: The statuses an agreement may have; only "active" agreements can be in force.
statuses := {"draft", "active", "suspended", "expired"}

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
# title: Start of validity
# description: valid_from in nanoseconds since the epoch; undefined when missing or not RFC3339.
valid_from_ns(agreement) := time.parse_rfc3339_ns(agreement.valid_from)

# METADATA
# title: End of validity
# description: valid_until in nanoseconds since the epoch; undefined when missing or not RFC3339.
valid_until_ns(agreement) := time.parse_rfc3339_ns(agreement.valid_until)

# METADATA
# title: Within the validity period
# description: True when valid_from <= now_ns <= valid_until (both ends inclusive).
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
# description: True when now_ns is after the agreement's valid_until.
expired(agreement, now_ns) if valid_until_ns(agreement) < now_ns

# METADATA
# title: In force
# description: True when the agreement is active and now_ns is within its validity period.
in_force(agreement, now_ns) if {
	agreement.status == "active"
	within_validity(agreement, now_ns)
}

# METADATA
# title: Fields of a dataset
# description: The set of field names the agreement lists for the dataset; empty when it lists none.
fields(agreement, dataset) := {field |
	some field in agreement.datasets[dataset].fields
}

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
	not object.get(agreement, "status", null) in statuses
	msg := sprintf("%s: status must be one of %v", [id, sort(statuses)])
}

problems contains msg if {
	some id, agreement in by_id
	some key in ["valid_from", "valid_until"]
	not time.parse_rfc3339_ns(agreement[key])
	msg := sprintf("%s: %s is not an RFC3339 timestamp", [id, key])
}

problems contains msg if {
	some id, agreement in by_id
	some i, recipient in object.get(agreement, "recipients", [])
	some key in ["org", "kind"]
	not is_string(object.get(recipient, key, null))
	msg := sprintf("%s: recipient %d has no %s", [id, i, key])
}

problems contains msg if {
	some id, agreement in by_id
	agreement.conditions.resident_in_recipient_area == true
	some i, recipient in object.get(agreement, "recipients", [])
	not is_string(object.get(recipient, "council_area", null))
	msg := sprintf("%s: recipient %d has no council_area, which resident_in_recipient_area needs", [id, i])
}
