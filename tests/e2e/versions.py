"""The JupyterLab versions the browser tier runs against: the lowest declared, the newest.

mlmagic declares the JupyterLab it supports once, as its ``jupyterlab`` dependency in
``pyproject.toml`` (``>=LOW,<NEXT_MAJOR``). The newest is the JupyterLab installed with
the package (pip takes the newest the declaration allows). The lowest gets a virtual
environment of its own, made once per (version, Python) under
``~/.cache/mlmagic-test/jlab-<version>-py<X.Y>`` (``MLMAGIC_TEST_CACHE`` moves it) and
refreshed when ``pyproject.toml`` changes, holding that JupyterLab, a Notebook 7 that fits
it, and mlmagic (editable: this checkout), with mlmagic's built labextension linked in.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["declared_jupyterlab", "lowest_lab_python", "pyproject_text"]

REPO = Path(__file__).resolve().parents[2]


def pyproject_text() -> str:
    return (REPO / "pyproject.toml").read_text(encoding="utf-8")


def declared_jupyterlab() -> tuple[str, str]:
    """``(lowest, bound)`` of the ``jupyterlab`` runtime dependency, e.g. ``("4.0.2", "<5")``.

    Raises
    ------
    ValueError
        The dependency does not name both a lowest version and an upper bound.
    """
    from packaging.requirements import Requirement

    project = pyproject_text().split("[project]", 1)[1].split("\n[", 1)[0]
    listed = re.search(r"^dependencies = \[(.*?)^\]", project, re.S | re.M)
    assert listed, "pyproject.toml has no [project] dependencies"
    for item in re.findall(r'"([^"]+)"', listed.group(1)):
        requirement = Requirement(item)
        if requirement.name == "jupyterlab":
            lows = [s.version for s in requirement.specifier if s.operator == ">="]
            highs = [str(s) for s in requirement.specifier if s.operator == "<"]
            if len(lows) == 1 and len(highs) == 1:
                return lows[0], highs[0]
            raise ValueError(f"declare jupyterlab as >=LOW,<NEXT_MAJOR, not {item!r}")
    raise ValueError("pyproject.toml does not declare jupyterlab")


def lowest_lab_python(labextension: Path) -> Path:
    """The interpreter of the lowest declared JupyterLab's environment (made if needed),
    with ``labextension`` (mlmagic's built labextension folder) linked where it looks."""
    lowest, _ = declared_jupyterlab()
    python_version = "{}.{}".format(*sys.version_info[:2])
    cache = Path(os.environ.get("MLMAGIC_TEST_CACHE") or Path.home() / ".cache" / "mlmagic-test")
    venv = cache / f"jlab-{lowest}-py{python_version}"
    python = venv / "bin" / "python"
    stamp = venv / ".mlmagic-pyproject"
    # The editable install points at one checkout: a venv made for another (an earlier
    # clone, a worktree) would serve that checkout's server code beside this labextension.
    wanted = hashlib.sha256(f"{REPO.resolve()}\n{pyproject_text()}".encode()).hexdigest()
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(venv, ignore_errors=True)
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "-q", "--python", str(python),
             f"jupyterlab=={lowest}", "notebook>=7", "ipykernel>=6.29", "-e", str(REPO)],
            check=True,
            # The labextension is linked below, not built again.
            env={**os.environ, "SKIP_JUPYTER_BUILDER": "1"},
        )  # fmt: skip
        stamp.write_text(wanted)
    # The editable install brings only install.json: link the built extension instead.
    target = venv / "share" / "jupyter" / "labextensions" / "mlmagic"
    if target.is_symlink():
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(labextension, target_is_directory=True)
    return python
