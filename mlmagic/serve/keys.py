"""Scoring keys: which requests may call ``run()``.

The server never sees the keys themselves at rest: the deployer passes the SHA-256 hex
digests of the accepted keys in ``MLMAGIC_AUTH_KEYS_SHA256`` (comma-separated), and a
request is let through when the digest of its ``Authorization: Bearer <key>`` is one of
them. Keys and digests are never logged or echoed in error messages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["ENV_AUTH_KEYS", "is_authorized", "parse_digests"]

#: Comma-separated SHA-256 hex digests of the accepted keys; unset or empty: no auth.
ENV_AUTH_KEYS = "MLMAGIC_AUTH_KEYS_SHA256"

_HEX = frozenset("0123456789abcdef")


def parse_digests(text: str) -> tuple[str, ...]:
    """Read the value of :data:`ENV_AUTH_KEYS`.

    Parameters
    ----------
    text
        Comma-separated SHA-256 hex digests; blanks and surrounding spaces are ignored.

    Returns
    -------
    tuple of str
        The digests, in lower case; empty when ``text`` holds none (no auth).

    Raises
    ------
    ValueError
        When an entry is not 64 hex digits. The message does not repeat the entry,
        which may be a key pasted by mistake.
    """
    digests = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for digest in digests:
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise ValueError(
                f"{ENV_AUTH_KEYS} must hold comma-separated SHA-256 hex digests (64 hex "
                "digits each) of the accepted keys, not the keys themselves."
            )
    return digests


def is_authorized(headers: Iterable[tuple[bytes, bytes]], digests: tuple[str, ...]) -> bool:
    """Whether a request's ``Authorization: Bearer <key>`` holds an accepted key.

    Parameters
    ----------
    headers
        The request's headers as ASGI gives them (lower-case names, raw values).
    digests
        The accepted digests, from :func:`parse_digests`.

    Returns
    -------
    bool
        ``True`` when the key's SHA-256 digest is one of ``digests``.
    """
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                return False
            digest = hashlib.sha256(key.strip().encode("latin-1")).hexdigest()
            # Compared with every accepted digest, so timing tells nothing about which.
            matches = [hmac.compare_digest(digest, accepted) for accepted in digests]
            return any(matches)
    return False
