"""How every OPA of the hub runs: authenticated, read-only at runtime, with no network.

The stack's OPA and every throw-away one (`policy simulate`, the demo, tests) start from
`server_argv`, so all of them:

- take API calls only with the hub's bearer token (`--authentication=token
  --authorization=basic`), decided by `deploy/opa/authz.rego` (package `system.authz`):
  the token may POST decision queries under `/v1/data/accord/...`, GET
  `/v1/data/agreements[/...]` and the policy list `/v1/policies` (the revision); nothing
  may PUT, PATCH or DELETE policies or data; `/health` stays open. The token is generated
  at first start (`<state dir>/opa/token`, 0600); OPA is given only its SHA-256, as
  `data.system.accord.token_sha256`, in a file beside it.
- load the policies from the **watched directory** with the `*_test.rego` files left out
  (`--ignore`), not from a signed bundle. Why: agreements are data that an IG officer
  edits (a suspension must stop sharing within seconds, and the demo and the suspension
  tests edit a watched copy); a bundle would need a build-and-sign step on every edit, and
  a bundle signed on the same machine with a key kept beside it proves nothing more than
  the directory's permissions already do. What a bundle would have added, refusing
  changes through the API, the authorisation policy does: OPA's API takes no writes, so
  the only way to change what OPA serves is to change the files, which a deployment
  guards like the code itself.
- are checked against a capabilities file without `http.send`, `net.*` and
  `opa.runtime` (`<state dir>/opa/capabilities.json`, made from `opa capabilities
  --current`). `opa run` has no `--capabilities` flag (OPA issue 4153 is open), so the
  check is `opa check --capabilities` over exactly the files OPA is about to load, before
  every start: a candidate policy that could send records anywhere never gets served. A
  file changed under a running, watching OPA is not re-checked; `accord policy test`
  (and the policy test tier) runs the same check over policies/.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from pathlib import Path

from accord.core.credentials import private_dir, write_private
from accord.core.errors import InfrastructureError
from accord.core.settings import Settings

TEST_FILES = "*_test.rego"
REMOVED_BUILTINS = ("http.send", "opa.runtime")
REMOVED_PREFIXES = ("net.",)


def opa_state_dir(settings: Settings) -> Path:
    return private_dir(settings.state_dir / "opa")


def authz_dir(settings: Settings) -> Path:
    return settings.home / "deploy" / "opa"


def ensure_token(settings: Settings) -> str:
    """The hub's OPA token: ACCORD_OPA_TOKEN if set, else the token file, made if absent."""
    if settings.opa_token is not None:
        return settings.opa_token.get_secret_value()
    path = settings.opa_token_path
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def token_data(settings: Settings) -> str:
    """What OPA learns of the token: its SHA-256, as the JSON of data.system.accord."""
    digest = hashlib.sha256(ensure_token(settings).encode()).hexdigest()
    return json.dumps({"token_sha256": [digest]}) + "\n"


def token_data_file(settings: Settings) -> Path:
    """The token's hash in a file beside it, loaded as data.system.accord."""
    path = opa_state_dir(settings) / "authz-data.json"
    write_private(path, token_data(settings))
    return path


def server_flags() -> list[str]:
    """The flags every OPA of the hub runs with, after `run --server --addr ADDR`
    (docker-compose.yml's OPA has the same; tests/unit/test_compose.py compares them)."""
    return [
        "--skip-version-check",  # never phone home
        "--log-level",
        "error",
        "--authentication=token",
        "--authorization=basic",
        "--ignore",
        TEST_FILES,
    ]


def removed(name: str) -> bool:
    return name in REMOVED_BUILTINS or name.startswith(REMOVED_PREFIXES)


def filter_capabilities(capabilities: dict) -> dict:
    """`opa capabilities --current` without the builtins that reach outside OPA."""
    kept = dict(capabilities)
    kept["builtins"] = [b for b in capabilities["builtins"] if not removed(b["name"])]
    kept["allow_net"] = []  # and no host at all, should a reaching builtin ever come back
    return kept


def ensure_capabilities(settings: Settings) -> Path:
    result = subprocess.run(
        [str(settings.opa_binary), "capabilities", "--current"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfrastructureError(f"`opa capabilities --current` failed: {result.stderr[-400:]}")
    path = opa_state_dir(settings) / "capabilities.json"
    write_private(path, json.dumps(filter_capabilities(json.loads(result.stdout)), indent=1))
    return path


def check_capabilities(settings: Settings, policies_dir: Path) -> None:
    """Refuse policies that use a builtin the hub's OPA must not offer."""
    capabilities = ensure_capabilities(settings)
    result = subprocess.run(
        [
            str(settings.opa_binary),
            "check",
            "--capabilities",
            str(capabilities),
            "--ignore",
            TEST_FILES,
            str(policies_dir),
            str(authz_dir(settings)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfrastructureError(
            f"the policies in {policies_dir} are refused by the hub's OPA capabilities "
            f"(no http.send, net.*, opa.runtime): {(result.stdout + result.stderr).strip()[-800:]}"
        )


def server_argv(settings: Settings, addr: str, policies_dir: Path, *, watch: bool) -> list[str]:
    """`opa run --server` for `policies_dir`, after the capabilities check."""
    check_capabilities(settings, policies_dir)
    argv = [
        str(settings.opa_binary),
        "run",
        "--server",
        "--addr",
        addr,
        *server_flags(),
    ]
    if watch:
        argv.append("--watch")
    argv += [
        str(policies_dir),
        str(authz_dir(settings)),
        f"system.accord:{token_data_file(settings)}",
    ]
    return argv
