"""``azureml.core``: the names Azure ML SDK v1 code imports, mapped onto mlmagic."""

from __future__ import annotations

from mlmagic.azureml.core.model import InferenceConfig, Model
from mlmagic.azureml.core.webservice import Webservice
from mlmagic.azureml.core.workspace import Workspace

__all__ = ["InferenceConfig", "Model", "Webservice", "Workspace"]
