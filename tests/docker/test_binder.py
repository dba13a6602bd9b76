"""Binder's configuration (``binder/``), proven on this machine without Docker.

Binder builds its image with repo2docker: a Python of ``binder/runtime.txt``, then
``pip install -r binder/requirements.txt`` run in the repository's root, on top of its
own environment (JupyterLab, ipykernel). It has no Docker engine. This test does the same
in a fresh virtual environment (only PyPI is needed) and executes the quickstart in it,
with the Docker engine made unreachable and no target chosen, so mlmagic must fall back
to the local target by itself.

It is slow (a whole install), so it lives in the docker tier, which ``scripts/test
--fast`` leaves out; it does not use the engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.docker.test_notebooks import (
    LEFT_BEHIND,
    NO_DOCKER,
    NOTEBOOKS,
    REPO,
    all_text,
    check_quickstart,
    execute,
    kernel_env,
)

BINDER = REPO / "binder"
#: What repo2docker's own environment brings that a bare venv lacks (to run a kernel).
REPO2DOCKER_BASE = ["ipykernel"]


def _python_version() -> str:
    """The ``3.X`` of ``binder/runtime.txt`` (``python-3.X``)."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(3\.\d+)", runtime)
    assert match, f"binder/runtime.txt should read python-3.X, not {runtime!r}"
    return match.group(1)


def _run(*command: str | Path, cwd: Path, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_binder_installs_and_runs_the_quickstart_without_docker(tmp_path: Path) -> None:
    from uv import find_uv_bin

    venv = tmp_path / "venv"
    _run(find_uv_bin(), "venv", "--seed", "--python", _python_version(), venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # As repo2docker does it: pip, from the repository's root.
    _run(python, "-m", "pip", "install", "-r", BINDER / "requirements.txt", cwd=REPO)
    _run(python, "-m", "pip", "install", *REPO2DOCKER_BASE, cwd=REPO)
    installed = _run(python, "-c", "import mlmagic; print(mlmagic.__file__)", cwd=tmp_path)
    assert Path(installed.strip()).is_relative_to(venv), installed

    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    env = kernel_env(
        python=python,
        workspace=folder / ".mlmagic",
        updates={
            "DOCKER_HOST": NO_DOCKER,
            "MLMAGIC_TARGET": None,
            "MLMAGIC_CPU_BASE_IMAGE": None,
            "MLMAGIC_VENV_DIR": str(tmp_path / "venvs"),
        },
    )
    nb = execute(folder / "quickstart.ipynb", python=python, env=env)
    check_quickstart(nb, target="local")
    assert "no Docker engine answers" in all_text(nb)
