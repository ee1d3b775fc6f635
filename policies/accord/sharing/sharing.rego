# METADATA
# title: Sharing decisions
# description: |
#   Entry point of Accord's policy: POST /v1/data/accord/sharing/decisions.
#   Input: {"now"?, "source_org", "dataset", "purpose", "records": [
#   {"record_id", "subject_key", "fields": {...} (source fields, and the
#    case's derived attributes such as needs and priority when it has them),
#    "subject"?: {"opted_out"?: bool, "consent_withdrawn"?: bool}}]}.
#   Result: one decision per (record, recipient) for every recipient of every
#   agreement, whatever its status, that names source_org as a provider and
#   lists the dataset; a record no agreement covers gets a single deny.
#   Work that depends only on the agreement (status, validity, purpose,
#   schema, ethics) is done once per agreement recipient, then each record is
#   checked against it, so a query costs O(records x recipients).
#   GET /v1/data/accord/sharing/retractions lists the agreement recipients
#   whose earlier shares must be withdrawn (suspended or expired agreements).
package accord.sharing

import data.accord.agreements
import data.accord.ethics
import data.accord.revision

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
# title: Envelope fields
# description: Event metadata every record carries; never released and not worth a withholding reason.
envelope_fields := {"event_id", "occurred_at", "source_org", "schema_version"}

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
	residence := residence_required(agreement)
	masks := agreements.masks(agreement, dataset)
	some recipient in agreement.recipients
	org := object.get(recipient, "org", "")
	kind := object.get(recipient, "kind", "")

	# Derived attributes (needs, priority, ...) are released like fields: only when listed.
	listed := agreements.fields(agreement, dataset, org) | agreements.derived(agreement, dataset, org)
	withheld := ethics.withheld_fields(kind)
	target := {
		"agreement_id": id,
		"agreement": agreement,
		"agreement_version": object.get(agreement, "version", null),
		"recipient": org,
		"kind": kind,
		"council_area": object.get(recipient, "council_area", null),
		"areas": served_areas(recipient),
		"residence_required": residence,
		"open": open,
		"retract": retracting(agreement),
		"denials": cited(id, agreement, array.concat(
			gate,
			array.concat(ethics.kind_denials(org, kind), ethics.article_9_denials(agreement, dataset, listed)),
		)),
		"listed": listed,
		"withheld": withheld,
		"masks": masks,
		"releasable": (listed - withheld) - {f | some f, _ in masks},
		"maskable": {f | some f, _ in masks} & (listed - withheld),
		"retention_days": object.get(agreement, ["retention", "days"], null),
	}
]

# METADATA
# title: Decisions
# description: |
#   The contract with the sharing worker: an array of
#   {record_id, recipient, agreement_id, agreement_version, allow,
#   fields_released (sorted), fields_masked, obligations, reasons, clause,
#   principle, clauses, principles, content_independent, retract}. clause
#   and principle are the decisive reason's; clauses and principles are
#   every one the reasons cite, each once, decisive first (clause numbers
#   of agreement_id, e.g. "4.2"). When no agreement covers the
#   request, each record gets exactly one deny with recipient "",
#   agreement_id "" and agreement_version null.
decisions := [decision |
	some record in records
	fields := record_fields(record)
	present := {name | some name, value in fields; value != null}
	area := object.get(fields, "council_area", null)
	objection := ethics.objection(record)
	band := age_band(fields)
	record_id := object.get(record, "record_id", "")
	some target in targets
	decision := decide(record_id, present, area, objection, band, target)
] if {
	count(targets) > 0
} else := [uncovered(record) |
	some record in records
]

# METADATA
# title: Decide one record for one target
# description: The decision object for one record (by id, present fields, area, objection and age) and one target.
decide(record_id, present, area, objection, band, target) := {
	"record_id": record_id,
	"recipient": target.recipient,
	"agreement_id": target.agreement_id,
	"agreement_version": target.agreement_version,
	"allow": result.allow,
	"fields_released": result.fields_released,
	"fields_masked": result.fields_masked,
	"obligations": result.obligations,
	"reasons": [f.text | some f in result.findings],
	"clause": result.findings[0].clause,
	"principle": result.findings[0].principle,
	"clauses": distinct([f.clause | some f in result.findings]),
	"principles": distinct([f.principle | some f in result.findings]),
	"content_independent": closed(target),
	"retract": retract(target, objection, result.allow),
} if {
	record_denials := cited(target.agreement_id, target.agreement, array.concat(
		ethics.objection_denials(objection),
		array.concat(residence_denials(area, target), ethics.children_denials(target.agreement, target.kind, band)),
	))
	result := outcome(target, array.concat(target.denials, record_denials), present)
}

# METADATA
# title: Outcome
# description: |
#   Allow only when the agreement is in force and nothing denies; then
#   release the listed, present, non-null fields ethics does not withhold,
#   masked fields only as obligations. A deny releases nothing.
outcome(target, denials, present) := {
	"allow": true,
	"fields_released": sort(target.releasable & present),
	"fields_masked": masked,
	"obligations": array.concat(
		array.concat(["pseudonymise:subject_key"], [sprintf("mask:%s:%s", [f, m]) | some f, m in masked]),
		retention_obligation(target),
	),
	"findings": array.concat(
		[allow_finding(target)],
		cited(target.agreement_id, target.agreement, array.concat(
			ethics.withheld(target.kind, present),
			array.concat(mask_findings(masked), minimisation_findings(target, present)),
		)),
	),
} if {
	target.open
	count(denials) == 0
	masked := {f: target.masks[f] | some f in (target.maskable & present)}
} else := {
	"allow": false,
	"fields_released": [],
	"fields_masked": {},
	"obligations": [],
	"findings": not_open_fallback(target, denials),
}

# An agreement that is not in force always has a denial explaining why; this
# fallback only guards against a gap in those explanations (fail closed).
not_open_fallback(target, denials) := denials if {
	count(denials) > 0
} else := [{
	"text": sprintf("denied: agreement %s is not in force", [target.agreement_id]),
	"clause": "",
	"principle": "lawfulness",
}]

retention_obligation(target) := [sprintf("retain:%dd", [target.retention_days])] if {
	is_number(target.retention_days)
} else := []

allow_finding(target) := {
	"text": sprintf("shared with %s for purpose %s: lawfulness (%s), %s", [
		target.recipient, purpose, lawful_words(target.agreement),
		agreements.cite(target.agreement_id, target.agreement, "purpose"),
	]),
	"clause": agreements.clause(target.agreement, "purpose"),
	"principle": "lawfulness",
}

lawful_words(agreement) := concat("; ", [basis |
	some key in ["article_6", "article_9"]
	basis := agreement.lawful_basis[key]
])

# METADATA
# title: Cite findings
# description: |
#   Turns findings into {text, clause, principle}: text ends with the
#   principle in plain words and the citation, e.g. "postcode withheld:
#   data minimisation, DSA-007 clause 4.2".
cited(id, agreement, findings) := [{
	"text": sprintf("%s: %s, %s", [f.text, f.principle, citation(id, agreement, f)]),
	"clause": agreements.clause(agreement, f.topic),
	"principle": f.principle,
} |
	some f in findings
]

citation(id, agreement, finding) := concat(", ", [c |
	some c in [finding.rule, agreements.cite(id, agreement, finding.topic)]
	c != ""
]) if {
	finding.topic != ""
} else := concat(", ", [c | some c in [finding.rule, id]; c != ""])

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
	"fields_masked": {},
	"obligations": [],
	"reasons": [sprintf("no agreement covers dataset %s from %s: lawfulness", [dataset, source_org])],
	"clause": "",
	"principle": "lawfulness",
	"clauses": [],
	"principles": ["lawfulness"],
	"content_independent": true,
	"retract": false,
}

# METADATA
# title: Distinct values
# description: The non-empty strings of a list, each once, in order of first appearance.
distinct(values) := [value |
	some i, value in values
	value != ""
	not value in {earlier | some j, earlier in values; j < i}
]

# An unreadable input.now leaves now_ns undefined: the age is then unknown (fail closed).
age_band(fields) := ethics.age_band(fields, now_ns)

default age_band(_) := "unknown"

record_fields(record) := record.fields if {
	is_object(record.fields)
} else := {}

in_force(agreement) if agreements.in_force(agreement, now_ns)

default in_force(_) := false

# METADATA
# title: Retracting agreement
# description: |
#   True when earlier shares under the agreement must be withdrawn: it is
#   suspended or expired (by status, by its end date, or as an emergency
#   agreement past its time box). Drafts never shared anything.
retracting(agreement) if agreement.status in {"suspended", "expired"}

retracting(agreement) if agreements.expired(agreement, now_ns)

default retracting(_) := false

retract(target, objection, allow) := false if {
	allow
} else if {
	target.retract
} else := objection != ""

# METADATA
# title: Closed target
# description: True when the agreement denies every record for this recipient, whatever the record holds.
closed(target) if not target.open

closed(target) if count(target.denials) > 0

default closed(_) := false

# Fail closed: anything but an explicit false (or absence) requires residence.
residence_required(agreement) := false if {
	object.get(agreement, ["conditions", "resident_in_recipient_area"], false) == false
} else := true

# METADATA
# title: Agreement-level denials
# description: Findings, once per agreement, why nothing may be shared under it now for this purpose.
agreement_denials(id, agreement) := array.concat(
	array.concat(schema_denials(id, agreement), status_denials(id, agreement)),
	array.concat(
		window_denials(id, agreement),
		array.concat(purpose_denials(id, agreement), condition_denials(id, agreement)),
	),
)

schema_denials(id, agreement) := [] if {
	count(agreements.schema_errors(agreement)) == 0
	agreement.id == id
} else := [{
	"text": sprintf("denied: agreement %s is malformed (%s)", [id, concat("; ", array.concat(
		[sprintf("id field is %v", [object.get(agreement, "id", null)]) | object.get(agreement, "id", null) != id],
		agreements.schema_errors(agreement),
	))]),
	"topic": "",
	"principle": "accountability",
	"rule": "",
}]

status_denials(_, agreement) := [] if {
	agreement.status == "active"
} else := [{
	"text": sprintf("denied: agreement %s is %v, not active%s", [
		agreement.id, object.get(agreement, "status", "without a status"),
		status_reason(agreement),
	]),
	"topic": "",
	"principle": "lawfulness",
	"rule": "",
}]

status_reason(agreement) := sprintf(" (%s)", [agreement.status_reason]) if {
	is_string(agreement.status_reason)
} else := ""

window_denials(id, agreement) := [] if {
	agreements.within_validity(agreement, now_ns)
} else := [window_finding(sprintf("denied: agreement %s not valid until %s", [id, agreement.valid_from]), "")] if {
	agreements.not_yet_valid(agreement, now_ns)
} else := [window_finding(
	sprintf("denied: emergency agreement %s expired %d days after it began", [id, agreements.emergency_max_days]),
	"emergency",
)] if {
	agreements.expired(agreement, now_ns)
	agreements.emergency_cut_short(agreement)
} else := [window_finding(sprintf("denied: agreement %s expired at %s", [id, agreement.valid_until]), "")] if {
	agreements.expired(agreement, now_ns)
} else := [window_finding(
	sprintf("denied: validity of agreement %s cannot be checked: valid_from, valid_until or the request's now is not RFC3339", [id]),
	"",
)]

window_finding(text, topic) := {"text": text, "topic": topic, "principle": "lawfulness", "rule": ""}

purpose_denials(_, agreement) := [] if {
	purpose in object.get(agreement, "purposes", [])
} else := [{
	"text": sprintf("denied: purpose %s is not an agreed purpose", [purpose_label]),
	"topic": "purpose",
	"principle": "purpose limitation",
	"rule": "",
}]

purpose_label := purpose if {
	purpose != ""
} else := "(none given)"

condition_denials(_, agreement) := [{
	"text": sprintf("denied: condition %s cannot be checked by this policy", [name]),
	"topic": "",
	"principle": "accountability",
	"rule": "",
} |
	some name in sort(object.keys(object.get(agreement, "conditions", {})) - known_conditions)
]

# METADATA
# title: Served areas
# description: |
#   The council areas a recipient serves: its council_area (a council) and
#   its council_areas (e.g. a third-sector partner working in several).
#   Empty when it names none, so a residence condition then denies.
served_areas(recipient) := {area |
	some area in array.concat([object.get(recipient, "council_area", null)], object.get(recipient, "council_areas", []))
	is_string(area)
}

# METADATA
# title: Residence condition
# description: |
#   When the agreement requires it, the record's council_area must be one
#   the recipient serves. A record without a council_area is denied.
residence_denials(area, target) := [] if {
	not target.residence_required
} else := [residence_finding(sprintf(
	"denied: record has no council_area, so residence in %s cannot be shown",
	[place(target)],
))] if {
	not readable_area(area)
} else := [] if {
	area in target.areas
} else := [residence_finding(sprintf("denied: person lives in %s, not in %s", [area, place(target)]))]

residence_finding(text) := {"text": text, "topic": "residence", "principle": "data minimisation", "rule": ""}

readable_area(area) if trim_space(area) != ""

place(target) := sprintf("%s's area", [target.council_area]) if {
	is_string(target.council_area)
	count(target.areas) == 1
} else := sprintf("the areas %s serves (%s)", [target.recipient, concat(", ", sort(target.areas))]) if {
	count(target.areas) > 0
} else := sprintf("%s's area", [target.recipient])

minimisation_findings(target, present) := [{
	"text": sprintf("%s withheld", [concat(", ", sort(unlisted))]),
	"topic": "minimisation",
	"principle": "data minimisation",
	"rule": "",
}] if {
	unlisted := ((present - target.listed) - target.withheld) - envelope_fields
	count(unlisted) > 0
} else := []

mask_findings(masked) := [{
	"text": sprintf("%s masked (%s)", [f, m]),
	"topic": "minimisation",
	"principle": "data minimisation",
	"rule": "",
} |
	some f, m in masked
]

# METADATA
# title: Retractions
# description: |
#   One entry per recipient of every suspended or expired agreement: the
#   worker tombstones, in share.<recipient>.<dataset>, the people it shared
#   under that agreement, and audits why. Evaluated at input.now or the
#   current time, so a plain GET works.
retractions := [{
	"agreement_id": id,
	"agreement_version": object.get(agreement, "version", null),
	"recipient": recipient.org,
	"datasets": sort(object.keys(agreement.datasets)),
	"reasons": [f.text | some f in cited(id, agreement, array.concat(
		status_denials(id, agreement),
		window_denials(id, agreement),
	))],
} |
	some id in sort(object.keys(agreements.by_id))
	agreement := agreements.by_id[id]
	retracting(agreement)
	some recipient in agreement.recipients
]

# METADATA
# title: Decisions with what made them
# description: |
#   The gate's query: POST /v1/data/accord/sharing/answer, the same input as
#   decisions. {"decisions", "served": accord.revision.served}, from one
#   evaluation, so the rules' stamp and agreements named are the ones that decided.
answer := {"decisions": decisions, "served": revision.served}
