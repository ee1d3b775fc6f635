"""The local stack's start-up checks, without starting anything."""

import socket
import subprocess
import sys

import pytest

from accord.core.errors import MissingToolError, PortInUseError
from accord.core.settings import Settings
from accord.stack import local


@pytest.fixture
def settings(tmp_path):
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_a_missing_java_is_one_clear_error(settings, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match=r"`java` is not installed or not on PATH"):
        local.up(settings, lambda _: None)


def test_a_missing_go_is_reported_when_opa_must_be_built(settings, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match=r"`go` is not installed.*go install"):
        local.ensure_opa(settings, lambda _: None)


def test_a_missing_maven_is_reported_when_kafka_jars_must_be_fetched(settings, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match=r"`mvn` is not installed.*Maven Central"):
        local.ensure_kafka_jars(settings, lambda _: None)


def test_a_taken_port_is_one_clear_error_naming_the_setting(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = Settings(state_dir=tmp_path / "state", kafka_port=port)
        with pytest.raises(
            PortInUseError, match=rf"port {port} for kafka is taken.*ACCORD_KAFKA_PORT"
        ):
            local.up(settings, lambda _: None, only=["kafka"])


def test_the_cli_prints_one_line_not_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "accord", "stack", "up"],
        env={"PATH": "/nonexistent", "ACCORD_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: `java` is not installed or not on PATH; it is needed to run the Kafka broker "
        "(Java 17 or newer)"
    ]


def test_a_stale_pid_file_is_not_mistaken_for_a_running_component(settings):
    kafka = local.components(settings)[0]
    kafka.pid_file(settings).parent.mkdir(parents=True)
    finished = subprocess.Popen(["true"])
    finished.wait()
    kafka.pid_file(settings).write_text(str(finished.pid))
    assert local.running_pid(settings, kafka) is None


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch):
    """kafka-storage reads `-t -xyz` as an option: such an id is drawn again."""
    import uuid

    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 "-A..."
    plain = uuid.UUID(bytes=b"\x10" + bytes(15))
    drawn = iter([dashed, dashed, plain])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(drawn))
    cluster_id = local._kafka_cluster_id()
    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA" and len(cluster_id) == 22
