"""``azureml.train``: the estimators (``azureml.train.estimator``, ``azureml.train.dnn``).

HyperDrive and AutoML (``azureml.train.hyperdrive``, ``azureml.train.automl``) need the
service: their names raise one line saying what to do instead.
"""

from __future__ import annotations

__all__: list[str] = []
