"""The GPU path on the real Docker engine, on a machine without a GPU.

The engine answers for itself (``docker info``: no nvidia runtime here); the host's
NVIDIA tools are stand-ins first on ``PATH`` (:mod:`tests.nvidia_smi`, and an
``nvidia-container-cli`` that only has to exist, as the engine's check looks for it),
so the preflight runs as it would on a GPU machine and refuses before any container.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlmagic import Environment
from mlmagic.engine.base import GpuRequest
from mlmagic.events import BuildEventKind, Status
from tests import nvidia_smi
from tests.conftest import BASE_IMAGE


@pytest.fixture
def toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for the NVIDIA tools, first on PATH."""
    folder = tmp_path / "nvidia-bin"
    folder.mkdir()
    cli = folder / "nvidia-container-cli"
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_without_the_toolkit_the_engine_says_so_first(workspace) -> None:
    if workspace.target("docker").gpu_problem() is None:
        pytest.skip("this engine can give GPUs")
    env = Environment.from_text("needs", "pip: [six]\ncuda: '12.4'\n")
    env.version = 1
    problem = workspace.target("docker").gpu_problem(env, GpuRequest(count=1))
    assert problem is not None and problem.startswith("The Docker engine cannot give GPUs")


def test_the_docker_target_checks_the_driver_and_the_count(workspace, toolkit: Path) -> None:
    nvidia_smi.install(toolkit, driver="535.104.05", cuda="12.2", names=["NVIDIA L4"])
    target = workspace.target("docker")
    env = Environment.from_text("needs", "pip: [six]\ncuda: '12.4'\n")
    env.version = 3
    assert target.gpu_problem(env, GpuRequest(count=2)) == (
        "2 GPUs were asked for (--gpus 2), but this machine has 1 (0: NVIDIA L4): ask for 1 "
        "or fewer, or --gpus all."
    )
    problem = target.gpu_problem(env, GpuRequest(count=1))
    assert problem is not None and problem.startswith(
        "The NVIDIA driver 535.104.05 supports CUDA up to 12.2, but the environment needs:3 "
        "(nvidia/cuda:12.4.1-runtime-ubuntu22.04) is built on CUDA 12.4"
    )
    fits = Environment.from_text("fits", "pip: [six]\ncuda: '12.2'\n")
    fits.version = 1
    assert target.gpu_problem(fits, GpuRequest(count=1)) is None


def test_a_gpu_run_is_refused_before_its_container_starts(
    workspace, toolkit: Path, tmp_path: Path
) -> None:
    nvidia_smi.install(toolkit, names=["NVIDIA L4"])
    env = Environment.from_text("plain", f"FROM {BASE_IMAGE}\n").build(workspace, show_output=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('trained')\n")
    run = workspace.submit("train.py", env, source_dir=project, gpus="2").wait(timeout=120)
    assert run.status is Status.FAILED
    assert run.error is not None and "2 GPUs were asked for (--gpus 2)" in run.error
    assert workspace.store.run(run.id).handle is None  # no container was made


def test_the_build_says_which_base_and_why_before_it_runs(workspace) -> None:
    env = Environment.from_text("chosen", f"base_image: {BASE_IMAGE}\ngpu: true\n")
    events = list(workspace.environments.build(env, rebuild=True))
    kinds = [e.kind for e in events]
    note = f"mlmagic base: {BASE_IMAGE}: named as the base image"
    assert kinds[0] is BuildEventKind.START
    assert events[1].kind is BuildEventKind.LOG and events[1].message == note
    built = workspace.environments.get("chosen")
    assert built.status == "ready" and built.base_reason == note.removeprefix("mlmagic base: ")
    assert built.log_path is not None and note in Path(built.log_path).read_text()
