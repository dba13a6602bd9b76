"""The README's first command, ``pip install .``, on a machine with Python and no Node.

The labextension is built during the install; Node comes from PyPI as a build
requirement, so a newcomer needs nothing but Python. Slow (a fresh virtual environment
and a JupyterLab build): marked ``install``, which ``scripts/test --fast`` leaves out
and the full ``scripts/test`` (CI) runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[2]
# What pip itself runs besides Python: a compiler is not needed (wheels), git is not.
_TOOLS = ("sh", "bash", "env", "uname", "ldconfig", "cat", "ls", "rm", "mkdir", "cp")


def _clone(destination: Path) -> None:
    """The working tree as a fresh clone has it: tracked and unignored files only (no
    prebuilt labextension, no node_modules)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _path_without_node(folder: Path, venv_bin: Path) -> str:
    """A PATH with the venv's scripts and a few system tools, and no node, npm or jlpm."""
    folder.mkdir()
    for tool in _TOOLS:
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    path = f"{venv_bin}{os.pathsep}{folder}"
    for tool in ("node", "npm", "jlpm", "yarn"):
        assert shutil.which(tool, path=path) is None, f"{tool} is still on the test's PATH"
    return path


def test_pip_install_without_node_builds_and_enables_the_labextension(tmp_path: Path) -> None:
    source = tmp_path / "mlmagic"
    _clone(source)
    assert not (source / "mlmagic" / "labextension").exists()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    environ = {
        "PATH": _path_without_node(tmp_path / "tools", bin_dir),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # The package index the developer's pip uses, if they set one.
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_INDEX", "PIP_EXTRA"))},
    }
    install = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", str(source)],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    listed = subprocess.run(
        [str(bin_dir / "jupyter"), "labextension", "list"],
        env=environ,
        capture_output=True,
        text=True,
    )
    # JupyterLab colours "enabled" and "OK" even into a pipe.
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert listed.returncode == 0, text
    lines = [x.split() for x in text.splitlines() if x.strip().startswith("mlmagic ")]
    assert lines and "enabled" in lines[0] and "OK" in lines[0], text
    built = json.loads((env_dir / "share/jupyter/labextensions/mlmagic/package.json").read_text())
    assert built["name"] == "mlmagic" and built["jupyterlab"]["_build"]["load"]
