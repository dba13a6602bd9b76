"""``azureml.core.model`` inside a service or run: ``Model.get_model_path`` (stdlib only).

A scoring script written for Azure finds its model with
``Model.get_model_path("digits")`` in ``init()``; in an mlmagic service the models are
under ``AZUREML_MODEL_DIR`` as Azure lays them out, and this answers from there. The
kernel side's :class:`mlmagic.azureml.core.model.Model` uses :func:`find_model_path` too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["Model", "ModelNotFoundError", "find_model_path"]


class ModelNotFoundError(LookupError):
    """The service was not deployed with the model asked for."""


def find_model_path(model_dir: Path, name: str, version: int | None) -> Path | None:
    """The model's file or folder under ``model_dir`` (``AZUREML_MODEL_DIR``), or ``None``.

    With one model that folder is the version's own (``<name>/<version>``); with several
    it holds ``<name>/<version>/`` for each, and no version means the newest.
    """
    folder: Path | None = None
    if (model_dir / name).is_dir():
        versions = sorted(
            (int(p.name) for p in (model_dir / name).iterdir() if p.name.isdigit()), reverse=True
        )
        chosen = version if version is not None else (versions[0] if versions else None)
        folder = model_dir / name / str(chosen)
    elif model_dir.parent.name == name and (version is None or model_dir.name == str(version)):
        folder = model_dir
    entries = sorted(folder.iterdir()) if folder is not None and folder.is_dir() else []
    if not entries:
        return None
    assert folder is not None  # else there are no entries
    # A version holds the one file or folder that was registered.
    return entries[0] if len(entries) == 1 else folder


class Model:
    """Azure's ``Model``, as far as a scoring script uses it: :meth:`get_model_path`."""

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """The path of the deployed model ``model_name`` (``version``: newest if ``None``).

        Raises
        ------
        ModelNotFoundError
            The service was not deployed with it, or there is no ``AZUREML_MODEL_DIR``.
        """
        model_dir = os.environ.get("AZUREML_MODEL_DIR")
        which = f"{model_name}:{version}" if version is not None else model_name
        if not model_dir:
            raise ModelNotFoundError(
                f"Model.get_model_path({which!r}) works in a service (AZUREML_MODEL_DIR is "
                "not set here): deploy the model with the service."
            )
        found = find_model_path(Path(model_dir), model_name, version)
        if found is None:
            raise ModelNotFoundError(
                f"This service was not deployed with the model {which} (AZUREML_MODEL_DIR is "
                f"{model_dir}): pass it in Model.deploy(..., models=[...])."
            )
        return str(found)
