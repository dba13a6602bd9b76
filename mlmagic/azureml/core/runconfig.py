"""``azureml.core.runconfig``: how a run is configured, as Azure ML's SDK spells it.

The three distributed configurations are mlmagic's own (:mod:`mlmagic.distributed`),
which take Azure's keyword names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlmagic.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from mlmagic.distributed.config import Distribution

__all__ = [
    "DockerConfiguration",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "RunConfiguration",
    "TensorflowConfiguration",
]


@dataclass
class DockerConfiguration:
    """Whether the run uses a container, and its shared-memory size.

    ``use_docker=False`` runs on mlmagic's local target (a virtual environment and a
    process) instead of a container; ``arguments`` are not passed to the engine.
    """

    use_docker: bool | None = True
    shm_size: str | None = None
    shared_volumes: bool | None = True
    arguments: list[str] | None = None


class RunConfiguration:
    """What a run needs besides its script: environment, compute, layout, Docker."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: Any = None,
        _history_enabled: Any = None,
        _path: Any = None,
        _name: Any = None,
        command: Any = None,
    ) -> None:
        from mlmagic.azureml.core.environment import Environment

        self.script = script
        self.arguments = list(arguments or [])
        self.target: Any = "local"
        self.environment: Any = Environment("default-environment")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.node_count = 1
        self.docker: DockerConfiguration | None = DockerConfiguration()
        self.distributed: Distribution | None = None
        self.max_run_duration_seconds: int | None = None
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
