"""The hub's OPA start-up pieces that need no process: capabilities, token, argv."""

import stat

import pytest
from pydantic import SecretStr

from accord.core.credentials import CredentialError
from accord.core.policy import opa_headers, opa_token
from accord.core.settings import Settings
from accord.stack import opa


@pytest.fixture
def settings(tmp_path):
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("http.send", False),
        ("net.lookup_ip_addr", False),
        ("net.cidr_contains", False),
        ("opa.runtime", False),
        ("crypto.sha256", True),
        ("array.slice", True),
        ("time.now_ns", True),
        ("network.x", True),  # only the net. namespace goes
    ],
)
def test_capabilities_drop_exactly_the_builtins_that_reach_outside(name, kept):
    capabilities = {"builtins": [{"name": name}, {"name": "count"}], "features": ["x"]}
    filtered = opa.filter_capabilities(capabilities)
    assert ({"name": name} in filtered["builtins"]) is kept
    assert {"name": "count"} in filtered["builtins"]
    assert filtered["allow_net"] == [] and filtered["features"] == ["x"]


def test_the_token_is_made_once_0600_and_read_back_by_clients(settings):
    token = opa.ensure_token(settings)
    assert len(token) >= 40 and opa.ensure_token(settings) == token
    mode = stat.S_IMODE(settings.opa_token_path.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(settings.opa_token_path.parent.stat().st_mode) == 0o700
    assert opa_token(settings) == token
    assert opa_headers(settings) == {"Authorization": f"Bearer {token}"}


def test_opa_learns_only_the_tokens_hash(settings):
    token = opa.ensure_token(settings)
    text = opa.token_data_file(settings).read_text()
    assert token not in text and "token_sha256" in text


def test_an_explicit_token_wins_over_the_file(settings):
    opa.ensure_token(settings)
    explicit = settings.model_copy(update={"opa_token": SecretStr("from-the-environment")})
    assert opa_token(explicit) == "from-the-environment"


def test_no_token_is_one_clear_error(settings):
    with pytest.raises(CredentialError, match=r"no OPA token at .*accord stack up"):
        opa_token(settings)
