"""The registry's REST API on the real stack: Confluent's paths, shapes and error codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests

from accord.core.settings import Settings
from accord.stack import local

from .conftest import registry_session

pytestmark = pytest.mark.integration


def probe(*fields: dict) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "RegistryProbe",
            "namespace": "org.accord.test",
            "doc": "A schema that exists only for the registry's tests.",
            "fields": [{"name": "n", "type": "int", "doc": "A number."}, *fields],
        }
    )


V1 = probe()
V2 = probe({"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."})
NO_DEFAULT = probe({"name": "note", "type": "string", "doc": "A note."})


class Api:
    """requests against the registry, returning (status, body)."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url = url
        self.session = session

    def __call__(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        response = self.session.request(method, self.url + path, json=body, timeout=30)
        return response.status_code, response.json()


@pytest.fixture
def api(stack: Settings) -> Api:
    return Api(stack.schema_registry_url, registry_session(stack))


@pytest.fixture
def subject(api: Api) -> Iterator[str]:
    """A uuid-named subject, deleted (soft, then permanently) with its config afterwards."""
    name = f"t{uuid.uuid4().hex[:10]}.registry-value"
    yield name
    api("DELETE", f"/config/{name}")
    api("DELETE", f"/subjects/{name}")
    api("DELETE", f"/subjects/{name}?permanent=true")


def test_subjects_versions_and_schemas_by_id(api, subject):
    status, first = api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    assert status == 200
    assert api("POST", f"/subjects/{subject}/versions", {"schema": V1})[1] == first  # idempotent
    _, second = api("POST", f"/subjects/{subject}/versions", {"schema": V2})
    assert second["id"] != first["id"]

    assert subject in api("GET", "/subjects")[1]
    assert api("GET", f"/subjects/{subject}/versions")[1] == [1, 2]
    _, latest = api("GET", f"/subjects/{subject}/versions/latest")
    assert (latest["version"], latest["id"], json.loads(latest["schema"])) == (
        2,
        second["id"],
        json.loads(V2),
    )
    assert api("GET", f"/subjects/{subject}/versions/1/schema")[1] == json.loads(V1)
    assert api("GET", f"/schemas/ids/{first['id']}")[1] == {"schema": latest_text(api, subject, 1)}
    assert {"subject": subject, "version": 1} in api("GET", f"/schemas/ids/{first['id']}/versions")[
        1
    ]
    assert subject in api("GET", f"/schemas/ids/{first['id']}/subjects")[1]
    assert api("GET", "/schemas/types")[1] == ["AVRO"]

    _, found = api("POST", f"/subjects/{subject}", {"schema": V1})
    assert (found["subject"], found["version"], found["id"]) == (subject, 1, first["id"])


def latest_text(api: Api, subject: str, version: int) -> str:
    return api("GET", f"/subjects/{subject}/versions/{version}")[1]["schema"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/subjects/{missing}/versions", None, 404, 40401),
        ("GET", "/subjects/{s}/versions/7", None, 404, 40402),
        ("GET", "/subjects/{s}/versions/0", None, 422, 42202),
        ("GET", "/subjects/{s}/versions/first", None, 422, 42202),
        ("GET", "/schemas/ids/999999999", None, 404, 40403),
        ("POST", "/subjects/{s}", {"schema": NO_DEFAULT}, 404, 40403),
        ("POST", "/subjects/{s}/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": '{"type": "nope"}'}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": V1, "schemaType": "PROTOBUF"}, 422, 42201),
        ("PUT", "/config/{s}", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("PUT", "/config", {"compatibility": ""}, 422, 42203),
        ("GET", "/config/{s}", None, 404, 40408),
        ("DELETE", "/config/{s}", None, 404, 40408),
        ("POST", "/compatibility/subjects/{missing}/versions/1", {"schema": V1}, 404, 40401),
        ("POST", "/compatibility/subjects/{s}/versions/9", {"schema": V1}, 404, 40402),
        ("POST", "/subjects/{s}/versions", {"schema": NO_DEFAULT}, 409, 409),
    ],
)
def test_refusals_carry_confluents_error_codes(api, subject, method, path, body, status, code):
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    got_status, got = api(method, path.format(s=subject, missing=f"nope-{subject}"), body)
    assert (got_status, got["error_code"]) == (status, code), got
    assert got["message"]


def test_a_refused_registration_says_why_in_confluents_words(api, subject):
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    status, body = api("POST", f"/subjects/{subject}/versions", {"schema": NO_DEFAULT})
    assert status == 409
    assert body["message"].startswith(
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}"'
    )
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in body["message"]
    assert "note" in body["message"] and "BACKWARD_TRANSITIVE" in body["message"]
    assert api("GET", f"/subjects/{subject}/versions")[1] == [1]  # nothing registered


def test_compatibility_endpoints_answer_verbosely(api, subject):
    # A subject nobody registered yet accepts anything, as Confluent's does.
    assert api("POST", f"/compatibility/subjects/{subject}/versions", {"schema": V1})[1] == {
        "is_compatible": True
    }
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    path = f"/compatibility/subjects/{subject}/versions"
    assert api("POST", f"{path}?verbose=true", {"schema": V2})[1] == {
        "is_compatible": True,
        "messages": [],
    }
    _, verdict = api("POST", f"{path}/latest?verbose=true", {"schema": NO_DEFAULT})
    assert verdict["is_compatible"] is False
    assert "note" in verdict["messages"][0]
    assert api("POST", f"{path}/1", {"schema": NO_DEFAULT})[1] == {"is_compatible": False}


def test_config_levels_global_and_per_subject(api, subject):
    assert api("GET", "/config")[1] == {"compatibilityLevel": "BACKWARD_TRANSITIVE"}
    assert api("GET", f"/config/{subject}?defaultToGlobal=true")[1] == {
        "compatibilityLevel": "BACKWARD_TRANSITIVE"
    }
    for level in ("NONE", "BACKWARD", "FORWARD", "FULL", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE"):
        assert api("PUT", f"/config/{subject}", {"compatibility": level.lower()}) == (
            200,
            {"compatibility": level},
        )
        assert api("GET", f"/config/{subject}")[1] == {"compatibilityLevel": level}
    # With NONE anything goes; the subject's level decides, not the global one.
    api("PUT", f"/config/{subject}", {"compatibility": "NONE"})
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    assert api("POST", f"/subjects/{subject}/versions", {"schema": NO_DEFAULT})[0] == 200
    assert api("DELETE", f"/config/{subject}")[1] == {"compatibilityLevel": "NONE"}
    assert api("GET", f"/config/{subject}")[1]["error_code"] == 40408


def test_soft_and_permanent_deletes(api, subject):
    for schema in (V1, V2):
        api("POST", f"/subjects/{subject}/versions", {"schema": schema})
    assert api("DELETE", f"/subjects/{subject}/versions/1?permanent=true")[1]["error_code"] == 40407
    assert api("DELETE", f"/subjects/{subject}/versions/1") == (200, 1)
    assert api("GET", f"/subjects/{subject}/versions")[1] == [2]
    assert api("DELETE", f"/subjects/{subject}/versions/1")[1]["error_code"] == 40406
    assert api("DELETE", f"/subjects/{subject}?permanent=true")[1]["error_code"] == 40405
    assert api("DELETE", f"/subjects/{subject}") == (200, [2])
    assert subject not in api("GET", "/subjects")[1]
    assert subject in api("GET", "/subjects?deleted=true")[1]
    assert api("GET", f"/subjects/{subject}/versions")[1]["error_code"] == 40401
    # Versions are never reused: a new registration after deletion is version 3.
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    assert api("GET", f"/subjects/{subject}/versions")[1] == [3]
    api("DELETE", f"/subjects/{subject}")
    assert api("DELETE", f"/subjects/{subject}?permanent=true") == (200, [1, 2, 3])
    assert subject not in api("GET", "/subjects?deleted=true")[1]


def test_config_and_deletions_survive_a_restart(api, subject, stack):
    api("POST", f"/subjects/{subject}/versions", {"schema": V1})
    api("POST", f"/subjects/{subject}/versions", {"schema": V2})
    api("DELETE", f"/subjects/{subject}/versions/1")
    api("PUT", f"/config/{subject}", {"compatibility": "FULL"})
    local.down(stack, lambda _: None, only=["registry"])
    local.up(stack, lambda _: None, only=["registry"])
    assert api("GET", f"/config/{subject}")[1] == {"compatibilityLevel": "FULL"}
    assert api("GET", f"/subjects/{subject}/versions")[1] == [2]
    # FULL was replayed too: a field without a default cannot be added (backward) ...
    assert api("POST", f"/subjects/{subject}/versions", {"schema": NO_DEFAULT})[0] == 409
    # ... and the soft-deleted V1, registered again, is a new version: numbers are not reused.
    assert api("POST", f"/subjects/{subject}/versions", {"schema": V1})[0] == 200
    assert api("GET", f"/subjects/{subject}/versions")[1] == [2, 3]
