"""``azureml.core.container_registry``: a private registry for an environment's base image."""

from __future__ import annotations

from mlmagic.azureml.core.environment_sections import ContainerRegistry

__all__ = ["ContainerRegistry"]
