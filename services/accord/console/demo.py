"""The demo's console users: a coordinator of the City of Edinburgh and an IG officer,
with generated passwords kept 0600 in <state dir>/console/demo-users.json (so the demo
can print them again) and only hashed in the users file."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from accord.console.users import COORDINATOR, IG, UserStore
from accord.core.credentials import write_private
from accord.core.settings import Settings

DEMO_USERS = (
    ("edinburgh-coordinator", COORDINATOR, "city-of-edinburgh", "Edinburgh coordinator"),
    ("ig-officer", IG, None, "IG officer"),
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    org: str | None


def ensure_demo_users(settings: Settings) -> list[DemoUser]:
    """The demo users, made on first use; the same sign-ins on every later run."""
    store = UserStore(settings.console_users_path)
    saved_path = settings.console_dir / "demo-users.json"
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        saved = {}
    made = []
    for username, role, org, name in DEMO_USERS:
        password = saved.get(username)
        if not password or store.authenticate(username, password) is None:
            password = secrets.token_urlsafe(12)
            store.add(username, role, password, org, name, replace=True)
            saved[username] = password
        made.append(DemoUser(username, password, role, org))
    write_private(saved_path, json.dumps(saved, indent=2) + "\n")
    return made
