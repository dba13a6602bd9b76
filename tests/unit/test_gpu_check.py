"""``scripts/gpu-check`` on a machine without a GPU: its report says what is missing.

The script runs as a user would run it (a subprocess, from the checkout); the driver is
absent, then a stand-in ``nvidia-smi`` (:mod:`tests.nvidia_smi`) first on ``PATH``. No
Docker engine answers (``DOCKER_HOST`` points nowhere), so this stays in the unit tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import nvidia_smi

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check(tmp_path: Path, path: str) -> tuple[subprocess.CompletedProcess[str], str]:
    output = tmp_path / "gpu.md"
    environ = {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": str(ROOT),
        "DOCKER_HOST": "unix:///nonexistent/mlmagic-test.sock",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check"), "--write", "--output", str(output)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert output.read_text() == done.stdout  # the file holds exactly the report
    return done, done.stdout


@pytest.fixture
def plain_path(tmp_path: Path) -> str:
    """PATH without any NVIDIA tool: the shell and core tools only."""
    return os.pathsep.join(["/usr/bin", "/bin"])


def test_without_a_driver_the_report_says_what_is_missing(tmp_path: Path, plain_path) -> None:
    _, report = _gpu_check(tmp_path, plain_path)
    assert report.startswith("# GPU check\n")
    assert (
        "| NVIDIA driver | missing: No NVIDIA GPU is visible on this machine (nvidia-smi is "
        "not on PATH) |" in report
    )
    assert f"| Python | {sys.version.split()[0]} ({sys.executable}) |" in report
    assert "| Docker engine | missing: No Docker engine answers" in report
    assert "Not run: skipped: no NVIDIA GPU." in report
    missing = report.split("## Missing\n", 1)[1]
    assert "- an NVIDIA GPU and driver: No NVIDIA GPU is visible" in missing
    assert "- a Docker engine: the docker-target checks are skipped" in missing
    has_distributed = (ROOT / "mlmagic" / "distributed").is_dir()
    assert ("- distributed runs in this mlmagic" in missing) is not has_distributed


def test_with_a_driver_the_report_shows_it_and_what_else_is_missing(
    tmp_path: Path, plain_path
) -> None:
    bin_dir = tmp_path / "bin"
    nvidia_smi.install(bin_dir, driver="570.124.06", cuda="12.8", names=["NVIDIA H200"])
    _, report = _gpu_check(tmp_path, f"{bin_dir}{os.pathsep}{plain_path}")
    assert "| NVIDIA driver | 570.124.06 |" in report
    assert "| CUDA the driver supports | 12.8 |" in report
    assert "| GPUs | 0: NVIDIA H200 |" in report
    torch_row = next(line for line in report.splitlines() if line.startswith("| torch |"))
    try:
        import torch  # noqa: F401
    except ImportError:
        assert torch_row == f"| torch | missing: not installed for {sys.executable} |"
        assert f"Not run: skipped: torch is not installed for {sys.executable}." in report
    else:
        # A CPU build of torch cannot see the stand-in's GPU, and says so.
        assert "cannot see a GPU" in torch_row
        assert "here cannot see the GPU." in report
    assert "an NVIDIA GPU and driver" not in report
