"""The ``azureml`` package mounted into run containers and local runs (stdlib only).

A folder named ``azureml`` beside ``mlmagic_run.py`` (``/mlmagic/lib/azureml``), so a
training script's ``from azureml.core import Run`` works with nothing installed in the
image. When the image has the real SDK, its modules win (see ``azureml/__init__.py``).
"""

from pathlib import Path

__all__ = ["SHIM"]

#: The folder mounted as ``/mlmagic/lib/azureml``.
SHIM = Path(__file__).resolve().parent / "azureml"
