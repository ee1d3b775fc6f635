"""The one way the hub asks OPA: one query per batch of records, over a kept-alive session.

OPA answering is a precondition for releasing anything. `decide` raises
PolicyUnavailableError when OPA cannot answer; `decide_when_available` waits and retries
so the caller holds its records (unacknowledged) until OPA is back: fail closed.

Every OPA of the hub takes API calls only with the hub's bearer token
(`accord.stack.opa`). `opa_token` is the one place a client finds it: ACCORD_OPA_TOKEN,
else the file ACCORD_OPA_TOKEN_FILE, else `<state dir>/opa/token` (what `accord stack
up` generates). `PolicyClient`, `opa_session` and `opa_headers` all send it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlparse

import aiohttp
import orjson
import requests
from opa_client.opa_async import AsyncOpaClient

from accord.core.credentials import CredentialError
from accord.core.errors import PolicyUnavailableError
from accord.core.logging import get_logger
from accord.core.settings import Settings

log = get_logger("accord.policy")

DECISIONS_PACKAGE = "accord.sharing"
DECISIONS_RULE = "decisions"


def opa_token(settings: Settings) -> str:
    """The bearer token this process sends to OPA (never logged)."""
    if settings.opa_token is not None:
        return settings.opa_token.get_secret_value()
    path = settings.opa_token_path
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise CredentialError(
            f"no OPA token at {path}: run `accord stack up`, or set ACCORD_OPA_TOKEN "
            "or ACCORD_OPA_TOKEN_FILE"
        ) from None
    except OSError as exc:
        raise CredentialError(f"OPA token file {path} is unreadable: {exc.strerror}") from None
    if not token:
        raise CredentialError(f"OPA token file {path} is empty")
    return token


def opa_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {opa_token(settings)}"}


def opa_session(settings: Settings) -> requests.Session:
    """A requests session that sends the hub's OPA token on every call."""
    session = requests.Session()
    session.headers.update(opa_headers(settings))
    return session


class PolicyClient:
    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        revision_ttl_s: float = 2.0,
        rules_ttl_s: float = 15.0,
        *,
        token: str,
    ) -> None:
        parsed = urlparse(url)
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = AsyncOpaClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 8181,
            ssl=parsed.scheme == "https",
            timeout=timeout_s,
            retries=0,  # retrying is ours to decide: see decide_when_available
            token=token,
        )
        self._revision_ttl_s = revision_ttl_s
        self._revision: tuple[float, str] | None = None
        # The revision read last (see decide_all_with_revision).
        self._fresh: str | None = None
        # The rules' text (id, raw) and the agreements OPA served with the latest revision.
        self.rules: list[tuple[str, str]] = []
        self.agreements: dict[str, Any] = {}
        self._rules_ttl_s = rules_ttl_s
        self._rules: tuple[float, list[tuple[str, str]]] | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._raw: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PolicyClient:
        await self._client.__aenter__()
        # The client library summarises policies without their text; the revision needs
        # the text, so it is read over a second kept-alive session.
        self._raw = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close_connection()
        if self._raw is not None:
            await self._raw.close()

    async def _get(self, path: str) -> Any:
        assert self._raw is not None, "use PolicyClient as an async context manager"
        async with self._raw.get(f"{self.url}/v1/{path}") as response:
            response.raise_for_status()
            # orjson: the policies' ASTs are large, and the stdlib parser showed in profiles.
            return orjson.loads(await response.read()).get("result")

    async def decide(
        self, policy_input: dict[str, Any], package: str = DECISIONS_PACKAGE
    ) -> list[dict[str, Any]]:
        """Decisions for every record in `policy_input["records"]`, from one query."""
        try:
            body = await self._client.query_rule(policy_input, package, DECISIONS_RULE)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PolicyUnavailableError(f"OPA at {self.url} did not answer: {exc!r}") from exc
        if not isinstance(body, dict) or "result" not in body:
            # Undefined result: the policy is missing or broken. Deciding nothing is safer
            # than guessing, so treat it as unavailable.
            raise PolicyUnavailableError(
                f"OPA at {self.url} has no {package}.{DECISIONS_RULE} rule loaded"
            )
        if not isinstance(body["result"], list):
            raise PolicyUnavailableError(
                f"OPA at {self.url} answered {package}.{DECISIONS_RULE} with a "
                f"{type(body['result']).__name__}, not a list of decisions"
            )
        return list(body["result"])

    async def decide_when_available(
        self, policy_input: dict[str, Any], retry_s: float = 1.0, package: str = DECISIONS_PACKAGE
    ) -> list[dict[str, Any]]:
        waited_since: float | None = None
        while True:
            try:
                decisions = await self.decide(policy_input, package)
            except PolicyUnavailableError as exc:
                if waited_since is None:
                    waited_since = time.monotonic()
                    log.warning(
                        "opa_unavailable", error=str(exc), held=len(policy_input["records"])
                    )
                await asyncio.sleep(retry_s)
                continue
            if waited_since is not None:
                log.info("opa_available", waited_s=round(time.monotonic() - waited_since, 1))
            return decisions

    async def decide_all_with_revision(
        self, queries: list[tuple[dict[str, Any], str]], retry_s: float = 1.0
    ) -> tuple[list[list[dict[str, Any]]], str]:
        """The decisions of each (input, package) query, asked together, and the revision
        that made them all, read fresh around the queries.

        OPA serves its policies from a watched directory, with no revision in its answer, so
        the revision is read (rules and agreements, no cache) right after the queries and
        compared with the one read after the previous queries (or before these): equal,
        nothing changed while OPA decided, and that is the revision of these decisions;
        different, the queries are asked again under the new one. The agreements the gate
        checks a result against (`self.agreements`) are the ones of that same revision.
        One reading covers every query of a batch: it is the costly part (the rules come
        only with their syntax trees).
        """
        before = self._fresh or await self._when_available(self.fresh_revision, retry_s)
        while True:
            answers = await asyncio.gather(
                *(
                    self.decide_when_available(policy_input, retry_s, package)
                    for policy_input, package in queries
                )
            )
            after = await self._when_available(self.fresh_revision, retry_s)
            if after == before:
                return list(answers), after
            log.info("policy_revision_moved", previous=before, revision=after)
            before = after

    async def _when_available(self, read: Any, retry_s: float) -> str:
        waited = False
        while True:
            try:
                return str(await read())
            except PolicyUnavailableError as exc:
                if not waited:
                    log.warning("opa_unavailable", error=str(exc))
                    waited = True
                await asyncio.sleep(retry_s)

    async def fresh_revision(self) -> str:
        """The revision as OPA serves it now: rules and agreements read again."""
        return await self.revision(fresh=True)

    async def revision(self, fresh: bool = False) -> str:
        """A short hash of the rules and agreements OPA is serving.

        Agreements (suspensions, new parties) are re-read every `revision_ttl_s`; the rules'
        text every `rules_ttl_s`, because OPA lists rules only with their syntax trees
        (half a megabyte to parse) and rules change by deployment, not by the minute. What
        a decision records comes from `decide_all_with_revision`, which reads both fresh.
        """
        now = time.monotonic()
        if not fresh and self._revision and now - self._revision[0] < self._revision_ttl_s:
            return self._revision[1]
        try:
            rules = self._rules  # concurrent callers share the cache, never a half-read one
            if fresh or rules is None or now - rules[0] >= self._rules_ttl_s:
                policies = await self._get("policies")
                rules = (now, sorted((p["id"], p["raw"]) for p in policies or []))
                self._rules = rules
            agreements = await self._get("data/agreements")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PolicyUnavailableError(f"OPA at {self.url} did not answer: {exc!r}") from exc
        texts = rules[1]
        digest = hashlib.sha256(
            json.dumps([texts, agreements], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        self._revision = (now, digest)
        self._fresh = digest
        self.agreements = agreements if isinstance(agreements, dict) else {}
        self.rules = list(texts)
        return digest

    def forget_revision(self) -> None:
        """Read the agreements (and the revision) again on the next call."""
        self._revision = None
