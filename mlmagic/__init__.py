"""mlmagic: environments, training runs and deployments on your own Docker engine.

In a notebook: ``%load_ext mlmagic``, then ``%%environment NAME``. From Python::

    from mlmagic import Environment, Workspace
    env = Environment.from_requirements("digits-env", "requirements.txt").build()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlmagic._version import __version__
from mlmagic.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from mlmagic.environment import Environment
from mlmagic.exceptions import (
    BuildError,
    ConflictError,
    DeployError,
    EngineError,
    MlmagicError,
    NotFoundError,
    RunError,
    SpecError,
)
from mlmagic.workspace import Workspace

if TYPE_CHECKING:
    from typing import Any

    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "BuildError",
    "ConflictError",
    "DeployError",
    "EngineError",
    "Environment",
    "MlmagicError",
    "MpiConfiguration",
    "NotFoundError",
    "PyTorchConfiguration",
    "RunError",
    "SpecError",
    "TensorflowConfiguration",
    "Workspace",
    "__version__",
    "load_ipython_extension",
]


def load_ipython_extension(shell: InteractiveShell) -> None:
    """``%load_ext mlmagic``: register the magics and the ``MLMagic`` settings."""
    from mlmagic.computes.magics import ComputeMagics
    from mlmagic.config import MLMagic, set_config
    from mlmagic.magics import MLMagics

    config = MLMagic(parent=shell)
    set_config(config)
    if config not in shell.configurables:
        shell.configurables.append(config)  # type: ignore[arg-type]
    shell.register_magics(MLMagics)
    shell.register_magics(ComputeMagics)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The Jupyter server extension (REST handlers for the side panel)."""
    return [{"module": "mlmagic.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the package (the side panel)."""
    return [{"src": "labextension", "dest": "mlmagic"}]
