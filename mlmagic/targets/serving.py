"""What every target tells the scoring server it starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlmagic.serve.hosts import ENV_ALLOWED_HOSTS
from mlmagic.serve.keys import ENV_AUTH_KEYS

if TYPE_CHECKING:
    from mlmagic.records import ServiceRecord

__all__ = ["allowed_hosts", "server_settings"]


def allowed_hosts(host: str, port: int) -> str:
    """The ``Host`` headers a server published on ``host:port`` answers (DNS rebinding).

    The loopback names on the published port always; the published host too when it is
    another one; any name on that port when it listens on every interface.
    """
    if host in ("0.0.0.0", "::"):
        return f"*:{port}"
    names = ["127.0.0.1", "localhost", "[::1]"]
    shown = f"[{host}]" if ":" in host else host
    if shown not in names:
        names.append(shown)
    return ",".join(f"{name}:{port}" for name in names)


def server_settings(record: ServiceRecord) -> dict[str, str]:
    """The server's environment variables: its workers, the digests of its keys, and the
    addresses it answers as (the published port, not the one inside a container)."""
    config = record.config
    settings = {
        "MLMAGIC_WORKERS": str(config.workers),
        ENV_ALLOWED_HOSTS: allowed_hosts(config.publish_host or config.host, config.port),
    }
    if record.key_hashes:
        settings[ENV_AUTH_KEYS] = ",".join(record.key_hashes.values())
    return settings
