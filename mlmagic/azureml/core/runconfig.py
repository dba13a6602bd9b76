"""``azureml.core.runconfig``: how a run is configured, as Azure ML's SDK spells it.

The three distributed configurations are Azure's mutable objects (code sets
``config.worker_count = 2`` after making one); :func:`as_distribution` turns one into
mlmagic's :class:`~mlmagic.distributed.config.Distribution` through mlmagic's own
factories (:mod:`mlmagic.distributed`), which check the layout. mlmagic's factories'
results are taken as they are too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlmagic import distributed as layouts
from mlmagic.azureml.core.environment_sections import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE
from mlmagic.distributed.config import Distribution
from mlmagic.exceptions import RunError

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "DockerConfiguration",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "RunConfiguration",
    "TensorflowConfiguration",
    "as_distribution",
]


@dataclass
class MpiConfiguration:
    """MPI (Horovod): ``mpirun`` over ``node_count`` nodes, ``process_count_per_node`` each."""

    process_count_per_node: int = 1
    node_count: int = 1

    def to_distribution(self, node_count: int | None = None) -> Distribution:
        """The layout; ``node_count`` (an estimator's) wins over this object's."""
        return layouts.MpiConfiguration(self.process_count_per_node, node_count or self.node_count)


@dataclass
class TensorflowConfiguration:
    """TensorFlow's parameter-server layout: one process per worker and per server."""

    worker_count: int = 1
    parameter_server_count: int = 1

    def to_distribution(self, node_count: int | None = None) -> Distribution:
        """The layout (its nodes are the tasks; ``node_count`` does not change them)."""
        return layouts.TensorflowConfiguration(self.worker_count, self.parameter_server_count)


@dataclass
class PyTorchConfiguration:
    """PyTorch's ``torch.distributed``: ``process_count`` processes over ``node_count`` nodes."""

    communication_backend: str = "Nccl"
    process_count: int | None = None
    node_count: int = 1

    def to_distribution(self, node_count: int | None = None) -> Distribution:
        """The layout; ``node_count`` (an estimator's) wins over this object's."""
        return layouts.PyTorchConfiguration(
            self.communication_backend, self.process_count, node_count or self.node_count
        )


def as_distribution(value: Any, node_count: int | None = None) -> Distribution | None:
    """mlmagic's layout of ``value``: one of the classes above, a ``Distribution``
    (``mlmagic.MpiConfiguration(...)`` and its siblings), or ``None``.

    Raises
    ------
    RunError
        ``value`` is something else, or the layout cannot run.
    """
    if value is None or isinstance(value, Distribution):
        return value
    if isinstance(value, (MpiConfiguration, TensorflowConfiguration, PyTorchConfiguration)):
        return value.to_distribution(node_count)
    raise RunError(
        f"distributed_job_config takes MpiConfiguration(), TensorflowConfiguration() or "
        f"PyTorchConfiguration(), not {type(value).__name__}."
    )


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
        self.distributed: Any = None
        self.max_run_duration_seconds: int | None = None
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
