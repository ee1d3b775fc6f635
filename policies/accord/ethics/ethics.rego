# METADATA
# title: Ethics rules
# description: |
#   Rules that hold whatever an agreement says.
#   E1: clinical detail (special-category health data) never goes to a
#   recipient whose kind is not "health", even if an agreement lists it;
#   the field is withheld, the rest of the record may still be shared.
#   E2: a recipient must be of a recognised kind, so E1 can be applied.
package accord.ethics

# METADATA
# title: Clinical fields
# description: |
#   Fields holding clinical detail. Add a field name here to have it withheld
#   from every non-health recipient. chi_number is an identifier, not
#   clinical detail, so it is not listed here (agreements decide on it).
clinical_fields := {"clinical_risk_group"}

# METADATA
# title: Recognised recipient kinds
# description: Kinds of recipient organisation that ethics rule E1 can be applied to.
recipient_kinds := {"health", "council"}

# METADATA
# title: Fields withheld from a recipient kind
# description: The set of field names never released to a recipient of this kind (E1).
withheld_fields(kind) := set() if {
	kind == "health"
} else := clinical_fields

# METADATA
# title: Why a field is withheld
# description: Reason text for withholding one clinical field (E1).
withheld_reason(field) := sprintf(
	"%s withheld: clinical detail never goes to non-health recipients (ethics rule E1, UK GDPR Art. 9)",
	[field],
)

# METADATA
# title: Withholding reasons for a record
# description: One E1 reason per clinical field present in the record and withheld from this kind, sorted by field.
withheld_reasons(kind, present_fields) := [withheld_reason(field) |
	some field in sort(withheld_fields(kind) & present_fields)
]

# METADATA
# title: Ethics permits
# description: True when ethics allows any release to a recipient of this kind (E2).
permits(kind) if kind in recipient_kinds

# METADATA
# title: Ethics denials
# description: Deny reasons from ethics for a recipient organisation of this kind; empty when permitted.
denials(org, kind) := [] if {
	permits(kind)
} else := [sprintf(
	"denied: recipient %s is of kind %q, which ethics rule E2 does not recognise, so clinical safeguards cannot be applied (accountability)",
	[org, kind],
)]
