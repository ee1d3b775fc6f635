"""Pseudonymous person keys: a keyed hash (HMAC-SHA256) of the normalised identifier.

Kafka keys, logs and audit records carry this key, never the CHI number. Without the
key the hash cannot be reversed by enumerating the ~10^10 CHI space, which a plain hash
could be.
"""

from __future__ import annotations

import hashlib
import hmac


def person_key(secret: str, identifier: str, scheme: str = "chi") -> str:
    """Hex HMAC of `scheme:identifier`; the scheme keeps CHI and NHS numbers apart."""
    normalised = "".join(identifier.split())
    message = f"{scheme}:{normalised}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
