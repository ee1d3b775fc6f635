"""Limits on what one caller may ask of the gateway: request rate and JSON nesting.

`RateLimiter` is a token bucket per API token: `burst` requests at once, refilled at
`rate` per second (ACCORD_GATEWAY_RATE_PER_S, ACCORD_GATEWAY_RATE_BURST). A request
beyond it gets 429 with Retry-After, the seconds until the bucket holds one again.

`nesting_depth` measures a parsed body without recursion, so a deeply nested one is a
400 and never a RecursionError deep in the pipeline.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

MAX_DEPTH: Final = 16  # records are flat objects; lists of needs add one level
MAX_TRACKED: Final = 10_000  # buckets kept; the stalest go first beyond this


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate, self.burst, self.clock = rate_per_s, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if `key` may make a request now (and counts it), else seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > MAX_TRACKED:
                stalest = min(self._buckets, key=lambda k: self._buckets[k][1])
                del self._buckets[stalest]
        return wait


def retry_after(wait_s: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests lists and objects, counting stops just past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
