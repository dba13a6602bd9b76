"""The typed records the store returns for runs and services.

A record is a snapshot of one row, with its configuration as a typed object: the run's
:class:`~mlmagic.run.config.RunConfig` (which holds the script and its arguments, stored
only there) and the service's :class:`~mlmagic.deploy.config.ServiceConfig`. Adding an
option means adding a field to one of those dataclasses; the store needs no new column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmagic.deploy.config import ServiceConfig
from mlmagic.events import Status
from mlmagic.run.config import RunConfig

__all__ = ["KEY_NAMES", "RunRecord", "ServiceRecord"]

#: The two keys of a service with ``auth``, in the order ``get_keys`` returns them.
KEY_NAMES = ("Primary", "Secondary")


@dataclass(frozen=True)
class RunRecord:
    """One run as stored.

    Attributes
    ----------
    id, experiment
        Who it is.
    status
        Its stage while live, then how it ended.
    config
        What it was asked to do (script, arguments, environment, resources, target).
    env_name, env_version
        The exact environment version it uses.
    image
        What its script started from: an image tag, or a virtual environment's folder.
    handle
        What the target answers for it by (a container id, ``local:<pid>:<start>``).
    owner
        ``host:pid`` of the process that drives it.
    cancel_requested
        Someone asked it to stop.
    created, started, ended
        Epoch seconds.
    exit_code, error, failed_stage
        How it ended.
    snapshot_files, snapshot_bytes
        The size of its source snapshot.
    """

    id: str
    experiment: str
    status: Status
    config: RunConfig
    env_name: str | None = None
    env_version: int | None = None
    image: str | None = None
    handle: str | None = None
    owner: str | None = None
    cancel_requested: bool = False
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    failed_stage: str | None = None
    snapshot_files: int | None = None
    snapshot_bytes: int | None = None

    @property
    def target(self) -> str:
        """Where it runs."""
        return self.config.target

    @property
    def environment(self) -> str:
        """``name:version`` of its environment."""
        return f"{self.env_name}:{self.env_version}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, once it ended."""
        if self.started and self.ended:
            return self.ended - self.started
        return None


@dataclass(frozen=True)
class ServiceRecord:
    """One service as stored.

    Attributes
    ----------
    name
        The service's name.
    state
        ``Transitioning``, ``Healthy``, ``Unhealthy`` or ``Failed``, as last recorded.
    config
        What it serves and how.
    image
        What it runs from: an inference image's tag, or a local folder.
    handle
        Its container id or ``local:<pid>:<start>``.
    url
        ``http://host:port`` of the server.
    key_hashes
        SHA-256 digests of its keys by name (``Primary``, ``Secondary``); never the keys.
    created
        Epoch seconds.
    error
        Why it failed, when it did.
    """

    name: str
    state: str
    config: ServiceConfig
    url: str
    image: str | None = None
    handle: str | None = None
    key_hashes: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    error: str | None = None

    @property
    def target(self) -> str:
        """Where it runs."""
        return self.config.target
