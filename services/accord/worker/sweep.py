"""Deciding cases again when the policy changes, without waiting for the next event about
each person: a suspended or expired agreement then tombstones what was shared under it,
and a newly active one shares what was withheld. Only the cases a change can affect are
decided again (`pipeline.redecide`), in batches like the stages', each abandoned if a
rebalance begins meanwhile (its cases' new owners decide them after their recovery)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import faust

from accord.core.errors import InfrastructureError
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.pipeline import cases as case_rules
from accord.pipeline.decision import Gate
from accord.pipeline.redecide import changed_parties, is_affected
from accord.worker.batches import StaleBatch, batch_began, process_until_done

log = get_logger("accord.worker")


class PolicySweep:
    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        case_states: Callable[[], Iterable[Any]],
        holders: Callable[[bytes], list[str]],
        rules: list[dict[str, Any]],
    ) -> None:
        self.app = app
        self.settings = settings
        self.case_states = case_states
        self.holders = holders
        self.rules = rules
        self.gate: Gate | None = None
        # (revision, rules' stamp, agreements) last decided under.
        self.served: tuple[str, str, dict[str, Any]] | None = None

    async def tick(self) -> None:
        gate = self.gate
        if gate is None:
            return
        try:
            revision = await gate.policy.revision()
        except InfrastructureError:
            return  # OPA is down: nothing changes until it is back
        now = (revision, gate.policy.rules, dict(gate.policy.agreements))
        if self.served is None:
            self.served = now
            return
        if revision == self.served[0]:
            return
        parties = changed_parties(self.served[1:], now[1:])
        began = batch_began.set(self.app.rebalancing_count)
        log.info(
            "policy_changed",
            revision=revision,
            previous=self.served[0],
            parties=None if parties is None else sorted(parties),
        )
        try:
            decided = await self.decide(gate, self.affected_views(parties))
        except StaleBatch:
            log.info("policy_sweep_interrupted", revision=revision)
            return  # decided again on the next tick, by whoever owns the cases then
        finally:
            batch_began.reset(began)
        log.info("policy_swept", revision=revision, cases=decided)
        self.served = now

    def affected_views(self, parties: set[str] | None) -> Iterator[dict[str, Any]]:
        """Read from the store as they are decided: every case held need not fit in memory."""
        for state in self.case_states():
            if not state:
                continue
            view = case_rules.build_case(state, self.rules)
            if view is not None and is_affected(
                view, self.holders(view["case_key"].encode()), parties
            ):
                yield view

    async def decide(self, gate: Gate, views: Iterator[dict[str, Any]]) -> int:
        size, retry_s = self.settings.worker_batch_size, self.settings.opa_retry_s
        decided = 0
        while chunk := list(itertools.islice(views, size)):
            decided += len(chunk)
            try:
                await process_until_done(
                    functools.partial(gate.process, chunk), len(chunk), retry_s
                )
            except StaleBatch:
                raise
            except Exception as exc:  # a case the gate cannot decide: decide the rest
                log.warning("policy_sweep_failed", cases=len(chunk), error=type(exc).__name__)
                for view in chunk:
                    try:
                        await process_until_done(
                            functools.partial(gate.process, [view]), 1, retry_s
                        )
                    except StaleBatch:
                        raise
                    except Exception as each:
                        log.warning(
                            "case_not_redecided",
                            case_key=view["case_key"],
                            error=type(each).__name__,
                        )
        return decided
