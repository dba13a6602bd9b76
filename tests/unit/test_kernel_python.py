"""The local target makes venvs from the kernel's own Python, wherever that Python lives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlmagic
from mlmagic import Environment, Workspace
from mlmagic.build.interpreter import base_interpreter, choose_python
from mlmagic.config import MLMagic

KERNEL = "{}.{}".format(*sys.version_info[:2])


@pytest.fixture
def hidden_python_ws(tmp_path, monkeypatch):
    """A local workspace where uv can find no Python by itself: nothing on PATH, no
    active venv, no Python it manages, and no download allowed (so a fetch fails fast
    instead of taking minutes: the test checks nothing is fetched either way)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv-pythons"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    for name in ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "MLMAGIC_TARGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.chdir(tmp_path)
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


def test_a_venv_is_made_from_the_kernels_python_that_uv_cannot_see(hidden_python_ws):
    env = Environment.from_text("k", "six\n").build(hidden_python_ws, show_output=False)
    assert env.status == "ready" and env.venv
    made = subprocess.run(
        [str(Path(env.venv) / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(made).resolve() == Path(sys.base_prefix).resolve()
    assert any(p.startswith("six==") for p in env.packages)


def test_the_kernels_version_asked_by_name_is_the_kernels_python_too(hidden_python_ws):
    env = Environment.from_text("k", "six\n", python=KERNEL).build(
        hidden_python_ws, show_output=False
    )
    assert env.status == "ready"


def test_another_version_is_left_to_uv_which_may_fetch_it():
    other = "3.9" if KERNEL != "3.9" else "3.8"
    choice = choose_python(other)
    assert (choice.request, choice.local, choice.uv_environment()) == (other, False, {})
    mine = choose_python(None)
    assert mine.local and mine.version == KERNEL
    assert mine.uv_environment() == {"UV_PYTHON_DOWNLOADS": "never"}


def test_from_a_venv_the_base_interpreter_is_the_install_not_the_venv(tmp_path):
    venv = tmp_path / "kernel-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The module alone (it needs only the standard library): the venv has no packages.
    module = Path(mlmagic.__file__).parent / "build" / "interpreter.py"
    code = f"import runpy; print(runpy.run_path({str(module)!r})['base_interpreter']())"
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found != "None" and venv not in Path(found).parents
    assert Path(found).resolve() == Path(str(base_interpreter())).resolve()
