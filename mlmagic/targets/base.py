"""The contract of a target: where an environment is made and its runs and services run.

A target is to mlmagic what a build pack is to repo2docker: one module per kind of place
(:mod:`.docker`, :mod:`.local`; later a gang of containers, Ray), each implementing
:class:`Target`, chosen by name from one registry (:mod:`mlmagic.targets`). Nothing
outside this package asks which target it is talking to.

A target is given what it needs, not the whole workspace (:class:`TargetContext`), and
works on typed records (:class:`~mlmagic.records.RunRecord`,
:class:`~mlmagic.records.ServiceRecord`) and a run's :class:`~mlmagic.run.paths.RunPaths`.
What it starts it answers for by a *handle* (a container id, ``local:<pid>:<start>``)
that is stored with the record, so any process can look at, stop or finalise it later.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlmagic.config import MLMagic
from mlmagic.engine.base import POLL_INTERVAL, ContainerEngine, ContainerState, GpuRequest
from mlmagic.events import BuildEvent
from mlmagic.exceptions import RunError

if TYPE_CHECKING:
    from mlmagic.deploy.config import ServiceConfig
    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.records import RunRecord, ServiceRecord
    from mlmagic.run.config import RunConfig
    from mlmagic.run.paths import RunPaths

__all__ = ["Materialised", "Target", "TargetContext"]


@dataclass(frozen=True)
class TargetContext:
    """What a target needs of its workspace.

    Attributes
    ----------
    root
        The workspace folder: labels name it; per-service files live under it.
    config
        The settings in force.
    engine
        The container engine, for targets whose :attr:`Target.uses_engine` is true.
    """

    root: Path
    config: MLMagic
    engine: ContainerEngine | None = None


@dataclass(frozen=True)
class Materialised:
    """What a target made of an environment version (the store records it).

    Attributes
    ----------
    cached
        Nothing was built: it existed already.
    venv
        The virtual environment's folder, for targets that make one.
    size
        Bytes on disk, when known.
    packages
        The resolved ``name==version`` list, when it was read (``None``: keep what is
        stored).
    """

    cached: bool
    venv: str | None = None
    size: int | None = None
    packages: list[str] | None = None


class Target(ABC):
    """Where environments are materialised and runs and services are started.

    Parameters
    ----------
    context
        The workspace's folder, settings and (for :attr:`uses_engine`) engine.
    """

    #: The name users give (``--target NAME``), and the registry's key.
    name: ClassVar[str]
    #: Whether it needs a container engine (given in ``context.engine``).
    uses_engine: ClassVar[bool] = False
    #: Whether runs reach it only through a compute (``--compute NAME``): not one of this
    #: machine's targets, which ``--target`` and the "Submit as run…" dialog offer.
    needs_compute: ClassVar[bool] = False

    def __init__(self, context: TargetContext) -> None:
        self.context = context

    # -- environments -----------------------------------------------------------------

    @abstractmethod
    def log_name(self, version: int) -> str:
        """The file name of the build log of an environment version."""

    @abstractmethod
    def find_environment(self, env: Environment) -> Materialised | None:
        """What already exists of a registered environment version here, or ``None``.

        Cheap (one lookup); ``None`` leaves it to :meth:`build_environment`, which may
        still find it and report a cache hit.
        """

    @abstractmethod
    def build_environment(
        self, env: Environment, *, log_path: Path, rebuild: bool = False
    ) -> Generator[BuildEvent, None, Materialised]:
        """Materialise a registered environment version, yielding build events.

        Called when :meth:`find_environment` found nothing, or to rebuild. Raises
        :class:`~mlmagic.exceptions.SpecError` for what this target cannot make and
        :class:`~mlmagic.exceptions.BuildError` for a failed build; every line goes to
        ``log_path``.
        """

    @abstractmethod
    def location(self, env: Environment) -> str | None:
        """What a run of ``env`` starts from here (an image tag, a venv folder)."""

    @abstractmethod
    def discard_environment(self, location: str) -> None:
        """Remove what :meth:`build_environment` made at ``location`` (a :meth:`location`
        no registered version uses any more); no error when it is gone."""

    # -- runs ---------------------------------------------------------------------------

    @abstractmethod
    def gpu_problem(
        self, env: Environment | None = None, gpus: GpuRequest | None = None
    ) -> str | None:
        """``None`` when GPUs can be given here, else what is missing (one line).

        With ``env`` the host's driver is checked against the CUDA the environment needs,
        and with ``gpus`` the GPUs asked for against those the host has (see
        :mod:`mlmagic.targets.gpu`); called before anything starts.
        """

    def gpu_count(self) -> int | None:
        """The GPUs a node of this target's runs has, to split a distributed run's
        ``--gpus`` over its nodes; ``None`` when it cannot tell or a scheduler places the
        GPUs (a cluster). The default counts this machine's."""
        from mlmagic.distributed.resources import host_gpu_count

        return host_gpu_count()

    @classmethod
    def check_run(cls, config: RunConfig) -> None:
        """Refuse, in one line, a run this target cannot take, from its config alone.

        Called by :class:`~mlmagic.run.config.RunConfig` when it is made (at submit, and
        when a stored run is read), so it does no I/O: what needs the target's machine
        (its GPUs, a cluster's nodes) is checked when the run starts. Raises
        :class:`~mlmagic.exceptions.RunError`; the default takes every run.
        """
        return None

    def notes(self, config: RunConfig) -> list[str]:
        """Lines for the run's log about options this target takes but cannot honour."""
        return []

    def begin_run(self, record: RunRecord) -> None:
        """Begin, in the background, what starting the run needs whatever its environment
        (the docker target: a gang's network); called as its Preparing begins.

        :meth:`start_run` takes what was begun; a run that ends before it starts is given
        to :meth:`abandon_run`. Errors are left to :meth:`start_run` to say.
        """
        return  # most targets begin nothing before a run starts

    def abandon_run(self, record: RunRecord) -> None:
        """Remove what :meth:`begin_run` made for a run that ended before it started; no
        error when nothing was made. Any process that closes the run may call it."""
        return

    @abstractmethod
    def start_run(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> str:
        """Start the run's script under the launcher; return its handle.

        The script writes its output, metrics and exit file under ``paths``. Raises an
        :class:`~mlmagic.exceptions.MlmagicError` when it cannot start.
        """

    def prepare_notebook(
        self, env: Environment, paths: RunPaths
    ) -> Generator[BuildEvent, None, None]:
        """Make what executing a notebook in ``env`` needs (nbclient, ipykernel; see
        :mod:`mlmagic.build.notebook`), yielding build events; called in Preparing, before
        :meth:`start_run` of a notebook run, which then finds it made.

        Raises :class:`~mlmagic.exceptions.BuildError` when it cannot be made, and
        :class:`~mlmagic.exceptions.RunError` on a target that runs no notebooks.
        """
        raise RunError(f"The {self.name} target cannot run notebooks: use docker or local.")
        yield  # a generator

    def has_command(self, env: Environment, command: str) -> bool:
        """Whether ``command`` is on the PATH of runs of ``env`` here (checked before a
        distributed run that needs it starts)."""
        return True

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        """One row per node of a distributed run (``node``, ``host``, ``processes``,
        ``state``); empty for a run of one process."""
        return []

    def exit_message(self, handle: str) -> str | None:
        """Why the run ``handle`` names failed, when the target can say more than its
        exit code (which rank of a gang failed, and its last lines)."""
        return None

    def console(self, handle: str) -> list[str]:
        """The last lines a run printed outside its launcher's log (a container's own
        output), read before :meth:`remove` when the run failed with an empty log; ``[]``
        where none are kept."""
        return []

    @abstractmethod
    def state(self, handle: str) -> ContainerState | None:
        """The state of what the handle names (a run or a service); ``None`` once gone."""

    def wait_exit(self, handle: str, timeout: float) -> None:
        """Return once what ``handle`` names may have ended, at the latest after
        ``timeout`` seconds; the caller then asks :meth:`state`. The default cannot tell
        and returns after a short poll interval (:data:`POLL_INTERVAL`)."""
        time.sleep(min(timeout, POLL_INTERVAL))

    @abstractmethod
    def stop(self, handle: str, timeout: float = 10) -> None:
        """Ask it to stop (SIGTERM), then kill it after ``timeout`` seconds."""

    @abstractmethod
    def remove(self, handle: str) -> None:
        """Remove what is left of it after it ended; no error when nothing is."""

    # -- services -----------------------------------------------------------------------

    @abstractmethod
    def build_service(
        self,
        name: str,
        config: ServiceConfig,
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        """Make what the service runs from (an image, a folder); the generator returns
        it (stored as the service's ``image``)."""

    @abstractmethod
    def start_service(self, record: ServiceRecord) -> str:
        """Start the scoring server of ``record``; return its handle.

        Raises :class:`~mlmagic.exceptions.DeployError` when it cannot start (a port
        that is taken says so).
        """

    @abstractmethod
    def service_logs(self, name: str, handle: str) -> list[str]:
        """Every line the server printed (also after it ended)."""

    def stop_service(self, handle: str) -> None:
        """Stop the server and remove what is left of it."""
        self.stop(handle, timeout=5)
        self.remove(handle)

    @abstractmethod
    def discard_service(self, name: str, artefact: str) -> None:
        """Remove what :meth:`build_service` made; no error when it is gone."""
