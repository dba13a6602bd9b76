"""A service's scoring keys: made here, kept by the process that made them, stored hashed.

The store holds only the SHA-256 digest of each key, by its name (``Primary``,
``Secondary``), so any process can replace one key without knowing the other: the other
key's digest is kept as it is and the server keeps accepting it. The keys themselves live
in a :class:`KeyRing` owned by one workspace object, never in a module global; a new
process knows no keys until it makes one.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping

from mlmagic.exceptions import DeployError
from mlmagic.records import KEY_NAMES

__all__ = ["KeyRing", "check_key_name", "digest", "new_key"]


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> str:
    """The SHA-256 hex digest the store and the server know a key by."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_key_name(name: str) -> str:
    """``name`` when it is ``Primary`` or ``Secondary``, else :class:`DeployError`."""
    if name not in KEY_NAMES:
        raise DeployError(f"key must be 'Primary' or 'Secondary', not {name!r}.")
    return name


class KeyRing:
    """The keys this process made, per service (thread-safe)."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def make(self, service: str, names: tuple[str, ...] = KEY_NAMES) -> dict[str, str]:
        """New keys for ``names`` of ``service``, remembered; return them by name."""
        made = {name: new_key() for name in names}
        with self._lock:
            self._keys.setdefault(service, {}).update(made)
        return made

    def known(self, service: str) -> Mapping[str, str]:
        """The keys of ``service`` this process knows, by name (maybe none)."""
        with self._lock:
            return dict(self._keys.get(service, {}))

    def forget(self, service: str) -> None:
        """Drop the keys of a deleted service."""
        with self._lock:
            self._keys.pop(service, None)
