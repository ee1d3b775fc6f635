import pytest

from accord.core.errors import ConfigurationError
from accord.core.settings import Settings


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "no pseudonymisation key"),
        ("", "no pseudonymisation key"),
        ("dev-only-pseudonym-key-not-for-real-data", "placeholder"),
        ("a" * 64, "placeholder"),
        ("0123456789abcdef", "at least 32"),
    ],
)
def test_the_hub_refuses_a_missing_placeholder_or_short_key(key, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings(pseudonym_key=key).require_pseudonym_key()


def test_a_key_of_32_random_bytes_is_taken_from_the_variable_or_a_file(tmp_path):
    key = "3f1c9a7be2d84c6a9b0e5f7d1a2c3b4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"
    assert Settings(pseudonym_key=key).require_pseudonym_key() == key
    path = tmp_path / "key"
    path.write_text(key + "\n")
    assert Settings(pseudonym_key=None, pseudonym_key_file=path).require_pseudonym_key() == key


def test_secret_is_masked_when_printed():
    settings = Settings(pseudonym_key="s3cret-value-that-is-long-enough-to-use-1234")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.pseudonym_key)
