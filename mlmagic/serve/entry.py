"""The user's entry script (``score.py``): loading it by path, calling ``init`` and ``run``.

The contract is Azure Machine Learning's: the script defines ``init()``, called once per
worker process before the first request (it loads the model), and ``run(raw_data)``,
called for every scoring request with the request body as a ``str``. The script finds its
model through the environment variables ``AZUREML_MODEL_DIR`` and ``MLMAGIC_MODEL_DIR``,
which the deployer sets (this module does not touch them).

As on Azure, the working directory while the script runs is the folder that holds it, and
that folder is on ``sys.path``, so the script can import modules and open files beside it
with relative paths.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .schema import RunSchema

__all__ = ["EntryScript", "EntryScriptError"]

#: Module name used when the script's own name is not a free, valid module name.
_FALLBACK_MODULE_NAME = "mlmagic_entry_script"


class EntryScriptError(Exception):
    """The entry script cannot be used: it is missing, or lacks ``init`` or ``run``."""


class EntryScript:
    """A scoring script loaded from a file, as a module.

    Parameters
    ----------
    path
        The script's path. Relative paths are resolved against the current directory
        when the object is made, before :meth:`load` changes it.

    Notes
    -----
    :meth:`load` changes the process's working directory and ``sys.path``: call it once
    per worker process, before :meth:`init`. :meth:`run` may be called from several
    threads at once, so the script's ``run`` should not mutate shared state unguarded.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.module: ModuleType | None = None
        self._init: Callable[[], Any] | None = None
        self._run: Callable[..., Any] | None = None
        #: Set by :meth:`load` when ``run`` is decorated with inference-schema.
        self.schema: RunSchema | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The script's file name, for messages and the OpenAPI title."""
        return self.path.name

    def load(self) -> ModuleType:
        """Import the script as a module, from its own folder.

        Returns
        -------
        ModuleType
            The imported module.

        Raises
        ------
        EntryScriptError
            When the file does not exist, or defines no callable ``init`` or ``run``.
        Exception
            Whatever executing the script's top level raises (a missing package, ...).
        """
        if not self.path.is_file():
            raise EntryScriptError(
                f"No entry script at {self.path}. Pass --entry or set MLMAGIC_ENTRY_SCRIPT "
                "to the path of a score.py that defines init() and run(raw_data)."
            )
        folder = str(self.path.parent)
        os.chdir(folder)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = self.path.stem
        if not module_name.isidentifier() or module_name in sys.modules:
            module_name = _FALLBACK_MODULE_NAME
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise EntryScriptError(f"{self.path} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(spec)
        # Registered before executing it so that dataclasses, pickle and typing can find
        # the classes the script defines by their module name.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        self._init = _function(module, "init", self.path)
        self._run = _function(module, "run", self.path)
        self.schema = RunSchema.of(self._run)
        self.module = module
        return module

    def init(self) -> None:
        """Call the script's ``init()``.

        Raises
        ------
        EntryScriptError
            When :meth:`load` has not been called.
        Exception
            Whatever ``init()`` raises.
        """
        if self._init is None:
            raise EntryScriptError(f"{self.name} is not loaded: call load() before init().")
        self._init()

    def run(self, raw_data: str) -> Any:
        """Call the script's ``run(raw_data)`` with a request body.

        A ``run`` decorated with inference-schema is called as Azure ML calls it: with
        the members of the JSON object as keyword arguments (see :mod:`.schema`).

        Parameters
        ----------
        raw_data
            The request body, decoded as UTF-8.

        Returns
        -------
        Any
            What ``run`` returned.

        Raises
        ------
        EntryScriptError
            When :meth:`load` has not been called.
        BadRequest
            A decorated ``run`` cannot be called with this body.
        Exception
            Whatever ``run`` raises.
        """
        if self._run is None:
            raise EntryScriptError(f"{self.name} is not loaded: call load() before run().")
        if self.schema is not None:
            return self._run(**self.schema.arguments(raw_data))
        return self._run(raw_data)


def _function(module: ModuleType, name: str, path: Path) -> Callable[..., Any]:
    """Return the module's callable ``name``, or say which function the script must define."""
    function = getattr(module, name, None)
    if not callable(function):
        signature = "init()" if name == "init" else "run(raw_data)"
        raise EntryScriptError(
            f"{path} defines no {signature} function. An entry script must define init(), "
            "which loads the model, and run(raw_data), which scores one request."
        )
    return function
