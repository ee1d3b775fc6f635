"""The console's access log: every refused attempt and every page view of personal data.

One JSON line per entry in ACCORD_CONSOLE_ACCESS_LOG_FILE (default
<state dir>/console/access.jsonl; 0600 under 0700), which IG
officers read in the console. An entry names the user, their role and organisation, what
they asked for (method and path, never a query string, which could carry a CHI) and, for
a view of personal data, the pseudonymous keys of the people shown; never a name, an
address or a raw identifier. Each entry is also logged (`console_access_denied`,
`console_personal_data_viewed`) with the same fields, keys counted rather than listed.

    entry = {"at": "2026-12-02T13:55:00Z", "kind": "denied" | "viewed",
             "user": "alice", "role": "coordinator", "org": "city-of-edinburgh",
             "method": "GET", "path": "/cases/fife", "status": 403,
             "reason": "...", "target": "fife", "keys": ["<64 hex>", ...]}
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request

from accord.console.users import User
from accord.core.credentials import private_dir
from accord.core.logging import get_logger

log = get_logger("accord.console")

DENIED: Final = "denied"
VIEWED: Final = "viewed"
MAX_KEYS_PER_ENTRY: Final = 5000  # a whole exported list still fits in one line


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line)

    def _entry(self, kind: str, request: Request, user: User | None, status: int) -> dict[str, Any]:
        return {
            "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "kind": kind,
            "user": user.username if user else None,
            "role": user.role if user else None,
            "org": user.org if user else None,
            "method": request.method,
            "path": request.url.path,  # never the query string
            "status": status,
        }

    def denied(
        self,
        request: Request,
        user: User | None,
        reason: str,
        target: str | None = None,
        status: int = 403,
    ) -> None:
        """Record a refused attempt: a page or API call outside the user's role or scope."""
        entry = {**self._entry(DENIED, request, user, status), "reason": reason}
        if target:
            entry["target"] = target
        self._append(entry)
        log.warning(
            "console_access_denied",
            user=entry["user"],
            role=entry["role"],
            org=entry["org"],
            path=entry["path"],
            reason=reason,
            target=target,
        )

    def viewed(
        self, request: Request, user: User, keys: Iterable[str], what: str, org: str | None = None
    ) -> None:
        """Record that `user` was shown personal data of the people with these
        pseudonymous keys (a list, a case, an export)."""
        shown = sorted(set(keys))
        entry = {
            **self._entry(VIEWED, request, user, 200),
            "what": what,
            "list_of": org,
            "keys": shown[:MAX_KEYS_PER_ENTRY],
            "people": len(shown),
        }
        self._append(entry)
        log.info(
            "console_personal_data_viewed",
            user=user.username,
            org=user.org,
            path=entry["path"],
            what=what,
            people=len(shown),
        )

    def entries(self, kind: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The latest `limit` entries (newest first), of one kind or all."""
        latest: deque[dict[str, Any]] = deque(maxlen=limit)
        try:
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if kind is None or entry.get("kind") == kind:
                        latest.append(entry)
        except FileNotFoundError:
            return []
        return list(reversed(latest))
