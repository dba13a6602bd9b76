"""What the host's NVIDIA driver offers, and whether a run's GPU request fits it.

The facts come from ``nvidia-smi``, as a person would check them: the driver version
and the newest CUDA it supports from the header of ``nvidia-smi`` ("Driver Version:
550.54.15 ... CUDA Version: 12.4"), and the GPUs from ``nvidia-smi -L``. The targets'
``gpu_problem`` calls :func:`gpu_preflight` before anything starts, so every failure is
one line that says what to install or change, instead of a container that dies with
"unsatisfied condition: cuda>=12.4" or a script that quietly runs on the CPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlmagic.build.context import resolve_base
from mlmagic.build.cuda import cuda_of_image
from mlmagic.build.cuda_table import version_key
from mlmagic.engine.base import GpuRequest
from mlmagic.exceptions import SpecError

if TYPE_CHECKING:
    from mlmagic.config import MLMagic
    from mlmagic.environment import Environment

__all__ = [
    "NO_NVIDIA_SMI",
    "DriverInfo",
    "EnvironmentCuda",
    "driver_problem",
    "environment_cuda",
    "gpu_preflight",
    "probe_driver",
    "request_problem",
]

#: The problem when the host has no NVIDIA tools at all.
NO_NVIDIA_SMI = (
    "No NVIDIA GPU is visible on this machine (nvidia-smi is not on PATH): install the "
    "NVIDIA driver, or run without --gpus (--gpus auto falls back to the CPU)."
)
_HEADER = re.compile(r"Driver Version:\s*([\d.]+)\s+CUDA Version:\s*(\d+)\.(\d+)")
_GPU_LINE = re.compile(r"^GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?$")
_TIMEOUT = 20


@dataclass(frozen=True)
class DriverInfo:
    """The host's NVIDIA driver and GPUs.

    Attributes
    ----------
    driver
        The driver version, e.g. ``"550.54.15"``.
    cuda
        The newest CUDA ``X.Y`` the driver supports.
    gpus
        The name of each GPU, by index.
    """

    driver: str
    cuda: str
    gpus: tuple[str, ...]


@dataclass(frozen=True)
class EnvironmentCuda:
    """The CUDA an environment needs of the driver, and how a problem names it."""

    cuda: str | None
    in_image: bool
    what: str


def environment_cuda(
    env: Environment | None, config: MLMagic, *, in_venv: bool = False
) -> EnvironmentCuda:
    """What ``env`` needs of the driver, read from the base its rules choose.

    A user's Dockerfile is read for a ``FROM nvidia/cuda:X.Y...`` line, and so is the
    Dockerfile a version was built from when today's settings would choose another base
    (the image is what was built). In a virtual environment (``in_venv``) there is no
    image: CUDA comes as wheels.
    """
    if env is None:
        return EnvironmentCuda(None, False, "the environment")
    what = f"the environment {env.ref}"
    if in_venv:
        try:
            cuda = resolve_base(env.spec, config).cuda
        except SpecError:
            cuda = None
        return EnvironmentCuda(cuda, False, what)
    if env.spec.dockerfile is not None:
        return EnvironmentCuda(cuda_of_image(env.spec.dockerfile), True, what)
    built = env.registered_dockerfile
    try:
        base = resolve_base(env.spec, config)
    except SpecError:
        base = None
    if base is None or (built is not None and f"FROM {base.image}\n" not in built):
        cuda = cuda_of_image(built or "")
        return EnvironmentCuda(cuda, cuda is not None, what)
    return EnvironmentCuda(base.cuda, base.cuda_in_image, f"{what} ({base.image})")


def _nvidia_smi(*args: str) -> str:
    """The output of ``nvidia-smi ARGS``; :class:`RuntimeError` with its first line."""
    try:
        done = subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(str(exc)) from exc
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        raise RuntimeError(said[0] if said else f"exit status {done.returncode}")
    return done.stdout


def probe_driver() -> DriverInfo | str:
    """The host's driver and GPUs, or the problem (one line) that keeps from knowing."""
    if shutil.which("nvidia-smi") is None:
        return NO_NVIDIA_SMI
    try:
        header = _HEADER.search(_nvidia_smi())
        listing = _nvidia_smi("-L")
    except RuntimeError as exc:
        return (
            f"nvidia-smi cannot talk to the NVIDIA driver ({exc}): install or reload the "
            "driver until nvidia-smi works, or run without --gpus."
        )
    if header is None:
        return (
            "nvidia-smi printed no 'Driver Version: ... CUDA Version: ...' line: check the "
            "NVIDIA driver's installation (nvidia-smi should print it), or run without --gpus."
        )
    gpus = tuple(
        match.group(2) for line in listing.splitlines() if (match := _GPU_LINE.match(line.strip()))
    )
    cuda = f"{header.group(2)}.{header.group(3)}"
    return DriverInfo(driver=header.group(1), cuda=cuda, gpus=gpus)


def driver_problem(
    info: DriverInfo, cuda: str | None, *, cuda_in_image: bool, what: str
) -> str | None:
    """Whether the driver can run ``what``, which needs CUDA ``cuda``.

    CUDA libraries in an image (``nvidia/cuda``) need a driver for that CUDA or newer:
    the container toolkit itself refuses an older one. Libraries that come as wheels
    (torch from PyPI) rely on CUDA's minor-version compatibility: any driver of the same
    major version runs them.
    """
    if cuda is None:
        return None
    have, need = version_key(info.cuda), version_key(cuda)
    if cuda_in_image and have < need:
        return (
            f"The NVIDIA driver {info.driver} supports CUDA up to {info.cuda}, but {what} is "
            f"built on CUDA {cuda}: install a driver for CUDA {cuda} or newer, or build the "
            f"environment for CUDA {info.cuda} or older (cuda: X.Y, or --cuda X.Y)."
        )
    if not cuda_in_image and have[0] < need[0]:
        return (
            f"The NVIDIA driver {info.driver} supports CUDA up to {info.cuda}, but {what} "
            f"brings CUDA {cuda} libraries, which need a CUDA {need[0]} driver: install a "
            f"newer driver, or pin a framework built for CUDA {have[0]}."
        )
    return None


def request_problem(info: DriverInfo, gpus: GpuRequest | None) -> str | None:
    """Whether the GPUs asked for (``--gpus``) exist on the host."""
    if gpus is None:
        return None
    have = len(info.gpus)
    listed = "; ".join(f"{i}: {name}" for i, name in enumerate(info.gpus)) or "none"
    if have == 0:
        return (
            "nvidia-smi -L lists no GPU: check that the GPU is seen by the driver, or run "
            "without --gpus."
        )
    if gpus.count is not None and gpus.count > have:
        return (
            f"{gpus.count} GPUs were asked for (--gpus {gpus.count}), but this machine has "
            f"{have} ({listed}): ask for {have} or fewer, or --gpus all."
        )
    missing = [d for d in gpus.device_ids if d.isdigit() and int(d) >= have]
    if missing:
        return (
            f"GPU {', '.join(missing)} was asked for (--gpus {','.join(gpus.device_ids)}), but "
            f"this machine has GPU 0 to {have - 1} ({listed}): choose among those."
        )
    return None


def gpu_preflight(
    gpus: GpuRequest | None, needs: EnvironmentCuda, *, need_nvidia_smi: bool = True
) -> str | None:
    """``None`` when the host can give ``gpus`` to an environment, else the problem.

    Parameters
    ----------
    gpus
        The GPUs asked for; ``None`` checks only the driver (``--gpus auto``).
    needs
        What the environment needs of the driver (:func:`environment_cuda`).
    need_nvidia_smi
        Without ``nvidia-smi`` on PATH, fail (a local process) or trust the caller's
        other checks (a Docker engine, which may be another machine's).
    """
    if not need_nvidia_smi and shutil.which("nvidia-smi") is None:
        return None
    info = probe_driver()
    if isinstance(info, str):
        return info
    return request_problem(info, gpus) or driver_problem(
        info, needs.cuda, cuda_in_image=needs.in_image, what=needs.what
    )
