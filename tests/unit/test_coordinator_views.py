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
