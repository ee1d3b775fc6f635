"""Access that binds, tried for real on the secure broker: the access matrix (every
principal x topic family x operation, with real credentials and with none), and an
organisation's revocation reaching a client that is already connected."""

from __future__ import annotations

import sys
import time

import pytest
from confluent_kafka import KafkaException, Producer

from accord.access import matrix, partners, provision
from accord.core.kafka import connection
from accord.core.topics import Topics

pytestmark = pytest.mark.integration

FOOD = "community-food-network"


def test_every_cell_of_the_access_matrix_behaves_as_promised(stack):
    result = matrix.run(stack)
    print(
        f"\naccess matrix: {len(result.cells)} cells, {result.as_promised} as promised "
        f"({result.seconds:.0f}s)",
        file=sys.stderr,
    )
    routes_ok = sum(1 for r in result.routes if r.ok)
    print(f"http routes: {len(result.routes)} calls, {routes_ok} as promised", file=sys.stderr)
    assert len(result.cells) == 11 * 12 * 7  # principals x families x operations
    assert result.failures() == []
    assert len(result.routes) == 3 * 7 + 6 * 5  # OPA: tokens x calls; registry: callers x calls
    assert result.route_failures() == []
    route = {(r.surface, r.caller, r.route): r for r in result.routes}
    assert route[("opa", "hub token", "PUT /v1/policies/x")].status == 401
    assert route[("opa", "no token", "POST /v1/data/accord/sharing")].status == 401
    assert route[("registry", matrix.NOBODY, "PUT /config")].status == 401
    assert route[("registry", matrix.BOARD, "register partner.<council>")].status == 403
    cell = {(c.principal, c.family, c.operation): c for c in result.cells}
    # The probes the issue named, each refused by the broker itself.
    assert not cell[(matrix.NOBODY, "partner.<board>", "consume")].allowed
    assert not cell[(matrix.BOARD, "partner.<council>", "produce")].allowed
    assert not cell[(matrix.COUNCIL, "share.<other council>", "consume")].allowed
    assert not cell[("accord-worker", "audit", "consume")].allowed
    assert not cell[("accord-worker", "share.<council>", "create")].allowed
    # The audit is append-only: only the worker writes it; nobody but the administrator
    # may shorten its retention, delete records from it or delete it.
    for principal in ("accord-worker", "accord-audit", matrix.BOARD, matrix.COUNCIL):
        for operation in ("alter-configs", "delete-records", "delete"):
            assert not cell[(principal, "audit", operation)].allowed, (principal, operation)
    writers = {
        c.principal
        for c in result.cells
        if c.family == "audit" and c.operation == "produce" and c.allowed
    }
    assert writers == {"accord-worker", "admin"}
    assert cell[("admin", "audit", "alter-configs")].allowed
    assert cell[("admin", "audit", "delete-records")].allowed
    # ...while what each may do works.
    assert cell[(matrix.COUNCIL, "share.<council>", "consume")].allowed
    assert cell[(matrix.BOARD, "partner.<board>", "produce")].allowed
    assert cell[("accord-audit", "audit", "consume")].allowed


def test_a_revoked_partner_is_refused_within_seconds_even_while_connected(settings):
    topic = Topics(settings).partner(FOOD, "support-outcome")
    held = connection(settings, FOOD)
    producer = Producer({**held.confluent(), "acks": "all"})

    def send() -> str | None:
        outcome: list = []
        producer.produce(topic, value=b"probe", on_delivery=lambda e, _m: outcome.append(e))
        producer.flush(10)
        error = outcome[0] if outcome else "no delivery report"
        return None if error is None else str(error)

    assert send() is None  # connected, signed in, allowed
    try:
        revoked_at = time.monotonic()
        partners.revoke_partner(settings, FOOD)
        error = send()
        while error is None and time.monotonic() - revoked_at < 30:
            time.sleep(0.1)
            error = send()
        refused_after = time.monotonic() - revoked_at
        print(
            f"\nrevocation: a connected producer refused after {refused_after:.2f}s",
            file=sys.stderr,
        )
        assert error is not None and "AUTHORIZATION" in error.upper()
        assert refused_after < 5
        with pytest.raises(KafkaException):  # and it cannot sign in again
            Producer(held.confluent()).list_topics(timeout=5)
    finally:
        partners.add_partner(settings, FOOD)
        provision.apply(settings)
    # Restored: a new secret, the same access.
    fresh = Producer({**connection(settings, FOOD).confluent(), "acks": "all"})
    outcome: list = []
    fresh.produce(topic, value=b"probe", on_delivery=lambda e, _m: outcome.append(e))
    fresh.flush(10)
    assert outcome == [None]
