"""``azureml.train``: the estimators (``azureml.train.estimator``, ``azureml.train.dnn``).

HyperDrive and AutoML (``azureml.train.hyperdrive``, ``azureml.train.automl``) need the
service: their names raise one line saying what to do instead.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    # `from azureml.train import hyperdrive` looks here, not through the aliases.
    from mlmagic.azureml.unsupported import INSTEAD, unsupported_module

    if f"azureml.train.{name}" in INSTEAD:
        return unsupported_module(f"azureml.train.{name}", f"azureml.train.{name}")
    raise AttributeError(f"module 'azureml.train' has no attribute {name!r}")
