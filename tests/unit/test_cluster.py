"""A local cluster of several Kafka nodes, and the one replication rule, without starting
anything (tests/integration/test_broker_failure.py runs one)."""

from pathlib import Path

import pytest
from pydantic import SecretStr

from accord.core.credentials import Credential
from accord.core.errors import StackError
from accord.core.kafka import replicated, replication
from accord.core.settings import Settings
from accord.stack import local
from accord.stack.tls import TlsFiles


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


@pytest.mark.parametrize(
    ("brokers", "wanted", "expected"),
    [(1, 0, (1, 1)), (2, 0, (2, 1)), (3, 0, (3, 2)), (5, 0, (3, 2)), (5, 5, (5, 2))],
)
def test_replicas_are_min_of_three_and_brokers_with_two_in_sync_from_three(
    brokers, wanted, expected
):
    assert replication(brokers, wanted) == expected


def test_min_insync_is_added_unless_the_topic_sets_its_own():
    assert replicated({"cleanup.policy": "compact"}, 2) == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
    }
    assert replicated({"min.insync.replicas": "3"}, 2) == {"min.insync.replicas": "3"}
    assert replicated(None, 1) == {}


def test_nodes_take_ports_a_step_apart_and_the_bootstrap_lists_them_all(tmp_path):
    settings = Settings(
        state_dir=tmp_path, kafka_port=35092, kafka_controller_port=35093, kafka_brokers=3
    )
    nodes = local.kafka_nodes(settings)
    assert [(n.name, n.port, n.controller_port) for n in nodes] == [
        ("kafka", 35092, 35093),
        ("kafka-2", 35102, 35103),
        ("kafka-3", 35112, 35113),
    ]
    assert nodes[0].home == tmp_path / "kafka"  # the single node's layout is kept
    assert settings.bootstrap_servers == "127.0.0.1:35092,127.0.0.1:35102,127.0.0.1:35112"
    assert [c.name for c in local.components(settings)][-3:] == ["opa", "registry", "console"]


def test_settings_follow_the_node_count_the_stack_was_formatted_with(tmp_path):
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "nodes").write_text("3\n")
    settings = Settings(state_dir=tmp_path, kafka_port=35092)
    assert settings.kafka_brokers == 3
    assert settings.bootstrap_servers.count(",") == 2
    assert Settings(state_dir=tmp_path, kafka_brokers=1).kafka_brokers == 1


def test_a_stack_formatted_with_three_nodes_refuses_one(tmp_path):
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "nodes").write_text("3\n")
    with pytest.raises(StackError, match=r"formatted with 3 node\(s\), not 1.*--brokers 3"):
        local.check_node_count(Settings(state_dir=tmp_path, kafka_brokers=1))


def test_each_node_is_a_voter_of_a_static_quorum_with_replicated_internal_topics(tmp_path):
    settings = Settings(state_dir=tmp_path, kafka_port=35092, kafka_controller_port=35093)
    admin = Credential("admin", SecretStr("s" * 40))
    tls = TlsFiles(*(Path(f"/x/{n}") for n in range(len(TlsFiles.__dataclass_fields__))))
    nodes = local.kafka_nodes(settings, 3)
    listeners = [
        local.Listener("SASL_SSL", "127.0.0.1:35102", "127.0.0.1:35102"),
        local.Listener(local.CONTROLLER_LISTENER, "127.0.0.1:35103"),
    ]
    three = props(
        local.kafka_properties(
            settings,
            admin,
            tls,
            listeners=listeners,
            controller="127.0.0.1:35103",
            data_dir=nodes[1].data_dir,
            written_by="test",
            node_id=2,
            voters=[n.voter for n in nodes],
        )
    )
    assert three["node.id"] == "2"
    assert three["controller.quorum.voters"] == (
        "1@127.0.0.1:35093,2@127.0.0.1:35103,3@127.0.0.1:35113"
    )
    assert "controller.quorum.bootstrap.servers" not in three
    for key in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert three[f"{key}.replication.factor"] == "3"
    assert three["transaction.state.log.min.isr"] == "2"
    assert three["min.insync.replicas"] == "2"
    one = props(
        local.kafka_properties(
            settings,
            admin,
            tls,
            listeners=listeners,
            controller="127.0.0.1:35103",
            data_dir=nodes[0].data_dir,
            written_by="test",
        )
    )
    assert one["node.id"] == "1" and one["offsets.topic.replication.factor"] == "1"
    assert one["controller.quorum.bootstrap.servers"] == "127.0.0.1:35103"


def metadata_answer(*topics):
    """A broker's Metadata response, as kafka-python decodes it."""
    from kafka.protocol.metadata import MetadataResponse

    topic, partition = (
        MetadataResponse.MetadataResponseTopic,
        MetadataResponse.MetadataResponseTopic.MetadataResponsePartition,
    )
    return MetadataResponse(
        brokers=[],
        topics=[
            topic(
                name=name,
                error_code=error,
                partitions=[
                    partition(partition_index=i, error_code=0, leader_id=leader)
                    for i, leader in enumerate(leaders)
                ],
            )
            for name, error, leaders in topics
        ],
    )


def test_a_topic_is_ready_on_a_broker_only_shown_without_error_and_with_every_leader():
    from accord.core.kafka import topics_not_ready

    answer = metadata_answer(
        ("ready", 0, [1, 2, 3]),
        ("no-leader", 0, [1, -1]),
        ("refused", 29, []),  # TOPIC_AUTHORIZATION_FAILED
        ("no-partitions", 0, []),
    )
    wanted = ["ready", "no-leader", "refused", "no-partitions", "not-shown"]
    assert topics_not_ready(answer, wanted) == sorted(set(wanted) - {"ready"})
    assert topics_not_ready(answer, ["ready"]) == []


def test_described_grants_are_named_as_the_broker_grants_are():
    from kafka.protocol.admin import DescribeAclsResponse

    from accord.access import acls
    from accord.access.provision import described_grants
    from accord.core.errors import InfrastructureError

    resource = DescribeAclsResponse.DescribeAclsResource
    acl = resource.AclDescription
    answer = DescribeAclsResponse(
        error_code=0,
        error_message=None,
        resources=[
            resource(
                resource_type=2,  # TOPIC
                resource_name="partner.nhs-fife.",
                pattern_type=4,  # PREFIXED
                acls=[
                    acl(principal="User:nhs-fife", host="*", operation=4, permission_type=3),
                    acl(principal="User:nhs-fife", host="*", operation=3, permission_type=2),
                ],
            ),
            resource(
                resource_type=4,  # the cluster
                resource_name="kafka-cluster",
                pattern_type=3,  # LITERAL
                acls=[acl(principal="User:nhs-fife", host="*", operation=12, permission_type=3)],
            ),
        ],
    )
    assert described_grants(answer) == {  # the DENY (permission 2) is no grant
        acls.Grant("nhs-fife", "TOPIC", "partner.nhs-fife.", "PREFIXED", "WRITE"),
        acls.Grant("nhs-fife", "BROKER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE"),
    }
    refused = DescribeAclsResponse(error_code=31, error_message="not authorised", resources=[])
    with pytest.raises(InfrastructureError, match="not authorised"):
        described_grants(refused)
