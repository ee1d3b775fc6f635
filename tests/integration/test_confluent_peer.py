"""A real peer: the official confluent-kafka client against our registry, broker and worker.

A partner with a stock Kafka stack uses confluent-kafka's SchemaRegistryClient and Avro
serializer against our registry; our worker decodes what it produced and shares it; the
same client's Avro deserializer decodes the SupportCase our hub wrote. Nothing of ours is
on the partner's side of the wire.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from accord.core.credentials import ADMIN, credential_file, read_credential_file
from accord.core.kafka import connection
from accord.core.pseudonym import person_key
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.synthetic.people import chi_for

from .conftest import wait_for

pytestmark = pytest.mark.integration
LOTHIAN, EDINBURGH = "nhs-lothian", "city-of-edinburgh"


def entry(serial: int) -> dict:
    """A ShieldingListEntry as confluent's serializer wants it: logical types as objects."""
    dob = date(1948, 3, 1 + serial % 28)
    chi = None
    while chi is None:
        chi = chi_for(dob, serial)
        serial += 1
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime(2020, 6, 1, 9, 30, tzinfo=UTC),
        "source_org": LOTHIAN,
        "schema_version": 1,
        "chi_number": chi,
        "given_name": "Morag",
        "family_name": f"Peer{serial}",
        "date_of_birth": dob,
        "address_line1": f"{serial} Leith Walk",
        "address_line2": None,
        "town": "Edinburgh",
        "postcode": "EH6 8AA",
        "council_area": "City of Edinburgh",
        "health_board": "NHS Lothian",
        "clinical_risk_group": "SEVERE_RESPIRATORY",
        "shielding_status": "SHIELDING",
        "contact_phone": "+447700900456",
        "effective_date": date(2020, 6, 1),
    }


def consume_all(settings, org: str, topic: str, expected: int) -> list:
    """The recipient's own consumer: its credential, a group under its own prefix."""
    consumer = Consumer(
        {
            **connection(settings, org).confluent(),
            "group.id": f"{settings.topic_prefix}{org}.peer-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                messages.append(message)
            if len(messages) >= expected:
                break
    finally:
        consumer.close()
    return messages


def confluent_registry(settings: Settings, principal: str) -> SchemaRegistryClient:
    """The stock client as a partner configures it: basic auth and the hub's CA."""
    credential = read_credential_file(credential_file(settings, principal))
    return SchemaRegistryClient(
        {
            "url": settings.schema_registry_url,
            "basic.auth.user.info": f"{principal}:{credential.secret.get_secret_value()}",
            "ssl.ca.location": str(settings.trusted_ca),
        }
    )


def test_confluent_client_produces_what_our_worker_shares_and_decodes_what_our_hub_wrote(
    settings, serde, worker
):
    topics = Topics(settings)
    partner = topics.partner(LOTHIAN, "shielding-list")
    share = topics.share(EDINBURGH)
    client = confluent_registry(settings, LOTHIAN)

    # The partner registers its contract with the stock client...
    schema_text = (settings.schemas_dir / "ShieldingListEntry.avsc").read_text()
    schema_id = client.register_schema(Topics.subject(partner), Schema(schema_text, "AVRO"))
    assert client.get_latest_version(Topics.subject(partner)).schema_id == schema_id

    # ...and produces with the stock serializer (TopicNameStrategy: "<topic>-value").
    serializer = AvroSerializer(client, schema_text)
    record = entry(11)
    value = serializer(record, SerializationContext(partner, MessageField.VALUE))
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == schema_id
    # The partner signs in as itself: SASL_SSL, SCRAM, the hub's CA.
    producer = Producer({**connection(settings, LOTHIAN).confluent(), "acks": "all"})
    producer.produce(partner, key=record["event_id"].encode(), value=value)
    assert producer.flush(30) == 0

    # Our worker decodes it, asks OPA, and shares it with the council.
    worker()
    key = person_key(settings.require_pseudonym_key(), record["chi_number"]).encode()
    ours = wait_for(settings, serde, share, lambda r: any(k == key for k, _ in r), timeout_s=90)
    case = next(c for k, c in ours if k == key)

    # The stock deserializer reads our hub's SupportCase with the schema our registry holds.
    (message,) = [m for m in consume_all(settings, EDINBURGH, share, 1) if m.key() == key]
    deserializer = AvroDeserializer(confluent_registry(settings, EDINBURGH))
    theirs = deserializer(message.value(), SerializationContext(share, MessageField.VALUE))
    assert theirs == case
    assert theirs["case_key"] == key.decode() and theirs["recipient"] == EDINBURGH
    assert (theirs["given_name"], theirs["postcode"]) == ("Morag", "EH6 8AA")
    assert record["chi_number"] not in repr(theirs)  # minimised: no identifier leaves
    writer = confluent_registry(settings, EDINBURGH).get_schema(
        int.from_bytes(message.value()[1:5], "big")
    )
    assert '"SupportCase"' in writer.schema_str


def test_confluent_registry_client_calls_behave_as_against_confluent(stack):
    client = confluent_registry(stack, ADMIN)
    subject = f"t{uuid.uuid4().hex[:10]}.peer-value"
    base = (stack.schemas_dir / "ShieldingListEntry.avsc").read_text()
    try:
        first = client.register_schema(subject, Schema(base, "AVRO"))
        assert client.get_versions(subject) == [1]
        found = client.lookup_schema(subject, Schema(base, "AVRO"))
        assert (found.schema_id, found.version) == (first, 1)
        assert subject in client.get_subjects()
        assert "AVRO" in client.get_schema_types()

        # Partner subjects default to BACKWARD_TRANSITIVE; a subject may be set otherwise.
        assert client.get_compatibility() == "BACKWARD_TRANSITIVE"
        client.set_compatibility(subject, "full_transitive")
        assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
        assert client.delete_config(subject).compatibility_level == "FULL_TRANSITIVE"
        with pytest.raises(SchemaRegistryError) as missing_config:
            client.get_compatibility(subject)
        assert missing_config.value.error_code == 40408

        incompatible = base.replace(
            '"name": "postcode", "type": "string"', '"name": "postcode", "type": "int"'
        )
        assert incompatible != base
        assert client.test_compatibility(subject, Schema(incompatible, "AVRO")) is False
        assert client.test_compatibility_all_versions(subject, Schema(base, "AVRO")) is True
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(incompatible, "AVRO"))
        assert refused.value.http_status_code == 409 and refused.value.error_code == 409
        assert "incompatible with an earlier schema" in refused.value.error_message
        assert "postcode" in refused.value.error_message

        with pytest.raises(SchemaRegistryError) as unknown:
            client.get_latest_version(f"nope-{subject}")
        assert unknown.value.error_code == 40401
    finally:
        client.delete_subject(subject)
        client.delete_subject(subject, permanent=True)
