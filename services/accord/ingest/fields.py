"""What a partner needs to fill a dataset: its fields, their rules in words, a template.

`accord publish --fields DATASET` prints `describe_fields`; `accord publish --template
DATASET` writes `template_header` as a header-only CSV. Both come from the field rules
themselves (`accord.ingest.datasets`), so they cannot drift from what is checked.
"""

from __future__ import annotations

import csv
import io
from typing import Final

from accord.ingest.datasets import DATASETS, Dataset
from accord.ingest.habits import Habits
from accord.ingest.validation import FieldRule

__all__ = ["describe_fields", "describe_rule", "template_csv", "template_header"]

KIND_RULES: Final[dict[str, str]] = {
    "chi": "CHI number: 10 digits (spaces allowed) with a valid check digit; its first "
    "six digits are the date of birth (DDMMYY). A 9-digit number that lost its leading 0 "
    "is restored when the check digit then passes",
    "nhs": "NHS number: 10 digits with a valid modulus 11 check digit",
    "text": "text: letters of any script, digits, spaces and ' - . (addresses also , / & ( ) #); "
    "not starting with = + - @; no control or invisible characters",
    "identifier": "your own reference: text, not starting with = + - @",
    "dob": "a date, YYYY-MM-DD or DD/MM/YYYY, not in the future nor before 1900",
    "effective_date": "a date, YYYY-MM-DD or DD/MM/YYYY, from 2000-01-01 to a year ahead",
    "date": "a date, YYYY-MM-DD or DD/MM/YYYY",
    "datetime": "a date and time, ISO 8601 (2026-04-01T10:15:00Z) or DD/MM/YYYY HH:MM; "
    "without a zone it is UK time; not more than 5 minutes ahead",
    "postcode": "a UK postcode (EH1 1AA); BFPO and overseas territories refused",
    "phone": "a UK landline or mobile (0131 496 0000, 07700 900123, +44 ...); a number "
    "that lost its leading 0 is restored",
    "boolean": "yes or no (also true/false, y/n, 1/0)",
    "council": "one of the 32 Scottish council areas, in full (City of Edinburgh); "
    "common short names such as Edinburgh are read too",
    "board": "one of the 14 NHS Scotland territorial boards, in full (NHS Lothian)",
    "org": "an organisation id, such as city-of-edinburgh",
}


def describe_rule(rule: FieldRule, habits: Habits | None = None) -> str:
    """One field's rule in plain words."""
    if rule.kind in ("enum", "enum_list"):
        what = "one of" if rule.kind == "enum" else "one or more of (separated by ; , or |)"
        text = f"{what}: {', '.join(rule.symbols)} (case, spaces and hyphens ignored)"
    else:
        text = KIND_RULES.get(rule.kind, rule.kind)
    if rule.max_length:
        text += f"; at most {rule.max_length} characters"
    if habits is not None:
        synonyms = habits.values.get(rule.name)
        if synonyms:
            shown = ", ".join(sorted(synonyms)[:6])
            more = f" and {len(synonyms) - 6} more" if len(synonyms) > 6 else ""
            text += f"; also read: {shown}{more}"
    return text


def describe_fields(dataset: str, habits: Habits | None = None) -> list[tuple[str, str, str]]:
    """(field, required or optional, rule) for each field of `dataset`, in file order."""
    spec: Dataset = DATASETS[dataset]
    placeholders = ""
    if habits is not None and habits.placeholders:
        # Stored folded, so that "-" and "--" (separators only) fold to a space: shown as "-".
        shown = sorted({text if text.strip() else "-" for text in habits.placeholders})
        placeholders = "; blank or " + ", ".join(shown) + " mean empty"
    rows = []
    for rule in spec.rules:
        if rule.name == "occurred_at" and spec.derive_occurred_at is not None:
            continue
        need = "required" if rule.required else "optional"
        text = describe_rule(rule, habits)
        if not rule.required:
            text += placeholders
        rows.append((rule.name, need, text))
    return rows


def template_header(dataset: str) -> list[str]:
    """The columns of a dataset's template: every field, in file order."""
    return [name for name, _, _ in describe_fields(dataset)]


def template_csv(dataset: str) -> str:
    """A header-only CSV of `dataset`'s fields."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(template_header(dataset))
    return buffer.getvalue()
