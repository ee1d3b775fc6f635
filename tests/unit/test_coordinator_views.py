import csv

import pytest

from accord.coordinator import views


@pytest.mark.parametrize(
    ("council", "recipient"),
    [
        ("City of Edinburgh", "city-of-edinburgh"),
        ("fife", "fife"),
        ("na-h-eileanan-siar", "na-h-eileanan-siar"),
    ],
)
def test_councils_are_found_by_name_or_id(council, recipient):
    assert views.recipient_for(council) == recipient


def test_an_unknown_council_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown council 'Atlantis'"):
        views.recipient_for("Atlantis")


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+44 7700", "'+44 7700"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("Ann", "Ann"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised(text, safe):
    assert views.neutralise(text) == safe


def test_export_orders_by_priority_and_neutralises_every_cell(tmp_path):
    cases = {
        "k1": {"case_key": "k1", "priority": "ROUTINE", "needs": ["FOOD"], "given_name": "=cmd()"},
        "k2": {"case_key": "k2", "priority": "URGENT", "needs": ["MEDICINE"], "given_name": "Ann"},
    }
    path = tmp_path / "list.csv"
    views.write_csv(views.ordered(cases), path)
    rows = list(csv.DictReader(path.open()))
    assert [r["case_key"] for r in rows] == ["k2", "k1"]
    assert rows[1]["given_name"] == "'=cmd()" and rows[0]["needs"] == "medicine"


KEY = "0081d31422" + "f" * 54


def test_a_case_reference_is_short_stable_unambiguous_and_read_back_leniently():
    reference = views.case_reference(KEY)
    assert reference == views.case_reference(KEY)
    assert len(reference) == 12 and reference.count("-") == 2
    assert not set(reference) & set("ILOU")
    assert views.case_reference("1" + KEY[1:]) != reference
    typed = reference.replace("-", " ").lower().replace("0", "o").replace("1", "l")
    assert views.normalise_reference(typed) == reference


@pytest.mark.parametrize("text", ["", "ABC", "7KQM-2XPA-9R-X", "UUUU-UUUU-UU", "7KQM 2XPA 9!"])
def test_a_reference_that_cannot_be_one_is_refused(text):
    with pytest.raises(ValueError, match="not a case reference"):
        views.normalise_reference(text)


def test_a_case_is_found_by_reference_and_an_ambiguous_or_unknown_one_refused():
    other = "ffff" + "0" * 60
    view = {KEY: {"case_key": KEY}, other: {"case_key": other}}
    assert views.find_case(view, views.case_reference(KEY))["case_key"] == KEY
    with pytest.raises(LookupError, match="no case"):
        views.find_case(view, "7KQM-2XPA-9R")
    twin = KEY[:13] + "0" * 51  # same first 50 bits
    view[twin] = {"case_key": twin}
    with pytest.raises(LookupError, match="share the reference"):
        views.find_case(view, views.case_reference(KEY))


def test_the_list_shows_every_field_released_and_only_those():
    from accord.coordinator.commands import shown_columns

    council = [{"fields_released": ["address_line2", "town", "shielding_status", "given_name"]}]
    columns = [c for _, c in shown_columns(council)]
    assert {"reference", "address_line2", "town", "is_shielding", "given_name"} <= set(columns)
    assert "contact_phone" not in columns and "lives_alone" not in columns
    assert views.cell({"is_shielding": True}, "is_shielding") == "yes"
    assert views.cell({"case_key": KEY}, "reference") == views.case_reference(KEY)


def test_a_change_says_what_changed_with_the_persons_name():
    old = {
        "case_key": KEY,
        "given_name": "Ann",
        "family_name": "Low",
        "priority": "ROUTINE",
        "needs": ["WELFARE_CHECK"],
        "latest_outcome": None,
    }
    new = {
        **old,
        "priority": "HIGH",
        "needs": ["FOOD", "WELFARE_CHECK"],
        "latest_outcome": "NO_ANSWER",
    }
    line = views.Update("changed", KEY, new, old).line()
    assert line.startswith(f"changed  {views.case_reference(KEY)}  Ann Low: ")
    assert "priority routine -> high" in line and "needs +food" in line
    assert "latest outcome - -> no answer" in line
    assert views.Update("new", KEY, new, None).line().startswith("new      ")
    gone = views.Update(
        "removed",
        KEY,
        None,
        new,
        views.removal_reason([("accord-removed-because", b"agreement_suspended")]),
    )
    assert gone.line().endswith("Ann Low: the agreement was suspended")
    assert views.removal_reason([]) == "no reason given"


@pytest.mark.parametrize(
    ("agreements", "read", "says"),
    [
        ([], views.ListRead(), "no agreement names"),
        (
            [views.Agreement("DSA-011", "draft", None, "nhs-orkney")],
            views.ListRead(),
            "DSA-011 is draft",
        ),
        (
            [views.Agreement("DSA-015", "suspended", "incident", "nhs-lothian")],
            views.ListRead(topic_exists=True, records=9, removed=9),
            "DSA-015 is suspended (incident)",
        ),
        (
            [views.Agreement("DSA-010", "active", None, "nhs-lothian")],
            views.ListRead(),
            "no list yet: the hub has not made",
        ),
        (
            [views.Agreement("DSA-010", "active", None, "nhs-lothian")],
            views.ListRead(topic_exists=True),
            "nothing has been shared",
        ),
        (
            [views.Agreement("DSA-010", "active", None, "nhs-lothian")],
            views.ListRead(topic_exists=True, records=4, removed=2),
            "the list is empty: 2 people",
        ),
    ],
)
def test_zero_open_cases_says_why(agreements, read, says):
    assert says in views.empty_list_explanation("x-org", read, agreements)


def test_recipients_are_checked_against_the_agreements_with_suggestions():
    from accord.core.settings import REPO_ROOT

    policies = REPO_ROOT / "policies"
    assert views.recipient_org(policies, "community-food-network") == "community-food-network"
    with pytest.raises(ValueError, match="did you mean community-food-network"):
        views.recipient_org(policies, "community-food-netwrk")
    assert [a.id for a in views.agreements_naming(policies, "community-food-network")] == [
        "DSA-015"
    ]
