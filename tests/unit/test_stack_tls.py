"""The stack's certificates: the local stack's names by default, ACCORD_TLS_NAMES on top."""

from __future__ import annotations

import pytest

from accord.core.errors import StackError
from accord.core.settings import Settings
from accord.stack.compose import make_secrets
from accord.stack.tls import certificate_names, ensure_tls, missing_names


def test_the_local_stack_certificate_names_loopback_only(tmp_path):
    files = ensure_tls(Settings(state_dir=tmp_path))
    for cert in (files.server_cert, files.controller_pem):
        assert certificate_names(cert) == {"localhost", "127.0.0.1", "::1"}


def test_tls_names_adds_host_names_and_addresses(tmp_path):
    settings = Settings(state_dir=tmp_path, tls_names=" kafka, registry ,10.0.0.7,,")
    files = ensure_tls(settings)
    assert certificate_names(files.server_cert) == {
        "localhost",
        "127.0.0.1",
        "::1",
        "kafka",
        "registry",
        "10.0.0.7",
    }
    assert missing_names(settings) == []


def test_a_name_the_existing_certificate_lacks_is_refused_not_ignored(tmp_path):
    ensure_tls(Settings(state_dir=tmp_path / "hub", tls_names="kafka"))
    later = Settings(state_dir=tmp_path / "hub", tls_names="kafka,opa")
    assert missing_names(later) == ["opa"]
    with pytest.raises(StackError, match="without opa"):
        make_secrets(later, tmp_path / "kafka", tmp_path / "opa")
