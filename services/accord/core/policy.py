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
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlparse

import aiohttp
import orjson
import requests
from opa_client.opa_async import AsyncOpaClient

from accord.core import metrics
from accord.core.credentials import CredentialError
from accord.core.errors import PolicyUnavailableError
from accord.core.logging import get_logger
from accord.core.settings import Settings

log = get_logger("accord.policy")

T = TypeVar("T")

DECISIONS_PACKAGE = "accord.sharing"
DECISIONS_RULE = "decisions"
# The gate's query: the decisions and what made them (the rules' stamp and the
# agreements) from one evaluation. See policies/accord/revision/revision.rego.
ANSWER_RULE = "answer"
REVISION_PACKAGE = "accord.revision"

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


def rules_digest(texts: Iterable[str]) -> str:
    """The rules' stamp: sha256 over the sorted text of every rule file but the stamp's own
    (package accord.revision) and OPA's authorisation policy (system.*). `accord policy
    stamp` writes it into revision.rego from the files; the worker computes it from the
    texts OPA serves, to check the stamp."""
    kept = []
    for text in texts:
        match = _PACKAGE.search(text)
        package = match.group(1) if match else ""
        if package != REVISION_PACKAGE and not package.startswith("system"):
            kept.append(text.encode())
    digest = hashlib.sha256()
    for text in sorted(kept):
        digest.update(len(text).to_bytes(8, "big"))
        digest.update(text)
    return "sha256:" + digest.hexdigest()


def revision_of(rules: str, agreements: Any) -> str:
    """The policy revision a decision names: a short hash of the rules' stamp and the
    agreements."""
    return hashlib.sha256(
        json.dumps([rules, agreements], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]


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
    """The hub's client of OPA: decisions, and the policy revision that made them.

    A revision is a short hash of the rules and the agreements OPA serves. OPA names no
    revision in its answers, so the client finds it one of two ways:

    - **stamped** (the normal case): the rules carry a stamp (`accord.revision.rules`, a
      digest of their text written by `accord policy stamp`), and the gate's query
      (`<package>.answer`) returns the decisions together with the stamp and the
      agreements, from one evaluation: the revision comes with the decisions, no second
      request. The stamp is checked against the rules' text OPA serves every
      `rules_ttl_s` (OPA lists rules only with their syntax trees, half a megabyte), off
      the gate's path, by whoever asks for `revision()` (the worker's sweep, every second).
    - **unstamped** (a stale or missing stamp: rules edited without `accord policy stamp`,
      or policies without the revision package): the rules' text and the agreements are
      read fresh around the queries, as a second and third request per batch.

    A rule edited in place without a new stamp is decided under the old stamp's name until
    the next check notices it (at most `rules_ttl_s`); from then on the revision is
    computed from the text. The policy tests refuse a stale stamp, so a deployment that
    passed them never has one.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        revision_ttl_s: float = 1.0,
        rules_ttl_s: float = 5.0,
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
        # The rules' stamp (or digest of their text, unstamped) and the agreements OPA
        # served with the latest revision.
        self.rules: str = ""
        self.agreements: dict[str, Any] = {}
        self._rules_ttl_s = rules_ttl_s
        # (when, digest of the served rules' text), and whether the served stamp matched it.
        self._texts: tuple[float, str] | None = None
        self.stamped: bool | None = None
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
        try:
            async with self._raw.get(f"{self.url}/v1/{path}") as response:
                response.raise_for_status()
                # orjson: the policies' ASTs are large, and the stdlib parser showed in
                # profiles.
                return orjson.loads(await response.read()).get("result")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PolicyUnavailableError(f"OPA at {self.url} did not answer: {exc!r}") from exc

    async def _query(self, policy_input: dict[str, Any], package: str, rule: str) -> Any:
        """The result of `package.rule` for `policy_input`; PolicyUnavailableError when OPA
        does not answer or the rule is undefined (missing or broken policy: deciding
        nothing is safer than guessing)."""
        began = time.perf_counter()
        try:
            body = await self._client.query_rule(policy_input, package, rule)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            metrics.OPA_ERRORS.labels(package, "unavailable").inc()
            raise PolicyUnavailableError(f"OPA at {self.url} did not answer: {exc!r}") from exc
        metrics.OPA_QUERY_SECONDS.labels(package, rule).observe(time.perf_counter() - began)
        if not isinstance(body, dict) or "result" not in body:
            metrics.OPA_ERRORS.labels(package, "undefined").inc()
            raise _Undefined(f"OPA at {self.url} has no {package}.{rule} rule loaded")
        return body["result"]

    async def decide(
        self, policy_input: dict[str, Any], package: str = DECISIONS_PACKAGE
    ) -> list[dict[str, Any]]:
        """Decisions for every record in `policy_input["records"]`, from one query."""
        result = await self._query(policy_input, package, DECISIONS_RULE)
        return _decisions(result, self.url, package)

    async def _answer(
        self, policy_input: dict[str, Any], package: str
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        """(decisions, rules' stamp, agreements) from one evaluation of `package.answer`."""
        result = await self._query(policy_input, package, ANSWER_RULE)
        served = result.get("served") if isinstance(result, dict) else None
        if not isinstance(served, dict) or not isinstance(served.get("rules"), str):
            raise PolicyUnavailableError(
                f"OPA at {self.url} answered {package}.{ANSWER_RULE} without what it served"
            )
        agreements = served.get("agreements")
        return (
            _decisions(result.get("decisions"), self.url, package),
            served["rules"],
            agreements if isinstance(agreements, dict) else {},
        )

    async def _when_available(self, read: Callable[[], Awaitable[T]], retry_s: float) -> T:
        """`read()`, retried every `retry_s` while OPA cannot answer: the caller holds its
        records (fail closed)."""
        waited_since: float | None = None
        while True:
            try:
                value = await read()
            except PolicyUnavailableError as exc:
                if waited_since is None:
                    waited_since = time.monotonic()
                    log.warning("opa_unavailable", error=str(exc))
                await asyncio.sleep(retry_s)
                continue
            if waited_since is not None:
                log.info("opa_available", waited_s=round(time.monotonic() - waited_since, 1))
            return value

    async def decide_when_available(
        self, policy_input: dict[str, Any], retry_s: float = 1.0, package: str = DECISIONS_PACKAGE
    ) -> list[dict[str, Any]]:
        return await self._when_available(lambda: self.decide(policy_input, package), retry_s)

    async def decide_all_with_revision(
        self, queries: list[tuple[dict[str, Any], str]], retry_s: float = 1.0
    ) -> tuple[list[list[dict[str, Any]]], str]:
        """The decisions of each (input, package) query, asked together, and the revision
        that made them all.

        Stamped, each query returns its rules' stamp and agreements with its decisions;
        they must be the same for every query of the batch (else the batch is asked again:
        the policy moved between two of them). Unstamped, the revision is read fresh
        (rules' text and agreements) right after the queries and compared with the one
        read after the previous queries (or before these): equal, nothing changed while
        OPA decided; different, the queries are asked again under the new one. Either
        way the agreements the gate checks a result against (`self.agreements`) are the
        ones of that same revision.
        """
        if self.stamped is None:
            await self._when_available(self.fresh_revision, retry_s)
        if self.stamped:
            return await self._decide_stamped(queries, retry_s)
        return await self._decide_unstamped(queries, retry_s)

    async def _decide_stamped(
        self, queries: list[tuple[dict[str, Any], str]], retry_s: float
    ) -> tuple[list[list[dict[str, Any]]], str]:
        while True:
            answers = await asyncio.gather(
                *(
                    self._when_available(lambda q=q, p=p: self._answer(q, p), retry_s)
                    for q, p in queries
                )
            )
            served = {revision_of(rules, agreements) for _, rules, agreements in answers}
            if len(served) <= 1:
                break
            log.info("policy_revision_moved", revisions=sorted(served))
        if not answers:  # nothing asked: the revision as served now
            return [], await self.fresh_revision()
        if self._texts is None or answers[0][1] != self._texts[1]:
            # A new stamp (a deployment): its text is checked before anything is named
            # after it; a stamp that does not match is decided the unstamped way.
            await self._when_available(self.fresh_revision, retry_s)
            if not self.stamped:
                return await self._decide_unstamped(queries, retry_s)
        _, self.rules, self.agreements = answers[-1]
        revision = served.pop()
        self._fresh = revision
        return [decisions for decisions, _, _ in answers], revision

    async def _decide_unstamped(
        self, queries: list[tuple[dict[str, Any], str]], retry_s: float
    ) -> tuple[list[list[dict[str, Any]]], str]:
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

    async def _served(self) -> tuple[str | None, dict[str, Any]]:
        """(the rules' stamp, the agreements) as OPA serves them, from one evaluation; the
        stamp is None when the policies have no revision package."""
        try:
            served = await self._query({}, REVISION_PACKAGE, "served")
        except _Undefined:
            agreements = await self._get("data/agreements")
            return None, agreements if isinstance(agreements, dict) else {}
        stamp = served.get("rules") if isinstance(served, dict) else None
        agreements = served.get("agreements") if isinstance(served, dict) else None
        return (
            stamp if isinstance(stamp, str) else None,
            agreements if isinstance(agreements, dict) else {},
        )

    async def _text_digest(self) -> str:
        """The digest of the rules' text OPA serves (their syntax trees come with it)."""
        policies = await self._get("policies")
        return rules_digest(p.get("raw", "") for p in policies or [] if isinstance(p, dict))

    def _note_stamp(self, stamped: bool, stamp: str | None, text: str) -> None:
        if stamped != self.stamped:
            if stamped:
                log.info("policy_rules_stamped", stamp=stamp)
            else:
                log.warning(
                    "policy_rules_unstamped",
                    stamp=stamp,
                    text=text,
                    hint="run `accord policy stamp`; until then every batch reads the rules",
                )
        self.stamped = stamped

    async def fresh_revision(self) -> str:
        """The revision as OPA serves it now, not cached."""
        return await self.revision(fresh=True)

    async def revision(self, fresh: bool = False) -> str:
        """A short hash of the rules (their stamp) and the agreements OPA is serving,
        cached for `revision_ttl_s` unless `fresh`.

        The rules' text is read (to check the stamp) every `rules_ttl_s`, and whenever the
        stamp does not match the text read last (a deployment, or rules edited without a
        stamp): unstamped, the revision is computed from the text read now.
        """
        now = time.monotonic()
        if not fresh and self._revision and now - self._revision[0] < self._revision_ttl_s:
            return self._revision[1]
        stamp, agreements = await self._served()
        texts = self._texts
        if texts is None or now - texts[0] >= self._rules_ttl_s or stamp != texts[1]:
            texts = (now, await self._text_digest())
            self._texts = texts
        self._note_stamp(stamp == texts[1], stamp, texts[1])
        rules = texts[1]
        digest = revision_of(rules, agreements)
        self._revision = (now, digest)
        self._fresh = digest
        self.agreements = agreements
        self.rules = rules
        return digest

    def forget_revision(self) -> None:
        """Read the agreements (and the revision) again on the next call."""
        self._revision = None


class _Undefined(PolicyUnavailableError):
    """The rule asked for is not defined: missing or broken policies."""


def _decisions(result: Any, url: str, package: str) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        raise PolicyUnavailableError(
            f"OPA at {url} answered {package}.{DECISIONS_RULE} with a "
            f"{type(result).__name__}, not a list of decisions"
        )
    return list(result)
