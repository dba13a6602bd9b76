"""What every target tells the scoring server it starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlmagic.serve.keys import ENV_AUTH_KEYS

if TYPE_CHECKING:
    from mlmagic.records import ServiceRecord

__all__ = ["server_settings"]


def server_settings(record: ServiceRecord) -> dict[str, str]:
    """The server's environment variables: its workers and the digests of its keys."""
    settings = {"MLMAGIC_WORKERS": str(record.config.workers)}
    if record.key_hashes:
        settings[ENV_AUTH_KEYS] = ",".join(record.key_hashes.values())
    return settings
