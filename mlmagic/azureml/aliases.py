"""``import azureml.core`` resolving to :mod:`mlmagic.azureml.core`: a meta-path finder.

:func:`install` adds :class:`AzuremlAliases` to ``sys.meta_path`` unless the real Azure ML
SDK is importable, in which case it says so and leaves the real one in place. Each
``azureml.X`` is then the very module ``mlmagic.azureml.X`` (one object under two names,
so classes compare equal whichever way they were imported); the prefixes of
:data:`mlmagic.azureml.unsupported.INSTEAD` become modules that refuse their names in one
line.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

from mlmagic.azureml.unsupported import INSTEAD, unsupported_module

__all__ = ["AzuremlAliases", "install", "installed", "uninstall"]

_ALIAS = "azureml"
_OURS = "mlmagic.azureml"


class AzuremlAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``azureml`` and ``azureml.*`` as mlmagic's modules of the same names."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        if _feature(fullname) is None and _our_spec(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system returns whatever sys.modules holds once this returns, so the
        # placeholder module is swapped for mlmagic's own (its __spec__ left intact).
        name = module.__name__
        feature = _feature(name)
        real = (
            unsupported_module(name, feature)
            if feature is not None
            else importlib.import_module(_OURS + name[len(_ALIAS) :])
        )
        sys.modules[name] = real


def _feature(fullname: str) -> str | None:
    for prefix in INSTEAD:
        if fullname == prefix or fullname.startswith(prefix + "."):
            return prefix
    return None


def _our_spec(fullname: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(_OURS + fullname[len(_ALIAS) :])
    except ModuleNotFoundError:
        return None


def installed() -> bool:
    """Whether the aliases are in ``sys.meta_path``."""
    return any(isinstance(finder, AzuremlAliases) for finder in sys.meta_path)


def install(*, quiet: bool = False) -> bool:
    """Make ``azureml.*`` imports resolve to mlmagic's layer, unless the real SDK is here.

    Parameters
    ----------
    quiet
        Print nothing (the one line said when the real SDK is installed is still said).

    Returns
    -------
    bool
        ``True`` when ``azureml.*`` now means mlmagic's layer; ``False`` when the real
        Azure ML SDK is installed and was left alone (``mlmagic.azureml.core`` still
        works by its own name).
    """
    if installed():
        return True
    if _real_sdk():
        print(
            "mlmagic.azureml: the Azure ML SDK (azureml-core) is installed, so azureml.* is "
            "left to it; import from mlmagic.azureml.core to use mlmagic's layer instead."
        )
        return False
    # First: the path finder would otherwise load a second copy of our folders under
    # the azureml names (the parent's __path__ is ours).
    sys.meta_path.insert(0, AzuremlAliases())
    if not quiet:
        print("mlmagic.azureml: azureml.* now runs on mlmagic's local workspace.")
    return True


def uninstall() -> None:
    """Remove the aliases and forget the ``azureml.*`` modules they gave."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AzuremlAliases)]
    for name in [n for n in sys.modules if n == _ALIAS or n.startswith(_ALIAS + ".")]:
        del sys.modules[name]


def _real_sdk() -> bool:
    """Whether ``azureml.core`` is importable without our aliases."""
    if any(n == _ALIAS or n.startswith(_ALIAS + ".") for n in sys.modules):
        module = sys.modules.get(_ALIAS + ".core")
        return module is not None and not module.__name__.startswith(_OURS)
    try:
        return importlib.util.find_spec(_ALIAS + ".core") is not None
    except ModuleNotFoundError:
        return False
