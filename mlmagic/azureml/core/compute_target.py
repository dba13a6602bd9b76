"""``azureml.core.compute_target``: where Azure's code imports ``ComputeTargetException``."""

from __future__ import annotations

from mlmagic.azureml.core.compute import ComputeTarget, ComputeTargetException

__all__ = ["ComputeTarget", "ComputeTargetException"]
