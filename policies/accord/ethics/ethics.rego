# METADATA
# title: Ethics rules
# description: |
#   Rules that hold whatever an agreement says. Each returns findings
#   ({text, clause_topic, principle, rule}) that the sharing policy turns into
#   reasons citing the agreement's own clause for the topic.
#   E1: clinical detail never goes to a recipient whose kind is not "health"
#       beyond whether the person is shielding; the field is withheld, the
#       rest of the record may still be shared.
#   E2: a recipient must be of a recognised kind, so E1 and E5 can be applied.
#   E3: special-category (health) data needs a UK GDPR Art. 9(2) condition.
#   E4: a person's opt-out (objection) or consent withdrawal stops sharing
#       about them at once; an unreadable opt-out state counts as an opt-out.
#   E5: children. Our reading of the ICO data sharing code ("Children"):
#       children merit specific protection and their best interests come
#       first, so a child's record (under 18 on the decision date, UK GDPR's
#       and the code's meaning of child) is shared only under an agreement
#       that expressly provides for children (children.permitted: true, with
#       a DPIA), and only with health or council recipients, which have
#       statutory safeguarding duties; never with third-sector recipients,
#       whom the council briefs instead. A record whose age cannot be read is
#       treated as a child's (fail closed).
package accord.ethics

# METADATA
# title: Clinical fields
# description: |
#   Fields holding clinical detail. Add a field name here to have it withheld
#   from every non-health recipient. chi_number is an identifier, not
#   clinical detail, and shielding_status is the permitted "is shielding".
clinical_fields := {"clinical_risk_group", "conditions", "diagnosis", "medications"}

# METADATA
# title: Special-category fields
# description: Fields whose sharing needs an Art. 9 condition (E3); being on the shielding list reveals health.
special_category_fields := clinical_fields | {"shielding_status"}

# METADATA
# title: Special-category datasets
# description: Datasets that are health data as a whole, so any sharing of them needs an Art. 9 condition (E3).
special_category_datasets := {"shielding-list"}

# METADATA
# title: Recognised recipient kinds
# description: Kinds of recipient organisation that ethics rules E1 and E5 can be applied to.
recipient_kinds := {"health", "council", "third-sector"}

# METADATA
# title: Kinds that may receive children's records
# description: Recipients with statutory safeguarding duties (E5).
child_recipient_kinds := {"health", "council"}

# METADATA
# title: Age of majority
# description: Under this age on the decision date a person is a child (E5).
adult_age := 18

# METADATA
# title: Fields withheld from a recipient kind
# description: The set of field names never released to a recipient of this kind (E1).
withheld_fields(kind) := set() if {
	kind == "health"
} else := clinical_fields

# METADATA
# title: Clinical withholding finding
# description: One E1 finding for the clinical fields present in the record and withheld from this kind.
withheld(kind, present_fields) := [{
	"text": sprintf("%s withheld: clinical detail never goes to non-health recipients", [concat(", ", sort(fields))]),
	"topic": "clinical",
	"principle": "data minimisation",
	"rule": "ethics rule E1, UK GDPR Art. 9",
} |
	fields := withheld_fields(kind) & present_fields
	count(fields) > 0
]

# METADATA
# title: Recipient kind denial
# description: The E2 finding for a recipient of an unrecognised kind; empty when recognised.
kind_denials(org, kind) := [] if {
	kind in recipient_kinds
} else := [{
	"text": sprintf("denied: recipient %s is of kind %q, which the ethics rules do not recognise, so clinical and children's safeguards cannot be applied", [org, kind]),
	"topic": "",
	"principle": "accountability",
	"rule": "ethics rule E2",
}]

# METADATA
# title: Art. 9 condition
# description: True when the agreement names a UK GDPR Art. 9(2) condition.
has_article_9(agreement) if regex.match(`^9\(2\)\([a-j]\) `, agreement.lawful_basis.article_9)

# METADATA
# title: Special category involved
# description: True when the dataset is health data or the listed fields include special-category fields.
special_category(dataset, _) if dataset in special_category_datasets

special_category(_, listed) if count(listed & special_category_fields) > 0

# METADATA
# title: Art. 9 denial
# description: The E3 finding when special-category data would be shared without an Art. 9 condition.
article_9_denials(agreement, dataset, listed) := [{
	"text": sprintf("denied: %s is special-category (health) data and the agreement names no Art. 9 condition", [dataset]),
	"topic": "lawful-basis",
	"principle": "lawfulness",
	"rule": "ethics rule E3, UK GDPR Art. 9",
}] if {
	special_category(dataset, listed)
	not has_article_9(agreement)
} else := []

# METADATA
# title: Objection state
# description: |
#   "objected" when the record's subject has opted out or withdrawn consent,
#   "unreadable" when either flag is neither true, false nor null (or subject
#   is not an object), "" otherwise. An absent subject means no known objection.
objection(record) := "unreadable" if {
	subject := object.get(record, "subject", null)
	subject != null
	not is_object(subject)
} else := "objected" if {
	some flag in ["opted_out", "consent_withdrawn"]
	record.subject[flag] == true
} else := "unreadable" if {
	some flag in ["opted_out", "consent_withdrawn"]
	not object.get(record, ["subject", flag], null) in {true, false, null}
} else := ""

# METADATA
# title: Objection denial
# description: The E4 finding for a person who opted out or withdrew consent; empty otherwise.
objection_denials(state) := [] if {
	state == ""
} else := [{
	"text": "denied: the person has opted out of sharing or withdrawn consent; sharing about them stops at once",
	"topic": "opt-out",
	"principle": "the right to object, lawfulness and fairness",
	"rule": "ethics rule E4",
}] if {
	state == "objected"
} else := [{
	"text": "denied: the person's opt-out state cannot be read, so an opt-out is assumed",
	"topic": "opt-out",
	"principle": "the right to object, lawfulness and fairness",
	"rule": "ethics rule E4",
}]

# METADATA
# title: Child
# description: |
#   "child" when date_of_birth (YYYY-MM-DD) is less than adult_age years
#   before now_ns, "adult" when at least, "unknown" when it cannot be read.
age_band(fields, now_ns) := "unknown" if {
	not birth_ns(fields)
} else := "child" if {
	now_ns < time.add_date(birth_ns(fields), adult_age, 0, 0)
} else := "adult"

birth_ns(fields) := time.parse_rfc3339_ns(sprintf("%sT00:00:00Z", [fields.date_of_birth])) if {
	is_string(fields.date_of_birth)
}

# METADATA
# title: Children denial
# description: The E5 finding for a child's (or possibly a child's) record; empty when it may be shared.
children_denials(agreement, kind, band) := [] if {
	band == "adult"
} else := [] if {
	agreement.children.permitted == true
	kind in child_recipient_kinds
} else := [{
	"text": sprintf("denied: the person is %s and %s", [child_words(band), child_rule(agreement, kind)]),
	"topic": "children",
	"principle": "children merit specific protection",
	"rule": "ethics rule E5",
}]

child_words(band) := "a child (under 18)" if {
	band == "child"
} else := "possibly a child (no readable date_of_birth)"

child_rule(agreement, _) := "the agreement does not provide for children" if {
	object.get(agreement, ["children", "permitted"], false) != true
} else := "children's records go only to health and council recipients"
