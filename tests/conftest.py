"""Every tier: the hub refuses to run without a pseudonymisation key, so the tests bring
one, as a deployer would (a fresh random key per run; each test's topics are its own)."""

from __future__ import annotations

import os
import secrets

os.environ.setdefault("ACCORD_PSEUDONYM_KEY", secrets.token_hex(32))
