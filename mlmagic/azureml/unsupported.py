"""The parts of Azure ML that have no local meaning, each refused in one line.

HyperDrive, AutoML, pipelines, datasets and image builds in a cloud registry need the
service. Their modules import (so a notebook's import cell runs), and the first name used
from one raises :class:`NotSupportedLocally` saying what to do instead.
"""

from __future__ import annotations

import types
from typing import Any

from mlmagic.exceptions import MlmagicError

__all__ = ["INSTEAD", "NotSupportedLocally", "instead_of", "unsupported_module"]

#: Module prefix (or feature) → what to do instead.
INSTEAD: dict[str, str] = {
    "azureml.train.hyperdrive": (
        "submit one run per setting in a loop (Experiment.submit with different "
        "arguments) and compare them with %runs"
    ),
    "azureml.train.automl": "train the candidate models yourself in a ScriptRunConfig run",
    "azureml.automl": "train the candidate models yourself in a ScriptRunConfig run",
    "azureml.pipeline": (
        "submit each step as its own run (Experiment.submit) and pass files between them "
        "through a Datastore folder"
    ),
    "azureml.data": (
        "upload files with ws.get_default_datastore().upload(...) and pass "
        "datastore.path(...).as_mount() as a script argument"
    ),
    "azureml.core.Dataset": (
        "upload files with ws.get_default_datastore().upload(...) and pass "
        "datastore.path(...).as_mount() as a script argument"
    ),
    "image_build_compute": "images are built on this machine's Docker engine: leave it out",
    "ContainerRegistry builds": (
        "images are built on this machine's Docker engine: call env.build(ws) or "
        "env.build_local(ws)"
    ),
}


class NotSupportedLocally(MlmagicError):
    """An Azure ML feature that needs the cloud service, used through mlmagic."""


def instead_of(feature: str, what: str | None = None) -> NotSupportedLocally:
    """The error for ``what`` (default: ``feature``), naming what to do instead."""
    return NotSupportedLocally(
        f"{what or feature} needs the Azure ML service, which mlmagic does not use: "
        f"{INSTEAD[feature]}."
    )


def unsupported_module(name: str, feature: str) -> types.ModuleType:
    """A module ``name`` whose every attribute raises :func:`instead_of` ``feature``.

    Its submodules resolve the same way (it has an empty ``__path__``), so
    ``from azureml.pipeline.steps import PythonScriptStep`` fails on the name, in one line.
    """
    module = types.ModuleType(name, f"{name}: not available locally ({INSTEAD[feature]}).")
    module.__path__ = []

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise instead_of(feature, f"{name}.{attribute}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module
