"""``azureml.train.dnn``: the framework estimators and their distributed layouts."""

from __future__ import annotations

from mlmagic.azureml.train.estimator import Estimator, Gloo, Mpi, Nccl, ParameterServer

__all__ = ["Chainer", "Gloo", "Mpi", "Nccl", "ParameterServer", "PyTorch", "TensorFlow"]


class TensorFlow(Estimator):
    """An estimator whose environment has ``tensorflow`` (``framework_version`` pins it)."""

    _framework = "tensorflow"


class PyTorch(Estimator):
    """An estimator whose environment has ``torch`` (``framework_version`` pins it)."""

    _framework = "torch"


class Chainer(Estimator):
    """An estimator whose environment has ``chainer``."""

    _framework = "chainer"
