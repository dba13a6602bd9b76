"""The GPU preflight against a stand-in ``nvidia-smi`` that prints what a real one prints.

The stand-in (:mod:`tests.nvidia_smi`) is a real executable first on ``PATH``: the code
under test runs it as it would run the driver's own tool on a GPU machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlmagic import Environment, Workspace
from mlmagic.config import MLMagic
from mlmagic.engine.base import GpuRequest
from mlmagic.events import RunEventKind, Status
from mlmagic.targets.gpu import (
    NO_NVIDIA_SMI,
    DriverInfo,
    EnvironmentCuda,
    environment_cuda,
    gpu_preflight,
    probe_driver,
)
from tests import nvidia_smi

A100 = "NVIDIA A100-SXM4-80GB"


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH, for the stand-in; /bin stays for its shell and cat."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return folder


def _config() -> MLMagic:
    config = MLMagic()
    config.cpu_base_image = "python:{python}-slim"
    config.gpu_base_image = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    return config


def _env(text: str, version: int = 1) -> Environment:
    env = Environment.from_text("train", text)
    env.version = version
    return env


def test_the_driver_and_gpus_are_read_from_the_new_table(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, driver="550.54.15", cuda="12.4", names=[A100, A100], mig=True)
    assert probe_driver() == DriverInfo("550.54.15", "12.4", (A100, A100))


def test_the_driver_is_read_from_the_older_table(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, driver="470.182.03", cuda="11.4", names=["Tesla T4"])
    assert probe_driver() == DriverInfo("470.182.03", "11.4", ("Tesla T4",))


def test_no_nvidia_smi_and_a_driver_that_is_not_loaded_say_what_to_do(bin_dir: Path) -> None:
    assert probe_driver() == NO_NVIDIA_SMI
    nvidia_smi.install(bin_dir, loaded=False)
    problem = probe_driver()
    assert isinstance(problem, str) and "\n" not in problem
    assert problem.startswith("nvidia-smi cannot talk to the NVIDIA driver (NVIDIA-SMI has failed")
    assert "install or reload the driver" in problem


def test_more_gpus_than_the_host_has_are_refused(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, names=[A100])
    needs = EnvironmentCuda(None, False, "the environment train:1")
    problem = gpu_preflight(GpuRequest(count=2), needs)
    assert problem == (
        f"2 GPUs were asked for (--gpus 2), but this machine has 1 (0: {A100}): ask for 1 or "
        "fewer, or --gpus all."
    )
    assert "GPU 3 was asked for (--gpus 0,3)" in str(
        gpu_preflight(GpuRequest(device_ids=("0", "3")), needs)
    )
    assert gpu_preflight(GpuRequest(count=-1), needs) is None
    assert gpu_preflight(GpuRequest(count=1), needs) is None


def test_an_image_needs_a_driver_for_its_cuda(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, driver="535.104.05", cuda="12.2")
    newer = environment_cuda(_env("pip: [torch==2.4.1+cu124]\ngpu: true\n"), _config())
    problem = gpu_preflight(GpuRequest(count=-1), newer)
    assert problem == (
        "The NVIDIA driver 535.104.05 supports CUDA up to 12.2, but the environment train:1 "
        "(nvidia/cuda:12.4.1-runtime-ubuntu22.04) is built on CUDA 12.4: install a driver for "
        "CUDA 12.4 or newer, or build the environment for CUDA 12.2 or older (cuda: X.Y, or "
        "--cuda X.Y)."
    )
    older = environment_cuda(_env("pip: [torch==2.4.1+cu121]\ngpu: true\n"), _config())
    assert gpu_preflight(GpuRequest(count=-1), older) is None


def test_wheels_need_a_driver_of_their_cuda_major_only(bin_dir: Path) -> None:
    env = _env("pip: [torch==2.5.1]\ngpu: true\n")  # CUDA 12.4 as wheels
    nvidia_smi.install(bin_dir, driver="535.104.05", cuda="12.2")
    assert gpu_preflight(None, environment_cuda(env, _config())) is None
    nvidia_smi.install(bin_dir, driver="470.182.03", cuda="11.4", names=["Tesla T4"])
    problem = gpu_preflight(None, environment_cuda(env, _config(), in_venv=True))
    assert problem is not None and problem.startswith(
        "The NVIDIA driver 470.182.03 supports CUDA up to 11.4, but the environment train:1 "
        "brings CUDA 12.4 libraries, which need a CUDA 12 driver"
    )


def test_a_dockerfile_is_read_for_its_cuda_base(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, driver="535.104.05", cuda="12.2")
    env = _env("FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04\nRUN echo hi\n")
    needs = environment_cuda(env, _config())
    assert (needs.cuda, needs.in_image) == ("12.6", True)
    assert "built on CUDA 12.6" in str(gpu_preflight(None, needs))


def test_a_built_version_is_checked_against_the_base_it_was_built_on(bin_dir: Path) -> None:
    nvidia_smi.install(bin_dir, driver="535.104.05", cuda="12.2")
    env = _env("pip: [six]\ngpu: true\n")
    env.registered_dockerfile = "FROM nvidia/cuda:12.6.3-runtime-ubuntu22.04\nRUN true\n"
    needs = environment_cuda(env, _config())  # today's default would be CUDA 12.4
    assert (needs.cuda, needs.in_image) == ("12.6", True)
    env.registered_dockerfile = "FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04\nRUN true\n"
    assert environment_cuda(env, _config()).what.endswith(
        "(nvidia/cuda:12.4.1-runtime-ubuntu22.04)"
    )


def test_the_docker_target_trusts_a_remote_engine_without_local_tools(bin_dir: Path) -> None:
    needs = EnvironmentCuda("12.4", True, "the environment train:1")
    assert gpu_preflight(GpuRequest(count=8), needs, need_nvidia_smi=False) is None
    assert gpu_preflight(GpuRequest(count=8), needs) == NO_NVIDIA_SMI


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.chdir(tmp_path)
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


def test_a_local_run_is_refused_before_it_starts_and_auto_falls_back(
    ws: Workspace, tmp_path: Path, bin_dir: Path
) -> None:
    env = Environment.from_text("gpu-env", "pip: [six]\ncuda: '12.4'\n").build(
        ws, show_output=False
    )
    nvidia_smi.install(bin_dir, driver="470.182.03", cuda="11.4", names=["Tesla T4"])
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('trained')\n")

    run = ws.submit("train.py", env, source_dir=project, gpus="1").wait(timeout=120)
    assert run.status is Status.FAILED
    assert run.error is not None and "The NVIDIA driver 470.182.03 supports CUDA up to 11.4" in (
        run.error
    )
    assert "trained" not in run.logs() and run.record.handle is None  # nothing started

    auto = ws.submit("train.py", env, source_dir=project, gpus="auto").wait(timeout=120)
    assert auto.status is Status.COMPLETED and "trained" in auto.logs()
    notes = [e.build.message for e in auto.events(live=False) if e.kind is RunEventKind.BUILD]
    assert any(
        "running on the CPU (--gpus auto): The NVIDIA driver 470.182.03" in str(n) for n in notes
    )
