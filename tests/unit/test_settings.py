import pytest
from pydantic import ValidationError

from accord.core.settings import DEV_PSEUDONYM_KEY, Settings


def test_dev_runs_with_the_placeholder_key():
    assert Settings(env="dev").pseudonym_key.get_secret_value() == DEV_PSEUDONYM_KEY


@pytest.mark.parametrize("key", [DEV_PSEUDONYM_KEY, ""])
def test_outside_dev_a_placeholder_or_empty_key_refuses_to_start(key):
    with pytest.raises(ValidationError, match="ACCORD_PSEUDONYM_KEY"):
        Settings(env="prod", pseudonym_key=key)


def test_secret_is_masked_when_printed():
    settings = Settings(env="prod", pseudonym_key="s3cret-value")
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(
        settings.pseudonym_key
    )


def test_settings_come_from_accord_environment_variables(monkeypatch):
    monkeypatch.setenv("ACCORD_KAFKA_PORT", "29092")
    assert Settings().kafka_port == 29092


def test_endpoints_follow_the_local_ports_unless_set(monkeypatch):
    monkeypatch.setenv("ACCORD_KAFKA_PORT", "29092")
    monkeypatch.setenv("ACCORD_OPA_PORT", "28181")
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:29092"
    assert settings.opa_url == "http://127.0.0.1:28181"
    monkeypatch.setenv("ACCORD_BOOTSTRAP_SERVERS", "kafka:9092")
    assert Settings().bootstrap_servers == "kafka:9092"
