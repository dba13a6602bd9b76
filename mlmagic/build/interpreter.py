"""Which Python a local environment is made from: the kernel's own, when it fits.

uv looks for "Python 3.X" on ``PATH`` and among the Pythons it manages. A kernel that
runs from a virtual environment, or from a pyenv or conda install that is not on
``PATH``, is invisible to that search, so uv would download a second copy of the very
Python already running (and fail offline). When the version asked for is the kernel's,
the venv is made from the kernel's base interpreter, by path, with downloads off.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PythonChoice", "base_interpreter", "choose_python"]


@dataclass(frozen=True)
class PythonChoice:
    """What ``uv venv --python`` is given, and whether uv may download a Python.

    Attributes
    ----------
    version
        The ``3.X`` version asked for.
    request
        uv's ``--python`` argument: an interpreter's path, or the version for uv to find.
    local
        ``True`` when ``request`` is an interpreter on this machine: nothing is fetched.
    """

    version: str
    request: str
    local: bool

    def uv_environment(self) -> dict[str, str]:
        """Variables for uv: downloads off when an interpreter is at hand."""
        return {"UV_PYTHON_DOWNLOADS": "never"} if self.local else {}


def base_interpreter() -> Path | None:
    """This process's Python outside any virtual environment, or ``None`` if not found.

    A venv's ``bin/python`` is only a link to it; on Python 3.10
    ``sys._base_executable`` still names the venv's link, so ``sys.base_prefix`` (the
    install the venv was made from) is looked at first.
    """
    major_minor = "python{}.{}".format(*sys.version_info[:2])
    candidates = [
        Path(sys.base_prefix) / "bin" / major_minor,
        Path(sys.base_prefix) / "bin" / "python3",
        Path(getattr(sys, "_base_executable", "") or sys.executable),
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def choose_python(version: str | None) -> PythonChoice:
    """The Python for a local environment of ``version`` (``None``: the kernel's).

    The kernel's base interpreter when its ``3.X`` is the one asked for; otherwise the
    version, for uv to find or fetch.
    """
    kernel = "{}.{}".format(*sys.version_info[:2])
    wanted = version or kernel
    if wanted == kernel:
        base = base_interpreter()
        if base is not None:
            return PythonChoice(wanted, str(base), local=True)
    return PythonChoice(wanted, wanted, local=False)
