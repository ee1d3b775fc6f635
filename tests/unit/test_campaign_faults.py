"""The fault campaign's pure parts: comparing lists and drawing kill moments."""

import random

from accord.campaign.faults import compare, kill_delays

REFERENCE = {
    "city-of-edinburgh": {"k1": {"needs": ["FOOD"]}, "k2": {"needs": ["MEDICINE"]}},
    "community-food-network": {"k1": {"needs": ["FOOD"]}},
}


def test_equal_lists_compare_equal():
    result = compare(REFERENCE, {r: dict(v) for r, v in REFERENCE.items()})
    assert result.equal
    assert (result.recipients, result.shared) == (2, 3)


def test_missing_extra_and_differing_cases_are_counted_per_recipient():
    faulty = {
        "city-of-edinburgh": {"k1": {"needs": []}, "k3": {"needs": ["FOOD"]}},
        "east-lothian": {"k9": {"needs": ["FOOD"]}},
    }
    result = compare(REFERENCE, faulty)
    assert (result.missing, result.extra, result.differing) == (2, 2, 1)
    assert not result.equal
    assert "city-of-edinburgh: missing k2" in result.examples


def test_kill_moments_are_seeded_and_leave_work_for_every_kill():
    first = kill_delays(random.Random(7), 3, work_s=90.0)
    assert first == kill_delays(random.Random(7), 3, work_s=90.0)
    assert first != kill_delays(random.Random(8), 3, work_s=90.0)
    assert len(first) == 3 and all(4.5 <= d <= 27.0 for d in first)
    assert sum(first) < 90.0


def test_fault_plans_are_seeded_scaled_and_refuse_unknown_faults():
    import random

    import pytest

    from accord.campaign import FAULTS
    from accord.campaign.faults import plan_faults

    one = plan_faults(random.Random(3), 2, 60.0, FAULTS, scale=0.5)
    again = plan_faults(random.Random(3), 2, 60.0, FAULTS, scale=0.5)
    assert one == again and [kind for kind, _ in one.others] == list(FAULTS)
    assert all(3.0 <= delay <= 18.0 for _, delay in one.others)
    assert (one.opa_down_s, one.registry_down_s, one.lag_s) == (15.0, 10.0, 60.0)
    with pytest.raises(ValueError, match="unknown faults"):
        plan_faults(random.Random(3), 1, 60.0, ("disk",))
