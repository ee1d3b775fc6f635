# METADATA
# title: Authority - who may assert what
# description: |
#   Decides, for every partner record before it can touch a case, whether its
#   publisher may assert it: a dataset only from the organisations the
#   authority rules (data.authority, policies/authority/authority.yaml) and
#   the agreements name, and an outcome only from the request's owner or an
#   organisation the owner refers requests to. Default deny. The rules must
#   match their schema (data.schemas.authority); when they do not, or are not
#   loaded, `decisions` is undefined and the hub holds the records rather than
#   reject them all (fail closed, nothing lost).
#
#   input.records: [{record_id, source_org, dataset, request_org}], one
#   query per batch; request_org only for outcomes (null: the publisher).
package accord.authority

import rego.v1

import data.accord.agreements

# METADATA
# title: Authority rules
# description: data.authority; empty (so no one has authority) when it is not loaded.
default rules := {}

rules := data.authority if is_object(data.authority)

# METADATA
# title: Authority rules match their schema
# description: True when data.authority matches data.schemas.authority; false without either.
default rules_valid := false

rules_valid if {
	[ok, _] := json.match_schema(rules, data.schemas.authority)
	ok
}

# METADATA
# title: Publishers of a dataset
# description: |
#   Organisations that may publish `dataset`: providers of agreements naming one
#   of its providers_of datasets, recipients of a kind in recipient_kinds, and
#   the orgs listed. Empty for a dataset the rules do not name.
publishers(dataset) := (providers(dataset) | recipients(dataset)) | listed(dataset)

# METADATA
# title: Publishers by dataset
# description: Dataset -> its publishers, computed once per query (a batch asks many times).
by_dataset := {dataset: publishers(dataset) | some dataset, _ in rules.publishers}

publisher_of(org, dataset) if org in by_dataset[dataset]

providers(dataset) := {org |
	some source in object.get(rules.publishers, [dataset, "providers_of"], [])
	some agreement in agreements.by_id
	is_object(agreement.datasets[source])
	some org in agreement.providers
}

recipients(dataset) := {recipient.org |
	kinds := object.get(rules.publishers, [dataset, "recipient_kinds"], [])
	some agreement in agreements.by_id
	some recipient in agreement.recipients
	recipient.kind in kinds
}

listed(dataset) := {org | some org in object.get(rules.publishers, [dataset, "orgs"], [])}

# METADATA
# title: Who owns the request an outcome answers
# description: request_org when given, else the publisher.
owner(record) := record.request_org if {
	is_string(record.request_org)
	record.request_org != ""
} else := record.source_org

# METADATA
# title: Organisations a request owner refers requests to
referred_to(org) := {each | some each in object.get(rules, ["referrals", org], [])}

# METADATA
# title: Datasets an organisation may publish
# description: |
#   Sorted names of the datasets `org` may publish at all (an outcome still
#   needs its request's owner to allow it); for early refusals at the gateway
#   and `accord publish`. Query it with input.org.
datasets := sort([dataset |
	rules_valid
	some dataset, _ in rules.publishers
	may_publish(input.org, dataset)
])

may_publish(org, dataset) if publisher_of(org, dataset)

may_publish(org, "support-outcome") if {
	some owner_org, referred in rules.referrals
	org in referred
	publisher_of(owner_org, "support-outcome")
}

# METADATA
# title: Decisions for a batch of records
# description: One decision per record, in order; undefined when the rules are invalid.
decisions := [decision(record) | some record in input.records] if rules_valid

default allow(_) := false

# METADATA
# title: A dataset from one of its publishers
allow(record) if {
	record.dataset != "support-outcome"
	publisher_of(record.source_org, record.dataset)
}

# METADATA
# title: An outcome from the request's owner
allow(record) if {
	record.dataset == "support-outcome"
	owner(record) == record.source_org
	publisher_of(record.source_org, "support-outcome")
}

# METADATA
# title: An outcome from an organisation the owner refers requests to
allow(record) if {
	record.dataset == "support-outcome"
	publisher_of(owner(record), "support-outcome")
	record.source_org in referred_to(owner(record))
}

decision(record) := {
	"record_id": record.record_id,
	"allow": true,
	"reason_code": "",
	"reason": "",
} if allow(record)

decision(record) := {
	"record_id": record.record_id,
	"allow": false,
	"reason_code": refusal(record).code,
	"reason": refusal(record).reason,
} if not allow(record)

# METADATA
# title: Why a record is refused
# description: A reason code and a reason naming organisations and datasets only, never the person.
refusal(record) := {
	"code": "not_a_publisher",
	"reason": sprintf(
		"%v may not publish %v: the authority rules and agreements do not name it as a publisher of that dataset",
		[record.source_org, record.dataset],
	),
} if {
	record.dataset != "support-outcome"
}

refusal(record) := {
	"code": "not_request_owner",
	"reason": sprintf(
		"%v may not report outcomes of %v's requests: only the request's owner or an organisation it refers requests to may",
		[record.source_org, owner(record)],
	),
} if {
	record.dataset == "support-outcome"
	owner(record) != record.source_org
}

refusal(record) := {
	"code": "not_a_publisher",
	"reason": sprintf(
		"%v may not publish support-outcome: it owns no support requests under the authority rules",
		[record.source_org],
	),
} if {
	record.dataset == "support-outcome"
	owner(record) == record.source_org
}
