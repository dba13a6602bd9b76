"""What every container and process mlmagic starts carries: labels and the helper module.

Runs and services both use these, so they live with the targets rather than with either.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlmagic_gang
import mlmagic_mpi
import mlmagic_notebook
import mlmagic_run
from mlmagic.azureml.shim import SHIM as AZUREML_SHIM

__all__ = ["AZUREML_SHIM", "GANG_HELPERS", "HELPER", "NOTEBOOK_RUNNER", "labels", "workspace_id"]

#: The stdlib helper scripts import (and the launcher), mounted into every container and
#: run from its place by local processes.
HELPER = Path(mlmagic_run.__file__).resolve()
#: The runner of notebooks (``python -m mlmagic_notebook``), mounted next to :data:`HELPER`.
NOTEBOOK_RUNNER = Path(mlmagic_notebook.__file__).resolve()
#: The node launcher of distributed runs and its MPI roles, mounted next to :data:`HELPER`.
GANG_HELPERS = tuple(Path(str(module.__file__)).resolve() for module in (mlmagic_gang, mlmagic_mpi))


def labels(root: Path, kind: str, ident: str) -> dict[str, str]:
    """The labels of a container (or network) of the workspace at ``root``.

    Parameters
    ----------
    root
        The workspace folder.
    kind
        ``run``, ``service`` or ``compute``.
    ident
        The run's id or the service's name.
    """
    return {"mlmagic.workspace": str(root), "mlmagic.kind": kind, "mlmagic.id": ident}


def workspace_id(root: Path) -> str:
    """A short id of the workspace folder, so two folders never share an image tag."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:10]
