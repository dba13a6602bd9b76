"""Where a run's script executes: a container (``docker``) or a process (``local``).

An executor starts the script of a prepared run and answers for it by a *handle* (a
container id, or ``local:<pid>:<start time>``) that is stored with the run, so any
process can look at, stop or finalise the run later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from mlmagic.engine.base import ContainerState

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["DockerExecutor", "Executor", "executor_for"]


class Executor(ABC):
    """Starts and answers for the script of a run."""

    @abstractmethod
    def gpu_problem(self) -> str | None:
        """``None`` when GPUs can be given, else what is missing."""

    @abstractmethod
    def start(self, ws: Workspace, record: dict[str, Any], env: Environment, gpus: object) -> str:
        """Start the run's script; return its handle. Raises an MlmagicError on failure."""

    @abstractmethod
    def state(self, handle: str) -> ContainerState | None:
        """The state of what the handle names; ``None`` once it is gone."""

    @abstractmethod
    def stop(self, handle: str, timeout: float = 10) -> None:
        """Ask it to stop (SIGTERM), then kill it after ``timeout`` seconds."""

    @abstractmethod
    def remove(self, handle: str) -> None:
        """Remove what is left of it after it ended."""


class DockerExecutor(Executor):
    """Runs in a container of the environment's image."""

    def __init__(self, ws: Workspace) -> None:
        self._engine = ws.engine

    def gpu_problem(self) -> str | None:
        return self._engine.gpu_problem()

    def start(self, ws: Workspace, record: dict[str, Any], env: Environment, gpus: object) -> str:
        from mlmagic.run.docker import container_spec

        assert env.image is not None
        return self._engine.start(container_spec(ws, record, env.image, gpus))

    def state(self, handle: str) -> ContainerState | None:
        return self._engine.state(handle)

    def stop(self, handle: str, timeout: float = 10) -> None:
        self._engine.stop(handle, timeout=timeout)

    def remove(self, handle: str) -> None:
        self._engine.remove(handle)


def executor_for(ws: Workspace, target: str) -> Executor:
    """The executor of a target."""
    if target == "local":
        from mlmagic.run.process import ProcessExecutor

        return ProcessExecutor()
    return DockerExecutor(ws)
