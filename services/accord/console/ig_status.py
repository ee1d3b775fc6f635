"""Suspending and reactivating an agreement from the console: the edit an IG officer's
commit makes to `policies/agreements/<id>.yaml` (its `status` and `status_reason`, the
agreement's state, which needs no new version), written atomically into the folder the
hub's OPA watches, so the change is live within OPA's reload and the worker's policy
sweep. The file's comments and layout are kept; the edited file is parsed and checked
against the agreement schema before it replaces the old one, so a bad edit never goes
live. Every change is appended to `<console dir>/agreement-changes.jsonl` (0600): who,
when, from and to which status, and why.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from accord.core.credentials import private_dir

REASON_MIN: Final = 5
REASON_MAX: Final = 200
TRANSITIONS: Final = {"suspend": ("active", "suspended"), "reactivate": ("suspended", "active")}
_STATUS_LINE = re.compile(r"^(?P<indent>[ \t]+)status:[ \t]*(?P<value>[a-z]+)(?P<rest>.*)$", re.M)
_REASON_LINE = re.compile(r"^[ \t]+status_reason:.*\n", re.M)
_AGREEMENT_ID = re.compile(r"^DSA-[0-9]{3,}$")


READ_ONLY_MESSAGE: Final = (
    "This deployment's agreements cannot be changed from the console: its policies folder "
    "is read-only (the agreements are managed in the policies repository). Change the "
    "agreement's status by a reviewed commit there and release it; see the operations "
    "guide, 'Deploying the console'."
)


class StatusRefused(Exception):
    """The change cannot be made; `status` is the HTTP status (400 bad reason, 404 no such
    agreement, 409 not in a state the change applies to or a read-only policies folder,
    500 the edit would not parse)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class StatusChange:
    agreement_id: str
    action: str
    before: str
    after: str
    reason: str
    changed_at: float  # wall time the new file was in place


def clean_reason(value: str | None) -> str:
    """The reason as it will be written (spaces folded), or StatusRefused(400) saying what
    a reason must be. Control characters are refused: the reason appears in deny
    reasons, the audit and every later review of the agreement."""
    text = " ".join((value or "").split())
    if len(text) < REASON_MIN:
        raise StatusRefused(
            400,
            f"Enter a reason of at least {REASON_MIN} characters: it is recorded with the change.",
        )
    if len(text) > REASON_MAX:
        raise StatusRefused(400, f"The reason must be {REASON_MAX} characters or fewer.")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or 0x202A <= ord(ch) <= 0x202E for ch in text):
        raise StatusRefused(400, "The reason holds characters that cannot be recorded.")
    return text


def agreement_file(policies_dir: Path, agreement_id: str) -> Path:
    if not _AGREEMENT_ID.match(agreement_id):
        raise StatusRefused(404, "There is no such agreement.")
    path = policies_dir / "agreements" / f"{agreement_id}.yaml"
    if not path.is_file():
        raise StatusRefused(404, f"There is no agreement {agreement_id}.")
    return path


def edited(text: str, new_status: str, reason: str) -> tuple[str, str]:
    """(the file's text with the agreement's status set and its reason recorded, the
    status before). Only the first `status:` line, at the agreement's own indent, is
    changed; a previous `status_reason` line is replaced."""
    match = _STATUS_LINE.search(text)
    if match is None:
        raise StatusRefused(500, "The agreement file has no status line to change.")
    before = match["value"]
    without = _REASON_LINE.sub("", text)
    match = _STATUS_LINE.search(without)
    assert match is not None
    reason_line = f"{match['indent']}status_reason: {json.dumps(reason, ensure_ascii=True)}"
    line = f"{match['indent']}status: {new_status}{match['rest']}\n{reason_line}"
    return without[: match.start()] + line + without[match.end() :], before


def set_status(
    policies_dir: Path, agreement_id: str, action: str, reason: str, validate: Any = None
) -> StatusChange:
    """Suspend (active -> suspended) or reactivate (suspended -> active) one agreement.
    `validate(agreement) -> list[str]` checks the edited agreement (errors block it)."""
    if action not in TRANSITIONS:
        raise StatusRefused(400, f"Unknown change {action!r}.")
    reason = clean_reason(reason)
    expected, new_status = TRANSITIONS[action]
    path = agreement_file(policies_dir, agreement_id)
    text = path.read_text(encoding="utf-8")
    current = (yaml.safe_load(text) or {}).get(agreement_id) or {}
    if current.get("status") != expected:
        raise StatusRefused(
            409,
            f"{agreement_id} is {current.get('status') or 'without a status'}; only an "
            f"{expected} agreement can be {'suspended' if action == 'suspend' else 'reactivated'}.",
        )
    new_text, _ = edited(text, new_status, reason)
    parsed = (yaml.safe_load(new_text) or {}).get(agreement_id) or {}
    if parsed.get("status") != new_status or parsed.get("status_reason") != reason:
        raise StatusRefused(500, "The edited agreement did not read back as intended; not changed.")
    problems = validate(parsed) if validate else []
    if problems:
        raise StatusRefused(500, "The edited agreement would not be valid: " + "; ".join(problems))
    # Staged beside the file (same file system, so the rename is atomic) under a name
    # OPA does not load as data (it loads .yaml, .yml and .json files).
    staged = path.with_name(f".{path.name}.staged")
    try:
        staged.write_text(new_text, encoding="utf-8")
        os.chmod(staged, path.stat().st_mode & 0o777)
        staged.replace(path)
    except OSError as exc:
        # A read-only mount (compose's default, an image's baked-in folder) or a folder
        # the console's user may not write: nothing was changed.
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StatusRefused(409, READ_ONLY_MESSAGE) from None
        raise
    finally:
        try:
            staged.unlink(missing_ok=True)
        except OSError:
            pass
    return StatusChange(agreement_id, action, expected, new_status, reason, time.time())


def record_change(log_path: Path, change: StatusChange, user: str) -> dict[str, Any]:
    """Append the change to the console's agreement-change log (0600 under 0700)."""
    entry = {
        "at": datetime.fromtimestamp(change.changed_at, UTC).isoformat(timespec="milliseconds"),
        "user": user,
        "agreement_id": change.agreement_id,
        "action": change.action,
        "from": change.before,
        "to": change.after,
        "reason": change.reason,
    }
    private_dir(log_path.parent)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def changes(log_path: Path, agreement_id: str | None = None, limit: int = 50) -> list[dict]:
    """The latest changes (newest first), of one agreement or all."""
    found: list[dict] = []
    try:
        with open(log_path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if agreement_id is None or entry.get("agreement_id") == agreement_id:
                    found.append(entry)
    except FileNotFoundError:
        return []
    return list(reversed(found))[:limit]


# --- sharing stop, measured on a recipient's list ---------------------------------------


@dataclass(frozen=True)
class ListMeasure:
    """One recipient's list around a change at `since` (from the share topic's keys,
    broker timestamps and `accord-agreement` headers only: no record is decoded)."""

    recipient: str
    before: int  # people on the list just before the change
    now: int  # people on the list now
    tombstones: int  # removals since the change
    last_tombstone_s: float | None  # seconds from the change to the last removal
    shares_after: int  # records shared since the change
    under_before: int = 0  # people held under the changed agreement just before it
    under_now: int = 0  # ... and now


Record = tuple  # (key, broker time s, is a tombstone[, agreement id of a share])


def measure_list(
    recipient: str, records: list[Record], since: float, agreement_id: str | None = None
) -> ListMeasure:
    """`records`: (key, broker time in seconds, is a tombstone[, the agreement a share was
    made under]) in topic order."""
    before: dict[bytes, str] = {}
    now: dict[bytes, str] = {}
    tombstones, shares_after, last = 0, 0, None
    for record in records:
        key, at, tombstone = record[:3]
        under = record[3] if len(record) > 3 else ""
        if key is None:
            continue
        if at <= since:
            if tombstone:
                before.pop(key, None)
            else:
                before[key] = under
        elif tombstone:
            tombstones += 1
            last = max(last or 0.0, at - since)
        else:
            shares_after += 1
        if tombstone:
            now.pop(key, None)
        else:
            now[key] = under
    return ListMeasure(
        recipient,
        len(before),
        len(now),
        tombstones,
        last,
        shares_after,
        sum(1 for a in before.values() if agreement_id and a == agreement_id),
        sum(1 for a in now.values() if agreement_id and a == agreement_id),
    )
