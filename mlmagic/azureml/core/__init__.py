"""``azureml.core``: the names Azure ML SDK v1 code imports, mapped onto mlmagic."""

from __future__ import annotations

from typing import Any

from mlmagic.azureml.core.compute import ComputeTarget
from mlmagic.azureml.core.conda_dependencies import CondaDependencies
from mlmagic.azureml.core.container_registry import ContainerRegistry
from mlmagic.azureml.core.datastore import Datastore
from mlmagic.azureml.core.environment import Environment
from mlmagic.azureml.core.experiment import Experiment
from mlmagic.azureml.core.model import InferenceConfig, Model
from mlmagic.azureml.core.run import Run
from mlmagic.azureml.core.runconfig import RunConfiguration
from mlmagic.azureml.core.script_run_config import ScriptRunConfig
from mlmagic.azureml.core.webservice import Webservice
from mlmagic.azureml.core.workspace import Workspace

__all__ = [
    "ComputeTarget",
    "CondaDependencies",
    "ContainerRegistry",
    "Datastore",
    "Environment",
    "Experiment",
    "InferenceConfig",
    "Model",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "Webservice",
    "Workspace",
]


def __getattr__(name: str) -> Any:
    # Azure's cloud-only names: one line saying what to do instead, not AttributeError.
    from mlmagic.azureml.unsupported import instead_of

    if name in ("Dataset",):
        raise instead_of("azureml.core.Dataset", f"azureml.core.{name}")
    raise AttributeError(f"module 'azureml.core' has no attribute {name!r}")
