"""The partner registry: the organisations that may take part in sharing.

An organisation is registered when an agreement under policies/agreements/ names it (as a
provider or a recipient) or when it has a registration file `partners/<org>.yaml` (a
partner that publishes before any agreement names it, e.g. a new third-sector group).
Both are reviewed data in the repository, like the agreements; nothing at run time adds
an organisation. Each registered organisation is a Kafka principal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.core.settings import Settings
from accord.core.topics import is_org_id
from accord.pipeline.retention import agreements_from_dir


def agreement_parties(agreements: Mapping[str, Any]) -> set[str]:
    """Providers and recipients named by `agreements` (any status)."""
    parties: set[str] = set()
    for agreement in agreements.values():
        if not isinstance(agreement, Mapping):
            continue
        parties.update(p for p in agreement.get("providers") or () if isinstance(p, str))
        for recipient in agreement.get("recipients") or ():
            if isinstance(recipient, Mapping) and isinstance(recipient.get("org"), str):
                parties.add(recipient["org"])
    return {org for org in parties if is_org_id(org)}


def registration_files(settings: Settings) -> set[str]:
    folder = settings.home / "partners"
    return {path.stem for path in folder.glob("*.yaml") if is_org_id(path.stem)}


def registered_organisations(settings: Settings) -> list[str]:
    return sorted(
        agreement_parties(agreements_from_dir(settings.policies_dir)) | registration_files(settings)
    )
