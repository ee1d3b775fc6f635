"""Early answers on authority for the gateway and `accord publish`: which datasets an
organisation may publish at all (`accord.authority.datasets`).

Advisory only: the worker's intake decides every record (`accord.pipeline.authority`), and
a partner may write to its own topic without either tool. So when OPA cannot say, these
callers go on and leave the decision to the worker, rather than refuse a publisher that
may well have the authority.
"""

from __future__ import annotations

import requests

from accord.core.credentials import CredentialError
from accord.core.logging import get_logger
from accord.core.policy import opa_session
from accord.core.settings import Settings

log = get_logger("accord.governance.authority")
DATASETS_PATH = "v1/data/accord/authority/datasets"


def publishable(settings: Settings, org: str, timeout_s: float = 2.0) -> set[str] | None:
    """The datasets `org` may publish under the authority rules; None when OPA cannot say."""
    try:
        response = opa_session(settings).post(
            f"{settings.opa_url}/{DATASETS_PATH}", json={"input": {"org": org}}, timeout=timeout_s
        )
        response.raise_for_status()
        result = response.json().get("result")
    except (requests.RequestException, ValueError, CredentialError, AttributeError) as exc:
        log.info("authority_unknown", org=org, error=type(exc).__name__)
        return None
    if not isinstance(result, list) or not all(isinstance(name, str) for name in result):
        log.info("authority_unknown", org=org, error="malformed answer")
        return None
    return set(result)


def no_authority_message(org: str, dataset: str, allowed: set[str]) -> str:
    """Why `org` may not publish `dataset`, and what it may publish."""
    may = ", ".join(sorted(allowed)) or "no dataset"
    return (
        f"{org} has no authority to publish {dataset}: the authority rules "
        f"(policies/authority/authority.yaml) and the agreements do not name it as a "
        f"publisher of that dataset. It may publish: {may}."
    )
