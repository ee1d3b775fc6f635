# METADATA
# title: What the decisions were made under
# description: >-
#   The rules' stamp and the agreements OPA serves, read in the same evaluation
#   as the decisions (see accord.sharing.answer), so that a decision names the
#   revision that made it without a second request. The stamp is a digest of the
#   text of every other rule file (tests left out); `accord policy stamp` writes it
#   and the policy tests refuse a stale one.
package accord.revision

import rego.v1

# METADATA
# title: The rules' stamp
# description: sha256 of the sorted text of every other served .rego file; written by `accord policy stamp`.
rules := "sha256:5927ad8e22c59d10657712327e36c94acb3b95eb7d06049484ae21c1e9d26e69"

# METADATA
# title: Agreements served
# description: data.agreements, or no agreements when none (or no object) is loaded.
default agreements := {}

agreements := data.agreements if is_object(data.agreements)

# METADATA
# title: What is served
# description: The rules' stamp and the agreements, as one value.
served := {"rules": rules, "agreements": agreements}
