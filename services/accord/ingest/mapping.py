"""Per-partner column mappings, kept as data in `partners/<org>.yaml`.

Partners' exports name columns their own way ("CHI No", "Surname"). A mapping renames
them to the dataset's fields, per dataset:

    datasets:
      shielding-list:
        columns:
          CHI No: chi_number
          Surname: family_name
        values:                      # the partner's own words for enum values
          shielding_status: {Active: SHIELDING}

Names are matched ignoring case, surrounding spaces, and spaces versus hyphens versus
underscores, so "Date of birth" finds `date_of_birth` without a mapping. Columns that
already carry a field's name pass through; any other column is ignored, and the report
lists it, so nothing is read that the dataset does not define. `values` adds synonyms
on top of the shared table `config/aliases.yaml` (see `accord.ingest.habits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from accord.ingest.habits import Habits, parse_values
from accord.ingest.readers import PublishInputError
from accord.ingest.validation import FieldRule

ENVELOPE_FIELDS: Final = ("event_id", "occurred_at", "source_org")
"""Fields every dataset accepts besides its own: a partner's event id and recording time,
and a `source_org` that, if given, must be the publisher's own."""

_SEPARATORS: Final = re.compile(r"[\s\-_]+")


def fold(name: str) -> str:
    """A column name reduced to what identifies it: 'CHI  No' and 'chi-no' agree."""
    return _SEPARATORS.sub("_", name.strip()).strip("_").casefold()


@dataclass
class ColumnMapping:
    """Resolves a file's column names to dataset fields; remembers what it ignored."""

    fields: tuple[str, ...]
    renames: dict[str, str] = field(default_factory=dict)  # folded column name -> field
    habits: Habits = field(default_factory=lambda: Habits(values={}))  # the partner's synonyms
    ignored: set[str] = field(default_factory=set)
    _cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._known = {fold(name): name for name in (*self.fields, *ENVELOPE_FIELDS)}

    def target(self, column: str) -> str | None:
        """The field a column would feed, without noting it as ignored (for finding the
        header row among a file's first rows)."""
        folded = fold(column)
        return self.renames.get(folded) or self._known.get(folded)

    def header_score(self, cells: Iterable[Any]) -> int:
        """How many distinct fields a row's cells name: the header is the row naming most."""
        found = {self.target(str(cell)) for cell in cells if cell is not None and str(cell).strip()}
        found.discard(None)
        return len(found)

    def resolve(self, column: str) -> str | None:
        """The field a column feeds, or None (the column is ignored)."""
        if column not in self._cache:
            folded = fold(column)
            target = self.renames.get(folded) or self._known.get(folded)
            self._cache[column] = target
            if target is None:
                self.ignored.add(column)
        return self._cache[column]

    def check_header(self, header: Iterable[str]) -> dict[str, str]:
        """Map a file's header once; two columns feeding one field is a usage error."""
        targets: dict[str, str] = {}
        for column in header:
            target = self.resolve(column) if column else None
            if target is None:
                continue
            if target in targets:
                raise PublishInputError(
                    f"columns {targets[target]!r} and {column!r} both give {target}; "
                    "remove one or map it elsewhere"
                )
            targets[target] = column
        return targets

    def apply(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """(the row keyed by field, the field given twice if any)."""
        row: dict[str, Any] = {}
        for column, value in values.items():
            target = self.resolve(column)
            if target is None:
                continue
            if target in row:
                return row, target
            row[target] = value
        return row, None


def mapping_path(partners_dir: Path, org: str) -> Path:
    return partners_dir / f"{org}.yaml"


def load_mapping(
    path: Path | None,
    dataset: str,
    fields: tuple[str, ...],
    *,
    required: bool = False,
    rules: tuple[FieldRule, ...] = (),
) -> ColumnMapping:
    """The mapping for one dataset from a partner's YAML file; no file means no renames."""
    if path is None or not path.is_file():
        if required and path is not None:
            raise PublishInputError(f"no such mapping file: {path}")
        return ColumnMapping(fields)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PublishInputError(f"{path}: not a readable YAML mapping: {exc}") from exc
    if not isinstance(document, dict):
        raise PublishInputError(f"{path}: expected a mapping with a 'datasets' key")
    datasets = document.get("datasets") or {}
    section = datasets.get(dataset) or {} if isinstance(datasets, dict) else None
    if not isinstance(section, dict):
        raise PublishInputError(f"{path}: 'datasets.{dataset}' must be a mapping")
    columns = section.get("columns") or {}
    if not isinstance(columns, dict):
        raise PublishInputError(f"{path}: 'datasets.{dataset}.columns' must map names to fields")
    known = set(fields) | set(ENVELOPE_FIELDS)
    renames: dict[str, str] = {}
    for column, target in columns.items():
        if target not in known:
            raise PublishInputError(
                f"{path}: column {column!r} is mapped to {target!r}, which is not a field of "
                f"{dataset}; fields: {', '.join(fields)}"
            )
        renames[fold(str(column))] = str(target)
    where = f"{path}: datasets.{dataset}"
    values = parse_values(section.get("values"), rules, where, strict_fields=True) if rules else {}
    return ColumnMapping(fields, renames, Habits(frozenset(), values))
