# METADATA
# title: A requester's own data
# description: >-
#   A council (or any partner) that raised a support request receives the case built
#   from its own request: that is not sharing with another controller. It is still a
#   decision, audited like any other, and it still stops when the person opts out.
package accord.own_data

import data.accord.revision
import rego.v1

own_purposes := {"shielding-support"}

# METADATA
# title: Decisions about returning a requester's own records to it
# description: One decision per record, with the requester as the recipient.
decisions := [d |
	some record in input.records
	d := decision(record)
]

# METADATA
# title: Decisions with what made them
# description: The gate's query, as accord.sharing.answer, with the same input as decisions.
answer := {"decisions": decisions, "served": revision.served}

default allow(_) := false

allow(record) if {
	input.purpose in own_purposes
	has_source
	not opted_out(record)
}

has_source if is_string(input.source_org)

opted_out(record) if record.subject.opted_out == true

released(record) := sort([name | some name, value in record.fields; value != null])

decision(record) := {
	"record_id": record.record_id,
	"recipient": object.get(input, "source_org", ""),
	"agreement_id": "",
	"agreement_version": null,
	"allow": true,
	"fields_released": released(record),
	"obligations": [],
	"reasons": [sprintf("returned to %s: its own support request (no sharing with another organisation)", [input.source_org])],
	"clauses": [],
	"principles": [],
} if allow(record)

decision(record) := {
	"record_id": record.record_id,
	"recipient": object.get(input, "source_org", ""),
	"agreement_id": "",
	"agreement_version": null,
	"allow": false,
	"fields_released": [],
	"obligations": [],
	"reasons": [reason(record)],
	"clauses": [],
	"principles": principles(record),
} if not allow(record)

# METADATA
# title: Principles of a denial
# description: The GDPR principles a denial cites, as the reason words them.
principles(record) := ["lawfulness", "the right to object"] if opted_out(record)

principles(record) := ["purpose limitation"] if {
	not opted_out(record)
	not input.purpose in own_purposes
}

principles(record) := ["accountability"] if {
	not opted_out(record)
	input.purpose in own_purposes
	not has_source
}

reason(record) := "denied: the person opted out or withdrew consent (lawfulness, right to object)" if opted_out(record)

reason(record) := sprintf("denied: purpose %v is not one for which requests are returned (purpose limitation)", [input.purpose]) if {
	not opted_out(record)
	not input.purpose in own_purposes
}

reason(record) := "denied: the request names no source organisation" if {
	not opted_out(record)
	input.purpose in own_purposes
	not has_source
}
