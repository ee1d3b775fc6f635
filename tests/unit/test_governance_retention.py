"""Share topics' retention from the agreements, as pure functions (no broker)."""

from __future__ import annotations

import pytest

from accord.core.settings import Settings, get_settings
from accord.core.topics import Topics
from accord.governance.retention import check, differences
from accord.pipeline.retention import (
    DAY_MS,
    Retention,
    agreements_from_dir,
    recipient_retention,
    share_recipient,
    share_topic_configs,
)


def agreement(days, *orgs, status="active"):
    return {
        "status": status,
        "retention": {"days": days, "then": "delete"},
        "recipients": [{"org": org, "kind": "council"} for org in orgs],
    }


def test_a_recipient_under_several_agreements_gets_the_shortest_period():
    agreements = {
        "DSA-001": agreement(365, "fife", "angus"),
        "DSA-002": agreement(90, "fife"),
        "DSA-003": agreement(30, "angus", status="suspended"),  # any status counts
    }
    assert recipient_retention(agreements) == {
        "fife": Retention(90, "DSA-002"),
        "angus": Retention(30, "DSA-003"),
    }


def test_equal_periods_cite_the_lowest_agreement_id():
    agreements = {"DSA-009": agreement(90, "fife"), "DSA-004": agreement(90, "fife")}
    assert recipient_retention(agreements) == {"fife": Retention(90, "DSA-004")}


@pytest.mark.parametrize(
    "broken",
    [
        {"retention": {"days": "90"}, "recipients": [{"org": "fife"}]},
        {"retention": {"days": 0}, "recipients": [{"org": "fife"}]},
        {"retention": {"days": True}, "recipients": [{"org": "fife"}]},
        {"recipients": [{"org": "fife"}]},
        {"retention": {"days": 30}, "recipients": ["fife", {"kind": "council"}]},
        "not an agreement",
    ],
)
def test_agreements_without_a_readable_period_or_recipient_set_nothing(broken):
    assert recipient_retention({"DSA-001": agreement(365, "fife"), "DSA-002": broken}) == {
        "fife": Retention(365, "DSA-001")
    }


def test_the_broker_configuration_of_a_period():
    assert Retention(90, "DSA-015").config() == {
        "cleanup.policy": "compact,delete",
        "min.compaction.lag.ms": "0",
        "retention.ms": str(90 * DAY_MS),
        "segment.ms": str(DAY_MS),  # deletion is per segment: roll daily
    }
    assert Retention(1, "DSA-1").config()["segment.ms"] == str(DAY_MS)
    assert Retention(365, "DSA-1").ms == 31_536_000_000


@pytest.mark.parametrize(
    ("broker", "disagreeing"),
    [
        ({"cleanup.policy": "compact,delete", "retention.ms": str(90 * DAY_MS)}, []),
        ({"cleanup.policy": "delete, compact", "retention.ms": str(90 * DAY_MS)}, []),
        ({"cleanup.policy": "compact", "retention.ms": str(90 * DAY_MS)}, ["cleanup.policy"]),
        ({"cleanup.policy": "compact,delete", "retention.ms": "604800000"}, ["retention.ms"]),
        ({"cleanup.policy": "compact", "retention.ms": "-1"}, ["cleanup.policy", "retention.ms"]),
        ({}, ["cleanup.policy", "retention.ms"]),
    ],
)
def test_differences_table(broker, disagreeing):
    assert sorted(differences(broker, Retention(90, "DSA-015"))) == disagreeing


def test_check_reports_mismatches_uncovered_topics_and_ignores_others():
    topics = Topics(Settings(topic_prefix="t1."))
    agreements = {"DSA-010": agreement(365, "city-of-edinburgh"), "DSA-015": agreement(90, "cfn")}
    right = {"cleanup.policy": "compact,delete", "retention.ms": str(365 * DAY_MS)}
    results = check(
        topics,
        agreements,
        {
            "t1.share.city-of-edinburgh.support-list": right,
            "t1.share.cfn.support-list": {"cleanup.policy": "compact", "retention.ms": "604800000"},
            "t1.share.nobody.support-list": {"cleanup.policy": "compact"},
            "t2.share.cfn.support-list": {},  # another deployment's
            "t1.hub.cases": {},  # not a share topic
        },
    )
    assert [(r.recipient, r.ok, r.uncovered) for r in results] == [
        ("cfn", False, False),
        ("city-of-edinburgh", True, False),
        ("nobody", False, True),
    ]
    line = results[0].line()
    assert line == (
        "t1.share.cfn.support-list  broker: cleanup.policy=compact retention.ms=604800000  "
        "agreement: cleanup.policy=compact,delete retention.ms=7776000000 (90 days)  DSA-015"
    )
    assert "no agreement names nobody" in results[2].line()


def test_share_topics_are_created_for_every_recipient_with_its_period():
    topics = Topics(Settings(topic_prefix=""))
    configs = share_topic_configs(topics, {"DSA-1": agreement(30, "a", "b")})
    assert sorted(configs) == ["share.a.support-list", "share.b.support-list"]
    assert configs["share.a.support-list"]["retention.ms"] == str(30 * DAY_MS)


@pytest.mark.parametrize(
    ("prefix", "topic", "recipient"),
    [
        ("", "share.fife.support-list", "fife"),
        ("t1.", "t1.share.community-food-network.support-list", "community-food-network"),
        ("", "t1.share.fife.support-list", None),
        ("t1.", "share.fife.support-list", None),
        ("", "share.fife.other-list", None),
        ("", "share.Fife.support-list", None),
    ],
)
def test_share_recipient_table(prefix, topic, recipient):
    assert share_recipient(Topics(Settings(topic_prefix=prefix)), topic) == recipient


def test_the_shipped_agreements_give_the_food_partner_90_days_and_councils_365():
    retention = recipient_retention(agreements_from_dir(get_settings().policies_dir))
    assert retention["community-food-network"] == Retention(90, "DSA-015")
    assert retention["city-of-edinburgh"] == Retention(365, "DSA-010")
    assert len(retention) == 33  # 32 councils and the food partner
