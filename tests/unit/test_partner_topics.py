"""Which partner topics a worker reads: registered organisations' only."""

import pytest

from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.worker.topology import sort_partner_topics

TOPICS = Topics(Settings(topic_prefix="t1."))
REGISTERED = {"nhs-lothian", "city-of-edinburgh"}


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("t1.partner.nhs-lothian.shielding-list.v1", True),
        ("t1.partner.nhs-lothian.shielding-list.v2", True),
        ("t1.partner.city-of-edinburgh.support-request.v1", True),
        ("t1.partner.nhs-lothain.shielding-list.v1", False),  # a mistyped organisation
        ("t1.partner.city-of-edinburgh-x.support-request.v1", False),
        ("t1.partner.community-food-network.support-outcome.v1", False),  # not registered
        ("t1.partner.nhs-lothian.v1", False),  # not a partner topic name
    ],
)
def test_only_registered_organisations_topics_are_read(name, read):
    known, unknown = sort_partner_topics({name}, REGISTERED, TOPICS)
    assert (name in known, name in unknown) == (read, not read)


def test_nothing_is_read_when_no_one_is_registered():
    names = {"t1.partner.nhs-lothian.shielding-list.v1"}
    assert sort_partner_topics(names, set(), TOPICS) == (set(), names)
