"""How a distributed run is laid out: :class:`Distribution`, and Azure ML's three classes.

A run asks for a layout with the classes Azure ML users know (:class:`PyTorchConfiguration`,
:class:`MpiConfiguration`, :class:`TensorflowConfiguration`, with Azure's keyword names)
or with the options ``--distributed FRAMEWORK --nodes N --procs-per-node P --workers W
--parameter-servers S --launcher torchrun``. Both become one :class:`Distribution`, the
field ``distributed`` of the run's :class:`~mlmagic.run.config.RunConfig`, checked when it
is made: a layout that cannot run is refused in one line before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmagic.exceptions import RunError

__all__ = [
    "FRAMEWORKS",
    "LAUNCHERS",
    "Distribution",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "TensorflowConfiguration",
    "distribution",
]

#: The frameworks ``--distributed`` takes.
FRAMEWORKS = ("mpi", "pytorch", "tensorflow")
#: Who starts a PyTorch node's processes: mlmagic's launcher, or ``torchrun``.
LAUNCHERS = ("mlmagic", "torchrun")


@dataclass(frozen=True)
class Distribution:
    """The layout of a distributed run.

    Attributes
    ----------
    framework
        ``pytorch``, ``mpi`` or ``tensorflow``.
    nodes
        Containers (or, on the local target, node launchers); for TensorFlow
        ``workers + parameter_servers``, one process each.
    procs_per_node
        Processes on each node (PyTorch, MPI); 1 for TensorFlow.
    workers, parameter_servers
        TensorFlow's tasks (0 for the other frameworks).
    chief
        TensorFlow: task 0 is the ``chief`` (in ``TF_CONFIG``'s cluster as ``chief``, one
        of the ``workers``), not ``worker 0``.
    launcher
        ``mlmagic`` (the node launcher sets torchrun's variables itself) or ``torchrun``.
    backend
        PyTorch's ``communication_backend`` as asked (``nccl``, ``gloo``); passed to the
        script as ``MLMAGIC_DIST_BACKEND``, which it may read when it calls
        ``init_process_group``.
    """

    framework: str
    nodes: int = 1
    procs_per_node: int = 1
    workers: int = 0
    parameter_servers: int = 0
    launcher: str = "mlmagic"
    backend: str | None = None
    chief: bool = False

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise RunError(
                f"--distributed {self.framework!r} is not a framework mlmagic knows: use "
                f"{', '.join(FRAMEWORKS)}."
            )
        for value, what in ((self.nodes, "--nodes"), (self.procs_per_node, "--procs-per-node")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RunError(f"{what} {value!r}: give a whole number of at least 1.")
        if self.launcher not in LAUNCHERS:
            raise RunError(
                f"--launcher {self.launcher!r} is not known: use {' or '.join(LAUNCHERS)}."
            )
        if self.launcher == "torchrun" and self.framework != "pytorch":
            raise RunError("--launcher torchrun is for --distributed pytorch only.")
        if self.framework == "tensorflow":
            if self.workers < 1 or self.parameter_servers < 0:
                raise RunError(
                    f"--workers {self.workers} --parameter-servers {self.parameter_servers}: "
                    "TensorFlow needs at least one worker and no fewer than 0 parameter servers."
                )
            if self.nodes != self.workers + self.parameter_servers or self.procs_per_node != 1:
                raise RunError(
                    "--distributed tensorflow runs one process per task: give --workers and "
                    "--parameter-servers, not --nodes or --procs-per-node."
                )
        elif self.chief:
            raise RunError(
                f"--chief is for --distributed tensorflow, not {self.framework}: leave it out."
            )
        elif self.workers or self.parameter_servers:
            raise RunError(
                f"--workers and --parameter-servers are for --distributed tensorflow, not "
                f"{self.framework}: give --nodes and --procs-per-node."
            )

    @property
    def world_size(self) -> int:
        """Processes in all."""
        return self.nodes * self.procs_per_node

    def describe(self) -> str:
        """One line for ``run.details`` and ``%runs``: ``pytorch 2 nodes x 2 processes``."""
        if self.framework == "tensorflow":
            workers = self.workers - self.chief
            chief = "a chief + " if self.chief else ""
            return (
                f"tensorflow {chief}{workers} worker{'s' * (workers != 1)} + "
                f"{self.parameter_servers} parameter server"
                f"{'s' * (self.parameter_servers != 1)}"
            )
        nodes = f"{self.nodes} node{'s' * (self.nodes != 1)}"
        procs = f"{self.procs_per_node} process{'es' * (self.procs_per_node != 1)}"
        launcher = " (torchrun)" if self.launcher == "torchrun" else ""
        return f"{self.framework} {nodes} x {procs}{launcher}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in the run's configuration."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        """Rebuild from :meth:`to_dict`."""
        return cls(**data)


def PyTorchConfiguration(
    communication_backend: str = "Nccl",
    process_count: int | None = None,
    node_count: int = 1,
) -> Distribution:
    """Azure ML's ``PyTorchConfiguration``: ``process_count`` processes in all over
    ``node_count`` nodes (``None``: one per node).

    Raises
    ------
    RunError
        ``process_count`` does not split evenly over the nodes, or a count is below 1.
    """
    total = node_count if process_count is None else process_count
    if isinstance(node_count, int) and node_count > 0 and isinstance(total, int):
        if total % node_count:
            raise RunError(
                f"process_count={total} does not split evenly over node_count={node_count}: "
                "give a multiple of the node count."
            )
        per_node = total // node_count
    else:
        per_node = total
    return Distribution(
        "pytorch",
        nodes=node_count,
        procs_per_node=per_node,
        backend=str(communication_backend).lower(),
    )


def MpiConfiguration(process_count_per_node: int = 1, node_count: int = 1) -> Distribution:
    """Azure ML's ``MpiConfiguration`` (Horovod): ``mpirun`` over ``node_count`` nodes."""
    return Distribution("mpi", nodes=node_count, procs_per_node=process_count_per_node)


def TensorflowConfiguration(
    worker_count: int = 1, parameter_server_count: int = 1, *, chief: bool = False
) -> Distribution:
    """Azure ML's ``TensorflowConfiguration``: one process per task, each with ``TF_CONFIG``.

    ``chief`` (mlmagic's own keyword; Azure's class has none) makes task 0 the cluster's
    ``chief`` instead of ``worker 0``: ``worker_count`` counts it.
    """
    return Distribution(
        "tensorflow",
        nodes=worker_count + parameter_server_count,
        workers=worker_count,
        parameter_servers=parameter_server_count,
        chief=bool(chief),
    )


def distribution(
    framework: str | None,
    *,
    nodes: int | None = None,
    procs_per_node: int | None = None,
    workers: int | None = None,
    parameter_servers: int | None = None,
    launcher: str | None = None,
    chief: bool | None = None,
) -> Distribution | None:
    """The layout the options ask for; ``None`` for a single-node run.

    Raises
    ------
    RunError
        An option that needs ``--distributed`` without it, or a layout that cannot run.
    """
    given = {
        "--nodes": nodes,
        "--procs-per-node": procs_per_node,
        "--workers": workers,
        "--parameter-servers": parameter_servers,
        "--launcher": launcher,
        "--chief": chief,
    }
    if framework is None:
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise RunError(
                f"{stray[0]} is for distributed runs: add --distributed pytorch, mpi or "
                "tensorflow, or leave it out."
            )
        return None
    framework = framework.strip().lower()
    if framework == "tensorflow":
        if nodes is not None or procs_per_node is not None:
            raise RunError(
                "--distributed tensorflow runs one process per task: give --workers and "
                "--parameter-servers, not --nodes or --procs-per-node."
            )
        worker_count = 1 if workers is None else workers
        ps_count = 0 if parameter_servers is None else parameter_servers
        return Distribution(
            "tensorflow",
            nodes=worker_count + ps_count,
            workers=worker_count,
            parameter_servers=ps_count,
            launcher=launcher or "mlmagic",
            chief=bool(chief),
        )
    return Distribution(
        framework,
        nodes=1 if nodes is None else nodes,
        procs_per_node=1 if procs_per_node is None else procs_per_node,
        workers=workers or 0,
        parameter_servers=parameter_servers or 0,
        launcher=launcher or "mlmagic",
        chief=bool(chief),
    )
