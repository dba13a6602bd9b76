"""Distributed runs: one run across several nodes (PyTorch, TensorFlow, MPI/Horovod).

:mod:`.config` holds the layout a user asks for (Azure ML's three classes), :mod:`.plan`
what every node runs with which variables, :mod:`.resources` each node's GPUs and what the
environment must hold, and :mod:`.outcome` how a gang stands and how it ended. The gangs
themselves are the targets' concern (:mod:`mlmagic.targets.gang`,
:mod:`mlmagic.targets.gang_local`); the node launcher is ``mlmagic_gang.py``.
"""

from mlmagic.distributed.config import (
    Distribution,
    MpiConfiguration,
    PyTorchConfiguration,
    TensorflowConfiguration,
    distribution,
)

__all__ = [
    "Distribution",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "TensorflowConfiguration",
    "distribution",
]
