"""How a partner's contract may evolve, decided by Apache Avro's checker in the real registry.

Each case registers the real ShieldingListEntry as version 1 of a fresh subject, sets the
subject's level, and tries to register a changed version. The default for partner subjects
is BACKWARD_TRANSITIVE: the new schema must read everything written with every older one.
Under it, dropping a field is allowed (new readers ignore it); to refuse that as well, a
subject needs FORWARD or FULL, which make old readers' needs count too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from accord.core.settings import Settings

from .conftest import admin_http

pytestmark = pytest.mark.integration


def changed(base: str, change: Callable[[dict], None]) -> str:
    schema = json.loads(base)
    change(schema)
    return json.dumps(schema)


def field_named(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def add_optional_nhs_number(s: dict) -> None:
    s["fields"].append(
        {
            "name": "nhs_number",
            "type": ["null", "string"],
            "default": None,
            "doc": "NHS number (England and Wales), if known.",
        }
    )


def add_required_nhs_number(s: dict) -> None:
    s["fields"].append({"name": "nhs_number", "type": "string", "doc": "NHS number."})


def remove_health_board(s: dict) -> None:
    s["fields"].remove(field_named(s, "health_board"))


def postcode_to_int(s: dict) -> None:
    field_named(s, "postcode")["type"] = "int"


def add_risk_group_symbol(s: dict) -> None:
    field_named(s, "clinical_risk_group")["type"]["symbols"].insert(0, "LONG_COVID")


@pytest.fixture
def subject(stack: Settings) -> Iterator[str]:
    url = stack.schema_registry_url
    name = f"t{uuid.uuid4().hex[:10]}.partner.nhs-lothian.shielding-list.v1-value"
    yield name
    admin_http().delete(f"{url}/config/{name}", timeout=10)
    admin_http().delete(f"{url}/subjects/{name}", timeout=10)
    admin_http().delete(f"{url}/subjects/{name}?permanent=true", timeout=10)


@pytest.mark.parametrize(
    ("level", "change", "refused_because"),
    [
        ("BACKWARD_TRANSITIVE", add_optional_nhs_number, None),
        ("FULL_TRANSITIVE", add_optional_nhs_number, None),
        ("BACKWARD_TRANSITIVE", add_risk_group_symbol, None),
        (
            "BACKWARD_TRANSITIVE",
            add_required_nhs_number,
            ["READER_FIELD_MISSING_DEFAULT_VALUE", "nhs_number"],
        ),
        ("BACKWARD_TRANSITIVE", remove_health_board, None),
        (
            "FULL_TRANSITIVE",
            remove_health_board,
            ["READER_FIELD_MISSING_DEFAULT_VALUE", "health_board", "FORWARD"],
        ),
        (
            "FORWARD_TRANSITIVE",
            remove_health_board,
            ["READER_FIELD_MISSING_DEFAULT_VALUE", "health_board"],
        ),
        (
            "BACKWARD_TRANSITIVE",
            postcode_to_int,
            [
                "TYPE_MISMATCH",
                "postcode",
                "reader type: int not compatible with writer type: string",
            ],
        ),
        ("NONE", postcode_to_int, None),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_evolution_is_decided_by_avros_checker(stack, subject, level, change, refused_because):
    url = stack.schema_registry_url
    base = (stack.schemas_dir / "ShieldingListEntry.avsc").read_text()
    assert (
        admin_http()
        .post(f"{url}/subjects/{subject}/versions", json={"schema": base}, timeout=30)
        .ok
    )
    admin_http().put(
        f"{url}/config/{subject}", json={"compatibility": level}, timeout=30
    ).raise_for_status()

    response = admin_http().post(
        f"{url}/subjects/{subject}/versions", json={"schema": changed(base, change)}, timeout=30
    )
    versions = admin_http().get(f"{url}/subjects/{subject}/versions", timeout=10).json()
    if refused_because is None:
        assert response.status_code == 200, response.text
        assert versions == [1, 2]
        return
    assert response.status_code == 409 and response.json()["error_code"] == 409
    message = response.json()["message"]
    assert message.startswith("Schema being registered is incompatible with an earlier schema")
    for words in refused_because:
        assert words in message
    assert versions == [1]


def test_transitive_means_every_old_version_not_just_the_latest(stack, subject):
    """v2 drops health_board; v3 brings it back as an int with a default. Against v2 alone
    that is fine, but data written with v1 holds a string there."""
    url = stack.schema_registry_url
    base = (stack.schemas_dir / "ShieldingListEntry.avsc").read_text()
    v2 = changed(base, remove_health_board)

    def health_board_as_int(s: dict) -> None:
        remove_health_board(s)
        s["fields"].append({"name": "health_board", "type": "int", "default": 0, "doc": "d"})

    v3 = changed(base, health_board_as_int)
    for schema in (base, v2):
        assert (
            admin_http()
            .post(f"{url}/subjects/{subject}/versions", json={"schema": schema}, timeout=30)
            .ok
        )
    check = f"{url}/compatibility/subjects/{subject}/versions"
    latest_only = admin_http().post(f"{check}/latest", json={"schema": v3}, timeout=30).json()
    assert latest_only == {"is_compatible": True}
    every = admin_http().post(f"{check}?verbose=true", json={"schema": v3}, timeout=30).json()
    assert every["is_compatible"] is False
    (problem,) = every["messages"]
    assert "TYPE_MISMATCH" in problem and "health_board" in problem and "version 1" in problem
    refused = admin_http().post(
        f"{url}/subjects/{subject}/versions", json={"schema": v3}, timeout=30
    )
    assert refused.status_code == 409
