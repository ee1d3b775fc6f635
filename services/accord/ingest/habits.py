"""Spreadsheet habits, read as what they mean before the field rules judge a row.

People fill spreadsheets the way they always have: "-" or "N/A" where there is nothing
to say, "Yes" in a status column, "Edinburgh" for the council, a phone number that
Excel turned into a number and so lost its leading 0. None of that is wrong about the
person, so none of it should reject them. `Habits.tidy` rewrites such values, field by
field, into what the rules accept; everything else is left exactly as it came, for the
rules to judge.

* **Placeholders** (`-`, `N/A`, `none`, ... and blank) in an *optional* field mean
  empty. In a required field they stay a missing value (`required`).
* **Synonyms** for enum values, council areas and health boards are data: the shared
  table `config/aliases.yaml`, and a partner's own under `values:` in its mapping
  (`partners/<org>.yaml`), which wins. Keys match ignoring case, spaces, `-` and `_`;
  every target is checked against the field's rule when the table loads.
* **A lost leading zero**: a phone of 9 or 10 digits without its 0, or a CHI number of 9
  digits, gets the 0 back when the result is a valid number (a UK phone a person can
  be called on; a CHI whose check digit passes). The CHI must then still agree with the
  date of birth, so a typing slip is not hidden.

What was tidied is counted (`Tidied`), never logged with the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from accord.core.scotland import COUNCIL_AREAS, HEALTH_BOARDS
from accord.ingest.readers import PublishInputError
from accord.ingest.validation import (
    FieldRule,
    chi_mod10_check_digit,
    chi_mod11_check_digit,
    normalise_phone,
)

__all__ = [
    "ALIASES_FILE",
    "Habits",
    "Tidied",
    "fold_value",
    "load_habits",
    "restore_chi_zero",
    "restore_phone_zero",
]

ALIASES_FILE: Final = Path("config") / "aliases.yaml"
DEFAULT_PLACEHOLDERS: Final = ("-", "n/a", "none")
_SEPARATORS: Final = re.compile(r"[\s\-_]+")
_LIST_SEPARATORS: Final = re.compile(r"[;,|]")
_ENUM_SEPARATORS: Final = re.compile(r"[\s\-]+")
_ALIASED_KINDS: Final = frozenset({"enum", "enum_list", "council", "board"})

# What a tidy did, as counted in a report: (field, what).
PLACEHOLDER, ALIAS, LEADING_ZERO = "placeholder", "synonym", "leading_zero"


def fold_value(text: str) -> str:
    """A value reduced to what identifies it: 'Western  Isles' and 'western-isles' agree."""
    return _SEPARATORS.sub(" ", text.strip()).casefold()


@dataclass(frozen=True)
class Tidied:
    """One value rewritten: which field and how (placeholder, synonym, leading_zero)."""

    field: str
    what: str


def restore_phone_zero(value: Any) -> str | None:
    """'01314960002' for 1314960002 (a number Excel stored as a number), else None."""
    digits = _digits_of(value)
    if digits is None or len(digits) not in (9, 10) or digits[0] == "0":
        return None
    candidate = "0" + digits
    return candidate if normalise_phone(candidate) is not None else None


def restore_chi_zero(value: Any) -> str | None:
    """The CHI number with its leading 0 back, when 9 digits were given and the 10 pass
    the check digit; else None."""
    digits = _digits_of(value)
    if digits is None or len(digits) != 9:
        return None
    candidate = "0" + digits
    check = int(candidate[9])
    if check in (chi_mod11_check_digit(candidate[:9]), chi_mod10_check_digit(candidate[:9])):
        return candidate
    return None


def _digits_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and value > 0 else None
    if isinstance(value, str):
        digits = "".join(value.split())
        return digits if digits.isascii() and digits.isdigit() else None
    return None


@dataclass
class Habits:
    """Placeholders and synonyms for one dataset's fields (see the module docstring)."""

    placeholders: frozenset[str] = frozenset(fold_value(p) for p in DEFAULT_PLACEHOLDERS)
    # field -> folded synonym -> the canonical value
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def is_placeholder(self, raw: Any) -> bool:
        if raw is None:
            return True
        return isinstance(raw, str) and (not raw.strip() or fold_value(raw) in self.placeholders)

    def _synonym(self, name: str, text: str) -> str | None:
        table = self.values.get(name)
        return table.get(fold_value(text)) if table else None

    def tidy(
        self, rules: Sequence[FieldRule], row: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[Tidied]]:
        """The row with placeholders emptied, synonyms replaced and lost zeros restored,
        and what was changed. Fields without a rule are passed through untouched."""
        tidied = dict(row)
        changes: list[Tidied] = []
        for rule in rules:
            if rule.name not in row:
                continue
            raw = row[rule.name]
            if not rule.required and isinstance(raw, str) and raw.strip():
                if fold_value(raw) in self.placeholders:
                    tidied[rule.name] = None
                    changes.append(Tidied(rule.name, PLACEHOLDER))
                    continue
            if rule.kind == "phone":
                restored = restore_phone_zero(raw)
                if restored is not None:
                    tidied[rule.name] = restored
                    changes.append(Tidied(rule.name, LEADING_ZERO))
            elif rule.kind == "chi":
                restored = restore_chi_zero(raw)
                if restored is not None:
                    tidied[rule.name] = restored
                    changes.append(Tidied(rule.name, LEADING_ZERO))
            elif rule.kind == "enum_list" and isinstance(raw, str):
                items = [part.strip() for part in _LIST_SEPARATORS.split(raw)]
                mapped = [self._synonym(rule.name, item) or item for item in items if item]
                if mapped != [item for item in items if item]:
                    tidied[rule.name] = ";".join(mapped)
                    changes.append(Tidied(rule.name, ALIAS))
            elif rule.kind == "enum_list" and isinstance(raw, list):
                mapped_list = [
                    (self._synonym(rule.name, item) or item) if isinstance(item, str) else item
                    for item in raw
                ]
                if mapped_list != raw:
                    tidied[rule.name] = mapped_list
                    changes.append(Tidied(rule.name, ALIAS))
            elif rule.kind in _ALIASED_KINDS and isinstance(raw, str):
                canonical = self._synonym(rule.name, raw)
                if canonical is not None:
                    tidied[rule.name] = canonical
                    changes.append(Tidied(rule.name, ALIAS))
        return tidied, changes

    def merged(self, other: Habits) -> Habits:
        """This table with `other`'s synonyms on top (a partner's own win)."""
        values = {name: dict(table) for name, table in self.values.items()}
        for name, table in other.values.items():
            values.setdefault(name, {}).update(table)
        return Habits(self.placeholders | other.placeholders, values)


def _canonical(rule: FieldRule, target: Any) -> str | None:
    """`target` as the rule's canonical value, or None when the rule would refuse it."""
    if not isinstance(target, str):
        return None
    if rule.kind == "council":
        return next((c for c in COUNCIL_AREAS if c.casefold() == target.casefold()), None)
    if rule.kind == "board":
        return next((b for b in HEALTH_BOARDS if b.casefold() == target.casefold()), None)
    symbol = _ENUM_SEPARATORS.sub("_", target.strip()).upper()
    return symbol if symbol in rule.symbols else None


def parse_values(
    document: Any, rules: Sequence[FieldRule], where: str, *, strict_fields: bool
) -> dict[str, dict[str, str]]:
    """A `values:` section ({field: {synonym: canonical}}) checked against the rules.

    With `strict_fields`, a field that is not one of the rules' is an error (a partner's
    mapping names one dataset); otherwise such fields are skipped (the shared table
    spans every dataset)."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PublishInputError(f"{where}: 'values' must map field names to synonyms")
    by_name = {rule.name: rule for rule in rules}
    values: dict[str, dict[str, str]] = {}
    for name, table in document.items():
        rule = by_name.get(str(name))
        if rule is None:
            if strict_fields:
                raise PublishInputError(
                    f"{where}: 'values' names {name!r}, which is not a field of this dataset"
                )
            continue
        if rule.kind not in _ALIASED_KINDS:
            raise PublishInputError(
                f"{where}: synonyms apply to enum, council and board fields; {name} is a "
                f"{rule.kind} field"
            )
        if not isinstance(table, dict):
            raise PublishInputError(f"{where}: 'values.{name}' must map synonyms to values")
        for synonym, target in table.items():
            canonical = _canonical(rule, target)
            if canonical is None:
                raise PublishInputError(
                    f"{where}: 'values.{name}' maps {str(synonym)!r} to {target!r}, which "
                    f"{rule.label} does not accept"
                )
            values.setdefault(rule.name, {})[fold_value(str(synonym))] = canonical
    return values


def load_habits(home: Path, rules: Sequence[FieldRule]) -> Habits:
    """The shared table (`config/aliases.yaml` under `home`) for these rules; the
    defaults when the file is absent. A broken table is a PublishInputError."""
    path = home / ALIASES_FILE
    if not path.is_file():
        return Habits()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PublishInputError(f"{path}: not a readable YAML table: {exc}") from exc
    if not isinstance(document, dict):
        raise PublishInputError(f"{path}: expected 'placeholders' and 'values'")
    placeholders = document.get("placeholders", list(DEFAULT_PLACEHOLDERS))
    if not isinstance(placeholders, list) or not all(isinstance(p, str) for p in placeholders):
        raise PublishInputError(f"{path}: 'placeholders' must be a list of text")
    values = parse_values(document.get("values"), rules, str(path), strict_fields=False)
    return Habits(frozenset(fold_value(p) for p in placeholders if p.strip()), values)
