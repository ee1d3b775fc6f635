from accord.core.settings import Settings


def test_settings_come_from_accord_environment_variables(monkeypatch):
    monkeypatch.setenv("ACCORD_KAFKA_PORT", "29092")
    assert Settings().kafka_port == 29092


def test_endpoints_follow_the_local_ports_unless_set(monkeypatch):
    monkeypatch.setenv("ACCORD_KAFKA_PORT", "29092")
    monkeypatch.setenv("ACCORD_OPA_PORT", "28181")
    monkeypatch.setenv("ACCORD_KAFKA_BROKERS", "1")  # whatever the state dir's stack has
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:29092"
    assert settings.opa_url == "http://127.0.0.1:28181"
    monkeypatch.setenv("ACCORD_BOOTSTRAP_SERVERS", "kafka:9092")
    assert Settings().bootstrap_servers == "kafka:9092"
