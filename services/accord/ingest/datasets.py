"""Each partner dataset's fields, rules and pseudonymous key, built from the field rules.

One `Dataset` per entry of `accord.core.topics.DATASET_RECORDS`. Its `validate` turns a raw
row (text from a file, or JSON values) into the record's payload: every field of the Avro
record except the envelope (event id, source organisation, schema version), normalised.

Kafka keys are HMAC person keys (`accord.core.pseudonym.person_key`), never identifiers:

* shielding-list: HMAC of ``chi:<CHI>``;
* support-request: HMAC of ``chi:<CHI>``, else ``nhs:<NHS number>``, else
  ``request:<org>|<request id>``;
* support-outcome: HMAC of ``request:<request org>|<request id>`` (the request org
  defaults to the publisher);
* consent-change: HMAC of ``chi:<CHI>``, else ``nhs:<NHS number>``, else
  ``person:<family name>|<given name>|<date of birth>|<postcode>`` (case-folded).

A support request without CHI or NHS number is keyed by the request, so its outcomes (keyed
the same way) land on the same partition; a request with a CHI lands with the person's
shielding-list entry instead, and matching the two is the worker's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Final

from accord.core.topics import (
    CONSENT_CHANGE,
    DATASET_RECORDS,
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
)
from accord.ingest.validation import (
    ADDRESS_MAX,
    IDENTIFIER_MAX,
    NAME_MAX,
    SHIELDING_RULES,
    Clock,
    FieldError,
    FieldRule,
    RowInvalid,
    check_chi_matches_dob,
    check_council_in_board,
    check_fields,
)

SUPPORT_NEEDS: Final = (
    "FOOD",
    "MEDICINE",
    "SOCIAL_ISOLATION",
    "FINANCIAL",
    "WELFARE_CHECK",
    "OTHER",
)
URGENCIES: Final = ("IMMEDIATE", "WITHIN_48_HOURS", "ROUTINE", "UNKNOWN")
CHANNELS: Final = ("HELPLINE", "WEB_FORM", "REFERRAL", "EMAIL", "OTHER")
OUTCOMES: Final = (
    "DELIVERED",
    "NEEDS_MET",
    "NO_ANSWER",
    "DECLINED",
    "REFERRED",
    "UNABLE_TO_CONTACT",
    "OTHER",
    "UNKNOWN",
)
CONSENT_SCOPES: Final = ("ALL_SHARING", "SHIELDING_SUPPORT", "OTHER")
CONSENT_CHANGES: Final = ("OPT_OUT", "WITHDRAW_CONSENT", "OPT_IN", "UNKNOWN")

OCCURRED_AT: Final = FieldRule("occurred_at", "Occurred at", "datetime", required=True)

_PERSON_RULES: Final = (
    FieldRule("chi_number", "CHI number", "chi"),
    FieldRule("nhs_number", "NHS number", "nhs"),
    FieldRule("given_name", "Given name", "text", max_length=NAME_MAX),
    FieldRule("family_name", "Family name", "text", max_length=NAME_MAX),
    FieldRule("date_of_birth", "Date of birth", "dob"),
)

SUPPORT_REQUEST_RULES: Final[tuple[FieldRule, ...]] = (
    OCCURRED_AT,
    FieldRule("request_id", "Request id", "identifier", required=True, max_length=IDENTIFIER_MAX),
    *_PERSON_RULES,
    FieldRule("address_line1", "Address line 1", "text", max_length=ADDRESS_MAX),
    FieldRule("postcode", "Postcode", "postcode"),
    FieldRule("council_area", "Council area", "council"),
    FieldRule("contact_phone", "Contact phone", "phone"),
    FieldRule("lives_alone", "Lives alone", "boolean"),
    FieldRule("needs", "Needs", "enum_list", required=True, symbols=SUPPORT_NEEDS),
    FieldRule("urgency", "Urgency", "enum", required=True, symbols=URGENCIES),
    FieldRule("channel", "Channel", "enum", required=True, symbols=CHANNELS),
)

SUPPORT_OUTCOME_RULES: Final[tuple[FieldRule, ...]] = (
    OCCURRED_AT,
    FieldRule("request_id", "Request id", "identifier", required=True, max_length=IDENTIFIER_MAX),
    FieldRule("request_org", "Request organisation", "org"),
    FieldRule("need", "Need", "enum", symbols=SUPPORT_NEEDS),
    FieldRule("outcome", "Outcome", "enum", required=True, symbols=OUTCOMES),
)

CONSENT_CHANGE_RULES: Final[tuple[FieldRule, ...]] = (
    OCCURRED_AT,
    *_PERSON_RULES,
    FieldRule("postcode", "Postcode", "postcode"),
    FieldRule("scope", "Scope", "enum", required=True, symbols=CONSENT_SCOPES),
    FieldRule("change", "Change", "enum", required=True, symbols=CONSENT_CHANGES),
)


def _require_identity(values: Mapping[str, Any], errors: list[FieldError]) -> None:
    """A person must be identifiable: CHI, NHS number, or family name with date of birth
    or postcode. An identifier that was given but is invalid already has its own error."""
    if values.get("chi_number") or values.get("nhs_number"):
        return
    failed = {error.field for error in errors}
    if failed & {"chi_number", "nhs_number"}:
        return
    if values.get("family_name") and (values.get("date_of_birth") or values.get("postcode")):
        return
    errors.append(
        FieldError(
            "chi_number",
            "identity_missing",
            "The person cannot be identified: give a CHI number, an NHS number, or a "
            "family name with a date of birth or a postcode.",
        )
    )


def validate_shielding(row: Mapping[str, Any], clock: Clock) -> dict[str, Any]:
    values, errors = check_fields(SHIELDING_RULES, row, clock)
    check_chi_matches_dob(values, errors)
    check_council_in_board(values, errors)
    if errors:
        raise RowInvalid(errors)
    return values


def validate_support_request(row: Mapping[str, Any], clock: Clock) -> dict[str, Any]:
    values, errors = check_fields(SUPPORT_REQUEST_RULES, row, clock)
    check_chi_matches_dob(values, errors)
    _require_identity(values, errors)
    if errors:
        raise RowInvalid(errors)
    return values


def validate_support_outcome(row: Mapping[str, Any], clock: Clock) -> dict[str, Any]:
    values, errors = check_fields(SUPPORT_OUTCOME_RULES, row, clock)
    if errors:
        raise RowInvalid(errors)
    return values


def validate_consent_change(row: Mapping[str, Any], clock: Clock) -> dict[str, Any]:
    values, errors = check_fields(CONSENT_CHANGE_RULES, row, clock)
    check_chi_matches_dob(values, errors)
    _require_identity(values, errors)
    if errors:
        raise RowInvalid(errors)
    return values


def shielding_occurred_at(payload: Mapping[str, Any], clock: Clock) -> datetime:
    """A board's list has no recording time: midnight of its effective date, never ahead."""
    start = datetime.combine(payload["effective_date"], time(0, 0), tzinfo=UTC)
    return min(start, clock.now.replace(microsecond=0))


@dataclass(frozen=True)
class Dataset:
    """What the pipeline needs to know about one partner dataset."""

    name: str
    record_name: str
    rules: tuple[FieldRule, ...]
    validate: Callable[[Mapping[str, Any], Clock], dict[str, Any]]
    # Datasets whose rows carry no recording time derive one from the payload.
    derive_occurred_at: Callable[[Mapping[str, Any], Clock], datetime] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules if rule.required)

    def label(self, name: str) -> str:
        for rule in self.rules:
            if rule.name == name:
                return rule.label
        return name


DATASETS: Final[dict[str, Dataset]] = {
    SHIELDING_LIST: Dataset(
        SHIELDING_LIST,
        DATASET_RECORDS[SHIELDING_LIST],
        SHIELDING_RULES,
        validate_shielding,
        shielding_occurred_at,
    ),
    SUPPORT_REQUEST: Dataset(
        SUPPORT_REQUEST,
        DATASET_RECORDS[SUPPORT_REQUEST],
        SUPPORT_REQUEST_RULES,
        validate_support_request,
    ),
    SUPPORT_OUTCOME: Dataset(
        SUPPORT_OUTCOME,
        DATASET_RECORDS[SUPPORT_OUTCOME],
        SUPPORT_OUTCOME_RULES,
        validate_support_outcome,
    ),
    CONSENT_CHANGE: Dataset(
        CONSENT_CHANGE,
        DATASET_RECORDS[CONSENT_CHANGE],
        CONSENT_CHANGE_RULES,
        validate_consent_change,
    ),
}
"""Every partner dataset by name; the keys are exactly those of DATASET_RECORDS."""
