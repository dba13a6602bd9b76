"""The files a scoring server runs from, laid out once for every target.

::

    lib/mlmagic_serve/              the scoring server (:mod:`mlmagic.serve`)
    lib/azureml/                    azureml.core's Model.get_model_path for Azure's scripts
    models/<name>/<version>/...     each model version's files
    app/                            the entry script's source folder, copied like a
                                    run's snapshot (ignore files honoured)

The Docker target makes this the build context of the inference image (adding its
Dockerfile); the local target serves from it in place.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from mlmagic.azureml.shim import SHIM
from mlmagic.exceptions import DeployError
from mlmagic.models import Model
from mlmagic.run.snapshot import snapshot

__all__ = ["SERVE_REQUIREMENTS", "copy_app", "model_subdir", "stage_inference"]

#: What the scoring server needs beside the user's packages: uvicorn to run it, and
#: inference-schema, whose decorators Azure ML scoring scripts import without listing it
#: (Azure's serving image has it too; a version the user pins wins).
SERVE_REQUIREMENTS = ("uvicorn[standard]>=0.30", "inference-schema>=1.7")
_SERVE_SOURCE = Path(__file__).resolve().parent.parent / "serve"


def model_subdir(models: Sequence[str]) -> str:
    """``AZUREML_MODEL_DIR`` relative to ``models/``: one model's folder, or the root of
    several. ``models`` are ``name:version`` references."""
    if len(models) == 1:
        name, _, version = models[0].partition(":")
        return f"{name}/{version}"
    return ""


def copy_app(
    source_dir: Path, dest: Path, entry_script: str, *, exclude: Sequence[Path] = ()
) -> None:
    """Copy the entry script's folder as a run's snapshot is copied; check the script made it.

    Raises
    ------
    DeployError
        The folder's ignore rules leave the entry script out.
    """
    info = snapshot(source_dir, dest, exclude=exclude)
    if not (dest / entry_script).is_file():
        rules = info.ignore_file.name if info.ignore_file else "the ignore rules"
        raise DeployError(
            f"{entry_script} is left out of the copy of {source_dir} by {rules}: change that "
            "file, or add a .mlignore (used instead of .amlignore and .gitignore)."
        )


def stage_inference(
    dest: Path,
    *,
    models: Sequence[Model],
    source_dir: Path,
    entry_script: str,
    exclude: Sequence[Path] = (),
) -> None:
    """Write the server, the models and the code into the new folder ``dest``."""
    shutil.copytree(
        _SERVE_SOURCE, dest / "lib" / "mlmagic_serve", ignore=shutil.ignore_patterns("__pycache__")
    )
    # A scoring script written for Azure calls azureml.core's Model.get_model_path with
    # nothing installed (an image with the real SDK keeps it: see the shim's __init__).
    shutil.copytree(SHIM, dest / "lib" / "azureml", ignore=shutil.ignore_patterns("__pycache__"))
    for model in models:
        shutil.copytree(model.folder, dest / "models" / model.name / str(model.version))
    (dest / "models").mkdir(exist_ok=True)
    copy_app(source_dir, dest / "app", entry_script, exclude=exclude)
