"""The partner registry: the organisations that may take part in sharing.

An organisation is registered when an agreement under policies/agreements/ names it (as a
provider or a recipient) or when it has a registration file `partners/<org>.yaml` (a
partner that publishes before any agreement names it, e.g. a new third-sector group).
Both are reviewed data in the repository, like the agreements; nothing at run time adds
an organisation. Each registered organisation is a Kafka principal. Who an agreement
names is read by `accord.core.orgs`, which also refuses unknown ids with suggestions.
"""

from __future__ import annotations

from accord.core.orgs import agreement_parties
from accord.core.settings import Settings
from accord.core.topics import is_org_id
from accord.pipeline.retention import agreements_from_dir


def registration_files(settings: Settings) -> set[str]:
    folder = settings.home / "partners"
    return {path.stem for path in folder.glob("*.yaml") if is_org_id(path.stem)}


def registered_organisations(settings: Settings) -> list[str]:
    return sorted(
        agreement_parties(agreements_from_dir(settings.policies_dir)) | registration_files(settings)
    )
