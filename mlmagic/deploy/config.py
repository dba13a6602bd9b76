"""What a service is asked to serve and how: :class:`ServiceConfig`, stored with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ServiceConfig"]


@dataclass(frozen=True)
class ServiceConfig:
    """A service's models, code, environment, address and resources.

    Attributes
    ----------
    models
        ``name:version`` of each model served.
    entry_script
        The scoring script, relative to ``source_dir`` (``init()`` and ``run()``).
    source_dir
        The folder copied beside the entry script.
    environment
        ``name:version`` of the environment.
    port, host
        Where the server listens (published on ``host`` for a container); on a remote
        engine, the local end of the SSH forward.
    publish_host
        On a remote engine: the address of its host the service is published on,
        reached directly rather than forwarded (``None``: that host's loopback).
    workers
        Server worker processes.
    auth
        Whether requests need a key.
    gpus, memory, cpus
        Resources, as ``%deploy`` takes them.
    target
        Where it runs (a name of :mod:`mlmagic.targets`).
    """

    models: tuple[str, ...]
    entry_script: str
    source_dir: str
    environment: str
    port: int
    host: str = "127.0.0.1"
    publish_host: str | None = None
    workers: int = 1
    auth: bool = False
    gpus: str | None = None
    memory: str | None = None
    cpus: float | None = None
    target: str = "docker"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored with the service."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceConfig:
        """Rebuild from :meth:`to_dict` (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "models": tuple(data.get("models", ()))})
