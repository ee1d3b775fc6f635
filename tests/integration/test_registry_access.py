"""The registry on the real stack: TLS, basic auth against the user store, scoped subjects."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from accord.core.credentials import ADMIN, WORKER
from accord.core.topics import Topics

from .conftest import registry_session

pytestmark = pytest.mark.integration

LOTHIAN, FIFE = "nhs-lothian", "fife"
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "AccessProbe",
        "doc": "d",
        "fields": [{"name": "n", "type": "int", "doc": "d"}],
    }
)


@pytest.fixture
def subjects(stack):
    """A partner subject of Lothian's and one of Fife's, under a test prefix; deleted after."""
    topics = Topics(stack.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."}))
    names = {org: Topics.subject(topics.partner(org, "shielding-list")) for org in (LOTHIAN, FIFE)}
    yield names
    admin = registry_session(stack, ADMIN)
    for name in names.values():
        for suffix in ("", "?permanent=true"):
            admin.delete(f"{stack.schema_registry_url}/subjects/{name}{suffix}", timeout=10)


def register(session, stack, subject):
    return session.post(
        f"{stack.schema_registry_url}/subjects/{subject}/versions",
        json={"schema": SCHEMA},
        timeout=10,
    )


def test_no_credentials_get_401(stack, subjects):
    anonymous = requests.Session()
    anonymous.trust_env = False
    anonymous.verify = str(stack.trusted_ca)
    response = anonymous.get(f"{stack.schema_registry_url}/subjects", timeout=10)
    assert response.status_code == 401 and response.json()["error_code"] == 40101
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert register(anonymous, stack, subjects[LOTHIAN]).status_code == 401


def test_a_wrong_password_gets_401(stack, subjects):
    session = registry_session(stack, LOTHIAN)
    session.auth = (LOTHIAN, "not-the-secret")
    assert register(session, stack, subjects[LOTHIAN]).status_code == 401


def test_plain_http_is_not_served(stack):
    plain = stack.schema_registry_url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{plain}/subjects", timeout=5)


def test_an_organisation_registers_and_reads_only_its_own_subjects(stack, subjects):
    lothian = registry_session(stack, LOTHIAN)
    url = stack.schema_registry_url
    created = register(lothian, stack, subjects[LOTHIAN])
    assert created.status_code == 200
    schema_id = created.json()["id"]
    assert lothian.get(f"{url}/subjects/{subjects[LOTHIAN]}/versions", timeout=10).json() == [1]
    assert lothian.get(f"{url}/schemas/ids/{schema_id}", timeout=10).status_code == 200
    assert subjects[LOTHIAN] in lothian.get(f"{url}/subjects", timeout=10).json()

    refused = register(lothian, stack, subjects[FIFE])
    assert refused.status_code == 403 and refused.json()["error_code"] == 40301
    assert register(registry_session(stack, FIFE), stack, subjects[FIFE]).status_code == 200
    # Lothian neither reads Fife's subject nor sees it listed.
    assert lothian.get(f"{url}/subjects/{subjects[FIFE]}/versions", timeout=10).status_code == 403
    assert subjects[FIFE] not in lothian.get(f"{url}/subjects", timeout=10).json()
    # The worker reads both.
    worker = registry_session(stack, WORKER)
    for subject in subjects.values():
        assert worker.get(f"{url}/subjects/{subject}/versions", timeout=10).status_code == 200


def test_config_changes_need_the_administrator(stack, subjects):
    url = stack.schema_registry_url
    for principal in (LOTHIAN, WORKER):
        session = registry_session(stack, principal)
        body = {"compatibility": "NONE"}
        assert session.put(f"{url}/config", json=body, timeout=10).status_code == 403
        put = session.put(f"{url}/config/{subjects[LOTHIAN]}", json=body, timeout=10)
        assert put.status_code == 403
        assert session.delete(f"{url}/config", timeout=10).status_code == 403
        assert session.get(f"{url}/config", timeout=10).json() == {
            "compatibilityLevel": "BACKWARD_TRANSITIVE"
        }
    admin = registry_session(stack, ADMIN)
    same = {"compatibility": "BACKWARD_TRANSITIVE"}  # the default: other tests rely on it
    assert admin.put(f"{url}/config", json=same, timeout=10).status_code == 200
    level = {"compatibility": "FULL_TRANSITIVE"}
    assert admin.put(f"{url}/config/{subjects[LOTHIAN]}", json=level, timeout=10).status_code == 200
    assert admin.delete(f"{url}/config/{subjects[LOTHIAN]}", timeout=10).status_code == 200
    # Deletes of subjects are the administrator's too.
    register(registry_session(stack, LOTHIAN), stack, subjects[LOTHIAN])
    lothian = registry_session(stack, LOTHIAN)
    assert lothian.delete(f"{url}/subjects/{subjects[LOTHIAN]}", timeout=10).status_code == 403
