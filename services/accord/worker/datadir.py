"""Where a worker process keeps its tables on disk: a 0700 slot of its group's folder under
the state dir that no other running process holds (a RocksDB DB opens in one process)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from accord.core.credentials import private_dir
from accord.core.settings import Settings


def store_url(settings: Settings) -> str:
    return "rocksdb://" if settings.worker_store == "rocksdb" else "memory://"


def group_datadir(settings: Settings, name: str) -> Path:
    """Where the processes of worker group `name` keep their state, one slot each."""
    return settings.state_dir / "faust" / name


_claimed: dict[Path, int] = {}  # datadir -> the open lock file that holds it


def claim_datadir(settings: Settings, name: str) -> Path:
    """This process's datadir: the first slot (`slot-0`, `slot-1`, ...) of its group no
    running process holds. A RocksDB DB can be opened by one process only, so two workers
    of a group on one machine need two; a worker restarted after a kill -9 gets the slot
    its predecessor left (the lock dies with the process) and its DBs with it. 0700."""
    base = private_dir(group_datadir(settings, name))
    for slot in range(256):
        folder = base / f"slot-{slot}"
        if folder in _claimed:
            continue
        fd = os.open(base / f"slot-{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claimed[folder] = fd
        return private_dir(folder, tighten=True)
    raise RuntimeError(f"every state slot of {name} is held by a running process")


def remove_group_state(settings: Settings, name: str) -> None:
    """Delete a worker group's local state (its RocksDB DBs), as its changelogs are."""
    shutil.rmtree(group_datadir(settings, name), ignore_errors=True)
