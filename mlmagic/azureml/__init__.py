"""Azure ML SDK v1 code, run unchanged on mlmagic.

``from mlmagic.azureml.core import Workspace, Environment, ...`` always works; the
``azureml.*`` names resolve to this package once :func:`install` has run (or
``%load_ext mlmagic.azureml``) and the real SDK is not installed.
"""

from __future__ import annotations

__all__: list[str] = []
