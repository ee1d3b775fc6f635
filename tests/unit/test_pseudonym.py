import pytest

from accord.core.pseudonym import person_key

CHI = "1403521239"


def test_same_identifier_and_key_give_the_same_person_key():
    assert person_key("k1", CHI) == person_key("k1", "140352 1239")


@pytest.mark.parametrize(
    ("secret", "identifier", "scheme"),
    [("k2", CHI, "chi"), ("k1", "1403521247", "chi"), ("k1", CHI, "nhs")],
)
def test_a_different_key_identifier_or_scheme_gives_a_different_person_key(
    secret, identifier, scheme
):
    assert person_key(secret, identifier, scheme) != person_key("k1", CHI, "chi")


def test_the_person_key_does_not_contain_the_identifier():
    key = person_key("k1", CHI)
    assert CHI not in key and len(key) == 64
