"""The workspace: a folder holding the database and the files of runs and models.

Found like git finds a repository: ``MLMAGIC_WORKSPACE`` if set, else the nearest
``.mlmagic/`` folder from the current directory upwards, else a new ``.mlmagic/`` in the
current directory. Creating one needs no command. :class:`Workspace` is the facade the
magics, the CLI and the server use: collections of environments, runs, models and
services over one store and one engine.
"""

from __future__ import annotations

import os
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.config import MLMagic, get_config
from mlmagic.engine.base import ContainerEngine
from mlmagic.environment import Environments
from mlmagic.exceptions import EngineError, MlmagicError
from mlmagic.store import Store
from mlmagic.targets import Target, TargetContext, names, target_class

if TYPE_CHECKING:
    from mlmagic.computes import Computes
    from mlmagic.deploy.service import Service, Services
    from mlmagic.environment import Environment
    from mlmagic.models import Models
    from mlmagic.run.run import Run, Runs

__all__ = ["TARGETS", "WORKSPACE_DIRNAME", "Workspace", "find_workspace"]

#: Where environments, runs and services go: every registered target, or ``auto``.
TARGETS = ("auto", *names())

WORKSPACE_DIRNAME = ".mlmagic"
_DATABASE = "mlmagic.db"


def find_workspace(start: Path | None = None) -> Path:
    """The workspace folder for ``start`` (default: the current directory)."""
    override = os.environ.get("MLMAGIC_WORKSPACE")
    if override:
        return Path(override).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / WORKSPACE_DIRNAME
        if (candidate / _DATABASE).is_file():
            return candidate
    return here / WORKSPACE_DIRNAME


class Workspace:
    """A workspace folder and the engine its images and containers live in.

    Parameters
    ----------
    path
        The workspace folder (``.mlmagic``); ``None`` finds it (see :func:`find_workspace`).
    engine
        The container engine; ``None`` uses the Docker engine, connected on first use.
    config
        Settings; ``None`` uses the process's (``%config MLMagic...``).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        engine: ContainerEngine | None = None,
        config: MLMagic | None = None,
    ) -> None:
        self.root = Path(path).expanduser().resolve() if path else find_workspace()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlmagicError(
                f"Cannot create the workspace folder {self.root}: {exc.strerror}. "
                "Set MLMAGIC_WORKSPACE to a writable folder."
            ) from exc
        self._config = config
        self._auto_target: str | None = None
        self._targets: dict[str, Target] = {}
        if engine is not None:
            self.__dict__["engine"] = engine

    _current: dict[Path, Workspace] = {}

    @classmethod
    def current(cls) -> Workspace:
        """The workspace of the current directory, one object per folder and process."""
        root = find_workspace()
        if root not in cls._current:
            cls._current[root] = cls(root)
        return cls._current[root]

    @property
    def config(self) -> MLMagic:
        """The settings in force: the ones given, else the process's (``%config``)."""
        return self._config or get_config()

    def resolve_target(self, target: str | None = None, compute: str | None = None) -> str:
        """The name of the target to use: the compute's, else the one asked for, else the
        setting.

        This is the one place a target is picked: ``auto`` is Docker when an engine
        answers, else local, and says so once when it falls back. A compute that is a
        Docker engine is the target ``docker@NAME`` (see :meth:`target`).
        """
        if compute is not None:
            from mlmagic.computes.docker_host import target_name

            return target_name(self.computes.get(compute))  # an unknown compute is refused
        if target and "@" in target:
            return target  # already resolved: a compute's
        choice = target or self.config.target
        if choice not in TARGETS:
            raise MlmagicError(f"Unknown target {choice!r}: use {', '.join(TARGETS)}.")
        if choice != "auto":
            return choice
        if self._auto_target is None:
            try:
                self.engine.ping()
                self._auto_target = "docker"
            except EngineError:
                self._auto_target = "local"
                print(
                    "mlmagic: no Docker engine answers, so environments, runs and services use "
                    "the local target (uv virtual environments and processes). Start Docker and "
                    "set %config MLMagic.target = 'docker' (or MLMAGIC_TARGET=docker) to use "
                    "containers.",
                    file=sys.stderr,
                )
        return self._auto_target

    def target(self, name: str) -> Target:
        """The target registered as ``name`` (see :mod:`mlmagic.targets`), one per name;
        ``docker@COMPUTE`` is the Docker target on that compute's engine."""
        if name not in self._targets and "@" in name:
            from mlmagic.computes.docker_host import compute_target

            compute = self.computes.get(name.partition("@")[2])
            self._targets[name] = compute_target(compute, self.root, self.config)
        if name not in self._targets:
            cls = target_class(name)
            context = TargetContext(
                root=self.root,
                config=self.config,
                engine=self.engine if cls.uses_engine else None,
            )
            self._targets[name] = cls(context)
        return self._targets[name]

    @cached_property
    def store(self) -> Store:
        """The workspace's database."""
        return Store(self.root / _DATABASE)

    @cached_property
    def engine(self) -> ContainerEngine:
        """The container engine (Docker), connected when first used."""
        from mlmagic.engine.docker import DockerEngine

        return DockerEngine(cli=self.config.docker_cli)

    @cached_property
    def environments(self) -> Environments:
        """The environments registered in this workspace."""
        return Environments(self)

    @cached_property
    def runs(self) -> Runs:
        """The runs of this workspace."""
        from mlmagic.run.run import Runs

        return Runs(self)

    @cached_property
    def models(self) -> Models:
        """The model registry of this workspace."""
        from mlmagic.models import Models

        return Models(self)

    @cached_property
    def services(self) -> Services:
        """The services (deployed models) of this workspace."""
        from mlmagic.deploy.service import Services

        return Services(self)

    @cached_property
    def computes(self) -> Computes:
        """The computes (Ray clusters) runs can be sent to with ``compute=NAME``."""
        from mlmagic.computes import Computes

        return Computes(self)

    def deploy(self, name: str, **options: Any) -> Service:
        """Serve registered model(s) from a container; return the healthy service.

        Options: ``models`` (``["name:version", ...]``), ``entry_script``, ``environment``,
        ``source_dir``, ``port``, ``host``, ``workers``, ``auth``, ``gpus``, ``memory``,
        ``cpus``, ``compute``, ``publish_host``. See
        :meth:`mlmagic.deploy.service.Services.deploy`.
        """
        from mlmagic.events import drain

        return drain(self.services.deploy(name, **options))

    def submit(self, script: str | None, environment: str | Environment, **options: Any) -> Run:
        """Run a training script in a container of ``environment``; return at once.

        Options: ``args``, ``source_dir``, ``experiment``, ``name``, ``tags``, ``gpus``
        (``none``, ``all``, ``auto``, a count or ids), ``data`` (name → folder, mounted
        read-only), ``shm_size``, ``memory``, ``cpus``, ``timeout`` (seconds),
        ``script_text`` (run this text instead of a file) and, for a ``.ipynb`` notebook,
        ``parameters``. See :func:`mlmagic.run.run.submit`.
        """
        from mlmagic.run.run import submit

        return submit(self, script, environment, **options)

    def path(self, *parts: str) -> Path:
        """A path inside the workspace folder."""
        return self.root.joinpath(*parts)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
