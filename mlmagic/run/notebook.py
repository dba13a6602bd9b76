"""Notebooks as runs, on the host: what is checked at submit and what the run executes.

A run whose script is a ``.ipynb`` file is executed by ``mlmagic_notebook`` (the runner,
beside ``mlmagic_run`` in the run's helper folder) with a kernel of the environment's own
Python. This module checks the notebook and its parameters before anything is recorded,
and says what the launcher runs (:func:`runner_argv`) and where the executed copy goes
(:func:`executed_copy`).

Parameters follow papermill's convention: a new cell tagged ``injected-parameters`` goes
after the cell tagged ``parameters``. Unlike papermill's ``-p``, a value that is not a
Python literal is refused rather than taken as a string: ``-p lr=1e-3x`` is a typo, not
the text ``"1e-3x"``. Text is written as a literal (``-p "optimizer='adam'"``) or with
``-r NAME=TEXT``, which takes it as it is.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mlmagic.exceptions import RunError

__all__ = [
    "RUNNER_MODULE",
    "check_notebook",
    "check_parameters",
    "default_parameters",
    "executed_copy",
    "is_notebook",
    "parse_parameters",
    "runner_argv",
]

#: The module the launcher runs for a notebook (``python -u -m mlmagic_notebook``).
RUNNER_MODULE = "mlmagic_notebook"


def is_notebook(script: str) -> bool:
    """Whether ``script`` names a notebook (a ``.ipynb`` file)."""
    return PurePosixPath(script).suffix.lower() == ".ipynb"


def executed_copy(script: str) -> str:
    """Where the executed copy of notebook ``script`` is written, relative to the run:
    ``outputs/<file name>``."""
    return f"outputs/{PurePosixPath(script).name}"


def runner_argv(script: str, parameters: Mapping[str, Any]) -> tuple[str, ...]:
    """What follows ``python -u`` to execute notebook ``script`` with ``parameters``."""
    argv = ["-m", RUNNER_MODULE, "--output", executed_copy(script)]
    if parameters:
        argv += ["--parameters", json.dumps(dict(parameters))]
    return (*argv, script)


def check_notebook(path: Path, shown: str) -> None:
    """Refuse a file that is not a Python notebook of nbformat 4, in one line.

    Parameters
    ----------
    path
        The notebook on disk.
    shown
        Its name in the user's words (the path they gave).

    Raises
    ------
    RunError
        It is not valid JSON, not a notebook of nbformat 4, or of another language.
    """
    try:
        nb = json.loads(path.read_bytes())
    except ValueError as exc:
        raise RunError(
            f"{shown} is not a notebook: it is not valid JSON ({exc}); open it in Jupyter "
            "and save it again."
        ) from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or nb.get("nbformat") != 4:
        found = nb.get("nbformat") if isinstance(nb, dict) else None
        raise RunError(
            f"{shown} is not a notebook of format 4 (nbformat {found!r}, cells "
            f"{'listed' if isinstance(cells, list) else 'missing'}): open and save it in "
            "JupyterLab to upgrade it."
        )
    metadata = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    language = (metadata.get("kernelspec") or {}).get("language") or (
        metadata.get("language_info") or {}
    ).get("name")
    if isinstance(language, str) and language.lower() not in ("python", "python3"):
        raise RunError(
            f"{shown} is a {language} notebook: mlmagic runs notebooks with the environment's "
            "Python kernel. Submit a Python notebook, or export this one to a script."
        )


def parse_parameters(
    items: Sequence[str] | Mapping[str, Any] = (), raw: Sequence[str] = ()
) -> dict[str, Any]:
    """``-p NAME=VALUE`` (a Python literal) and ``-r NAME=TEXT`` (taken as text) →
    ``{name: value}``; a mapping is checked as it is (:func:`check_parameters`).

    Raises
    ------
    RunError
        A parameter is not ``NAME=VALUE``, its name is not a Python identifier, or its value
        is not a literal a notebook's parameters can hold.
    """
    if isinstance(items, Mapping):
        parameters = dict(items)
    else:
        parameters = {}
        for item in items:
            name, value = _split(item, "-p")
            try:
                parameters[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise RunError(
                    f"-p {item}: {value!r} is not a Python literal (a number, a quoted "
                    f"string, True/False/None, a list or dict of them); write text quoted, "
                    f"-p \"{name}='{value}'\", or pass it as text with -r {name}={value}."
                ) from None
    for item in raw:
        name, value = _split(item, "-r")
        parameters[name] = value
    return check_parameters(parameters)


def check_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and values of ``parameters``; return them as a new dict.

    A value must survive JSON (the run's record keeps it): ``None``, ``bool``, ``int``,
    a finite ``float``, ``str``, and lists and string-keyed dicts of them. Tuples are
    kept as lists.

    Raises
    ------
    RunError
        A name is not a Python identifier, or a value is of another type.
    """
    checked = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or name == "_":
            raise RunError(
                f"Parameter name {name!r} is not a Python variable name: use letters, digits "
                "and '_', not starting with a digit."
            )
        checked[name] = _plain(name, value)
    return checked


def _plain(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RunError(f"Parameter {name} = {value!r}: give a finite number.")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(name, item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(name, item) for key, item in value.items()}
    raise RunError(
        f"Parameter {name} = {value!r}: a {type(value).__name__} cannot be kept with the run; "
        "use a number, a string, True/False/None, or a list or dict (string keys) of them."
    )


def _split(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise RunError(f"{flag} {item!r}: write it as NAME=VALUE, like {flag} lr=0.01.")
    return name.strip(), value.strip()


def default_parameters(path: Path) -> dict[str, str] | None:
    """The assignments of the notebook's cell tagged ``parameters``, name → the value's
    source text (``{"lr": "0.1"}``), for a form to start from; ``None`` without that cell.

    Only plain ``name = value`` lines are read; a cell that does not parse gives ``{}``.
    """
    check_notebook(path, path.name)
    nb = json.loads(path.read_bytes())
    for cell in nb["cells"]:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and "parameters" in tags:
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            try:
                tree = ast.parse(text)
            except SyntaxError:
                return {}
            found = {}
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target: ast.expr = node.targets[0]
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target = node.target
                else:
                    continue
                if isinstance(target, ast.Name) and node.value is not None:
                    found[target.id] = ast.get_source_segment(text, node.value) or ""
            return found
    return None
