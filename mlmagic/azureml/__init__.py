"""Azure ML SDK v1 code, run unchanged on mlmagic.

``from mlmagic.azureml.core import Workspace, Environment, ...`` always works; the
``azureml.*`` names resolve to this package once :func:`install` has run (or
``%load_ext mlmagic.azureml``) and the real SDK is not installed::

    import mlmagic.azureml
    mlmagic.azureml.install()
    from azureml.core import Workspace, Environment, Experiment, ScriptRunConfig

Inside a run, ``from azureml.core import Run; Run.get_context()`` needs nothing
installed: a small stdlib ``azureml`` package is put beside ``mlmagic_run``.
"""

from __future__ import annotations

from typing import Any

from mlmagic.azureml.aliases import install, installed, uninstall
from mlmagic.azureml.unsupported import NotSupportedLocally

__all__ = ["NotSupportedLocally", "install", "installed", "load_ipython_extension", "uninstall"]


def __getattr__(name: str) -> Any:
    # `from azureml import pipeline`: the parent is this package, so the cloud-only
    # modules are attributes here too (they raise on their first name used).
    from mlmagic.azureml.unsupported import INSTEAD, unsupported_module

    if f"azureml.{name}" in INSTEAD:
        return unsupported_module(f"azureml.{name}", f"azureml.{name}")
    raise AttributeError(f"module 'azureml' has no attribute {name!r}")


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mlmagic.azureml``: :func:`install`, and mlmagic's own magics too."""
    import mlmagic

    mlmagic.load_ipython_extension(shell)
    install()
