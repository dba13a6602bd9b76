"""The container engine contract: the only way the rest of mlmagic reaches Docker.

Everything outside :mod:`mlmagic.engine` talks to a :class:`ContainerEngine`, so another
engine (Podman) could plug in. (There is no fake engine: control flow is tested against
the real one.) Implementations raise :class:`~mlmagic.exceptions.EngineError` for an engine
that does not answer or refuses a request, with a message that says what to do, and
:class:`~mlmagic.exceptions.BuildError` for a build that fails.
"""

from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlmagic.events import BuildEvent
from mlmagic.exceptions import MlmagicError

__all__ = [
    "POLL_INTERVAL",
    "BuildRequest",
    "ContainerEngine",
    "ContainerSpec",
    "ContainerState",
    "GpuRequest",
    "ImageInfo",
    "Mount",
    "PortBinding",
]


#: How often a container's state is looked at where the engine cannot say when it stops.
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class ImageInfo:
    """An image the engine holds."""

    tag: str
    id: str
    size: int  #: bytes
    created: str  #: ISO 8601
    #: The user its containers run as unless told otherwise (``USER``); ``""``: root.
    user: str = ""


@dataclass(frozen=True)
class BuildRequest:
    """What to build.

    Attributes
    ----------
    context_dir
        The build context; holds the Dockerfile named by ``dockerfile``.
    tag
        The tag to give the image.
    dockerfile
        Path of the Dockerfile relative to ``context_dir``.
    build_args
        ``--build-arg`` values. Never put secrets here: they stay in the image history.
    secrets
        BuildKit secrets, id → file on the host, mounted only during the ``RUN`` steps
        that ask for them and never stored in a layer.
    no_cache
        Ignore the layer cache.
    """

    context_dir: Path
    tag: str
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)
    no_cache: bool = False


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into a container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class GpuRequest:
    """NVIDIA GPUs asked of the engine: all of them, a count, or device ids."""

    count: int | None = None  #: ``-1`` for all
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortBinding:
    """A container port published on a host address (127.0.0.1 unless asked); host port
    0 lets the engine pick a free one."""

    container_port: int
    host_port: int
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class ContainerSpec:
    """A container to create and start."""

    image: str
    command: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    working_dir: str | None = None
    name: str | None = None
    gpus: GpuRequest | None = None
    shm_size: str | None = None  #: e.g. ``"2g"``
    memory: str | None = None  #: e.g. ``"4g"``
    cpus: float | None = None
    ports: Sequence[PortBinding] = ()
    user: str | None = None
    #: A user-defined network to join instead of the default bridge.
    network: str | None = None
    #: The container's host name (others on ``network`` reach it by its name).
    hostname: str | None = None
    #: Run a tiny init (tini) as PID 1, reaping orphans and passing signals on.
    init: bool = True
    #: Keep at most this much of the output in the engine's own log (e.g. ``"1m"``), for
    #: containers whose output is written in full elsewhere; ``None``: the engine's default.
    engine_log_size: str | None = None


@dataclass(frozen=True)
class ContainerState:
    """What the engine knows of a container."""

    id: str
    status: str  #: created, running, exited, dead ...
    exit_code: int | None
    oom_killed: bool
    started_at: str | None
    finished_at: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def running(self) -> bool:
        """``True`` while the container's process is alive."""
        return self.status in ("created", "running", "restarting", "paused")


class ContainerEngine(ABC):
    """A container engine mlmagic can build images and run containers with."""

    #: A short name for messages ("docker").
    name: str = "engine"

    @abstractmethod
    def ping(self) -> None:
        """Check that the engine answers; raise :class:`EngineError` saying what to do."""

    @abstractmethod
    def image_info(self, tag: str) -> ImageInfo | None:
        """The image with this tag, or ``None`` when the engine does not hold it."""

    @abstractmethod
    def build(self, request: BuildRequest) -> Iterator[BuildEvent]:
        """Build an image, yielding events as the build goes.

        Yields ``STEP``, ``LOG`` and ``STEP_DONE`` events and ends with ``DONE``.
        Raises :class:`BuildError` naming the failing step with its last lines of output.
        """

    @abstractmethod
    def remove_image(self, tag: str) -> None:
        """Remove an image; no error when it does not exist."""

    @abstractmethod
    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None:
        """Pull an image; ``auth`` is ``(username, password)``, used once and not kept."""

    @abstractmethod
    def run_once(self, image: str, command: Sequence[str]) -> str:
        """Run a short command in a fresh container of ``image`` and return its output.

        The container is removed afterwards. Raises :class:`EngineError` with the
        output when the command exits non-zero.
        """

    def has_command(self, image: str, command: str) -> bool:
        """Whether ``command`` is on the PATH of ``image``'s containers; ``False`` too
        when a container of it cannot run the check."""
        try:
            self.run_once(image, ["sh", "-c", f"command -v {shlex.quote(command)}"])
        except MlmagicError:
            return False
        return True

    @abstractmethod
    def start(self, spec: ContainerSpec) -> str:
        """Create and start a container; return its id."""

    @abstractmethod
    def create(self, spec: ContainerSpec) -> str:
        """Create a container without starting it (files can be put in first); return
        its id. :meth:`start_created` starts it."""

    @abstractmethod
    def start_created(self, container_id: str) -> None:
        """Start a container made by :meth:`create`."""

    @abstractmethod
    def put_archive(self, container_id: str, folder: str, archive: bytes) -> None:
        """Unpack the tar ``archive`` into ``folder`` of the container (which exists)."""

    @abstractmethod
    def get_archive(self, container_id: str, path: str) -> Iterator[bytes] | None:
        """The container's ``path`` (a file or a folder, with its name as the top entry)
        as a tar stream in chunks; ``None`` when the container or the path is gone."""

    @abstractmethod
    def state(self, container_id: str) -> ContainerState | None:
        """The container's state, or ``None`` when it no longer exists."""

    @abstractmethod
    def published_port(self, container_id: str, container_port: int) -> int | None:
        """The host port ``container_port`` of a running container is published on
        (the one the engine picked for a :class:`PortBinding` of host port 0)."""

    @abstractmethod
    def logs(self, container_id: str, *, follow: bool = False) -> Iterator[str]:
        """The container's output so far as lines (without the newline), from the start;
        empty when the container is gone. With ``follow`` the lines go on as the
        container prints them, until it ends."""

    def wait_exit(self, container_id: str, timeout: float) -> None:
        """Return once the container may have stopped, at the latest after ``timeout``
        seconds; the caller then asks :meth:`state`. An engine that cannot tell when a
        container stops returns after a short poll interval instead."""
        time.sleep(min(timeout, POLL_INTERVAL))

    @abstractmethod
    def stop(self, container_id: str, timeout: float = 10) -> None:
        """Stop a container (SIGTERM, then SIGKILL after ``timeout`` seconds)."""

    @abstractmethod
    def remove(self, container_id: str) -> None:
        """Remove a container; no error when it is gone.

        Returns once the engine no longer knows the container (it has finished removing
        it), or raises :class:`EngineError` when that takes too long.
        """

    @abstractmethod
    def gpu_problem(self) -> str | None:
        """``None`` when the engine can give NVIDIA GPUs, else what is missing."""

    @abstractmethod
    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Every container (running or ended) that carries all of ``labels``. A running
        one's state may come from the engine's listing alone (no exit code, no start
        time); an ended one's is complete."""

    @abstractmethod
    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        """Create a user-defined bridge network (its containers reach each other by
        name; nothing is published on the host)."""

    @abstractmethod
    def remove_network(self, name: str) -> None:
        """Remove a network; no error when it is gone."""
