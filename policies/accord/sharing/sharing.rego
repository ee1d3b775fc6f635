# METADATA
# title: Sharing decisions
# description: |
#   Entry point of Accord's policy: POST /v1/data/accord/sharing/decisions.
#   Input: {"now"?, "source_org", "dataset", "purpose", "records": [
#   {"record_id", "subject_key", "fields": {...}}]}.
#   Result: one decision per (record, recipient) for every recipient of every
#   agreement, whatever its status, that names source_org as a provider and
#   lists the dataset; a record no agreement covers gets a single deny.
#   Work that depends only on the agreement (status, validity, purpose,
#   ethics) is done once per agreement recipient, then each record is
#   checked against it, so a query costs O(records x recipients).
package accord.sharing

import data.accord.agreements
import data.accord.ethics

# METADATA
# title: Request fields
# description: The request's source organisation, dataset and purpose; "" when absent.
source_org := object.get(input, "source_org", "")

dataset := object.get(input, "dataset", "")

purpose := object.get(input, "purpose", "")

# METADATA
# title: Decision time
# description: |
#   input.now (RFC3339) in nanoseconds, or the current time when input.now
#   is absent or null. Undefined when input.now cannot be read; every
#   agreement is then treated as outside its validity period.
now_ns := time.now_ns() if object.get(input, "now", null) == null

now_ns := time.parse_rfc3339_ns(input.now) if input.now != null

# METADATA
# title: Records
# description: The request's records; entries that are not objects are ignored.
records := [record |
	some record in input.records
	is_object(record)
]

# METADATA
# title: Conditions this policy can check
# description: An agreement with any other condition is denied (fail closed).
known_conditions := {"resident_in_recipient_area"}

# METADATA
# title: Targets
# description: |
#   One entry per recipient of every agreement covering the request's
#   source_org and dataset, in agreement id then recipient order, with
#   everything that does not depend on the record already decided.
targets := [target |
	some id in agreements.covering(source_org, dataset)
	agreement := agreements.by_id[id]
	gate := agreement_denials(id, agreement)
	open := in_force(agreement)
	listed := agreements.fields(agreement, dataset)
	residence := residence_required(agreement)
	some recipient in agreement.recipients
	org := object.get(recipient, "org", "")
	kind := object.get(recipient, "kind", "")
	withheld := ethics.withheld_fields(kind)
	target := {
		"agreement_id": id,
		"agreement_version": object.get(agreement, "version", null),
		"recipient": org,
		"kind": kind,
		"council_area": object.get(recipient, "council_area", null),
		"residence_required": residence,
		"open": open,
		"denials": array.concat(gate, ethics.denials(org, kind)),
		"listed": listed,
		"withheld": withheld,
		"releasable": listed - withheld,
	}
]

# METADATA
# title: Decisions
# description: |
#   The contract with the sharing worker: an array of
#   {record_id, recipient, agreement_id, agreement_version, allow,
#   fields_released (sorted), obligations, reasons}. When no agreement
#   covers the request, each record gets exactly one deny with recipient "",
#   agreement_id "" and agreement_version null.
decisions := [decision |
	some record in records
	fields := record_fields(record)
	present := {name | some name, value in fields; value != null}
	area := object.get(fields, "council_area", null)
	record_id := object.get(record, "record_id", "")
	some target in targets
	decision := decide(record_id, present, area, target)
] if {
	count(targets) > 0
} else := [uncovered(record) |
	some record in records
]

# METADATA
# title: Decide one record for one target
# description: The decision object for one record (by id, present fields and council area) and one target.
decide(record_id, present, area, target) := {
	"record_id": record_id,
	"recipient": target.recipient,
	"agreement_id": target.agreement_id,
	"agreement_version": target.agreement_version,
	"allow": result.allow,
	"fields_released": result.fields_released,
	"obligations": [],
	"reasons": result.reasons,
} if {
	result := outcome(target, array.concat(target.denials, residence_denials(area, target)), present)
}

# METADATA
# title: Outcome
# description: |
#   Allow only when the agreement is in force and nothing denies; then
#   release the listed, present, non-null fields ethics does not withhold.
outcome(target, denials, present) := {
	"allow": true,
	"fields_released": sort(target.releasable & present),
	"reasons": array.concat(
		[sprintf("shared under %s clause 2.1 for purpose %s", [target.agreement_id, purpose])],
		array.concat(ethics.withheld_reasons(target.kind, present), minimisation_reasons(target, present)),
	),
} if {
	target.open
	count(denials) == 0
} else := {
	"allow": false,
	"fields_released": [],
	"reasons": denials,
}

# METADATA
# title: Uncovered record
# description: The single deny for a record no agreement covers.
uncovered(record) := {
	"record_id": object.get(record, "record_id", ""),
	"recipient": "",
	"agreement_id": "",
	"agreement_version": null,
	"allow": false,
	"fields_released": [],
	"obligations": [],
	"reasons": [sprintf("no agreement covers dataset %s from %s", [dataset, source_org])],
}

record_fields(record) := record.fields if {
	is_object(record.fields)
} else := {}

in_force(agreement) if agreements.in_force(agreement, now_ns)

default in_force(_) := false

# Fail closed: anything but an explicit false (or absence) requires residence.
residence_required(agreement) := false if {
	object.get(agreement, ["conditions", "resident_in_recipient_area"], false) == false
} else := true

# METADATA
# title: Agreement-level denials
# description: Reasons, once per agreement, why nothing may be shared under it now for this purpose.
agreement_denials(id, agreement) := array.concat(
	array.concat(status_denials(id, agreement), window_denials(id, agreement)),
	array.concat(purpose_denials(id, agreement), condition_denials(id, agreement)),
)

status_denials(id, agreement) := [] if {
	agreement.status == "active"
} else := [sprintf(
	"denied: agreement %s is %s, not active (lawfulness)",
	[id, object.get(agreement, "status", "without a status")],
)]

window_denials(id, agreement) := [] if {
	agreements.within_validity(agreement, now_ns)
} else := [sprintf("denied: agreement %s not valid until %s (lawfulness)", [id, agreement.valid_from])] if {
	agreements.not_yet_valid(agreement, now_ns)
} else := [sprintf("denied: agreement %s expired at %s (lawfulness)", [id, agreement.valid_until])] if {
	agreements.expired(agreement, now_ns)
} else := [sprintf(
	"denied: validity of agreement %s cannot be checked: valid_from, valid_until or the request's now is not RFC3339 (lawfulness)",
	[id],
)]

purpose_denials(id, agreement) := [] if {
	purpose in object.get(agreement, "purposes", [])
} else := [sprintf(
	"denied: purpose %s is not an agreed purpose of %s clause 2.1 (purpose limitation)",
	[purpose_label, id],
)]

purpose_label := purpose if {
	purpose != ""
} else := "(none given)"

condition_denials(id, agreement) := [sprintf(
	"denied: agreement %s has condition %s, which this policy cannot check (accountability)",
	[id, name],
) |
	some name in sort(object.keys(object.get(agreement, "conditions", {})) - known_conditions)
]

# METADATA
# title: Residence condition
# description: |
#   Clause 4.1: when the agreement requires it, the record's council_area
#   must equal the recipient's. A record without a council_area is denied.
residence_denials(area, target) := [] if {
	not target.residence_required
} else := [sprintf(
	"denied: record has no council_area, so residence in %s's area cannot be shown (%s clause 4.1, data minimisation)",
	[place(target), target.agreement_id],
)] if {
	not readable_area(area)
} else := [] if {
	area == target.council_area
} else := [sprintf(
	"denied: person lives in %s, not in %s's area (%s clause 4.1, data minimisation)",
	[area, place(target), target.agreement_id],
)]

readable_area(area) if trim_space(area) != ""

place(target) := target.council_area if {
	is_string(target.council_area)
} else := target.recipient

minimisation_reasons(target, present) := [sprintf(
	"%s withheld: not listed in %s clause 4.2 (data minimisation)",
	[concat(", ", sort(unlisted)), target.agreement_id],
)] if {
	unlisted := (present - target.listed) - target.withheld
	count(unlisted) > 0
} else := []
