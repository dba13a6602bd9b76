"""The container of a run: image, command, mounts, environment, labels and resources."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlmagic_run
from mlmagic.engine.base import ContainerSpec, GpuRequest, Mount
from mlmagic.run.config import data_variable
from mlmagic.run.paths import CONTAINER, RunPaths

if TYPE_CHECKING:
    from mlmagic.workspace import Workspace

__all__ = ["HELPER", "container_spec", "labels"]

#: The stdlib helper scripts import (and the launcher), mounted into every container.
HELPER = Path(mlmagic_run.__file__).resolve()

# The image's python (our environments put one on PATH; a user's image may have python3).
_LAUNCH = (
    "PY=$(command -v python || command -v python3) || "
    '{ echo "mlmagic: no python in the image" >&2; exit 127; }; '
    f'exec "$PY" {CONTAINER.helper} exec --log {CONTAINER.in_system("output.log")} '
    f'--exit-file {CONTAINER.in_system("exit.json")} -- "$PY" -u "$@"'
)


def labels(ws: Workspace, kind: str, ident: str) -> dict[str, str]:
    """The labels every container mlmagic starts carries."""
    return {"mlmagic.workspace": str(ws.root), "mlmagic.kind": kind, "mlmagic.id": ident}


def container_spec(
    ws: Workspace, record: dict[str, Any], image: str, gpus: object
) -> ContainerSpec:
    """The container for a run record on ``image``."""
    config = record["config"]
    paths = RunPaths(ws.path("runs", record["id"]))
    mounts = [
        Mount(paths.snapshot, CONTAINER.src),
        Mount(paths.outputs, CONTAINER.outputs),
        Mount(paths.logs, CONTAINER.logs),
        Mount(paths.system, CONTAINER.system),
        Mount(HELPER, CONTAINER.helper, read_only=True),
    ]
    environment = {
        "MLMAGIC_RUN_ID": record["id"],
        "MLMAGIC_OUTPUT_DIR": CONTAINER.outputs,
        "MLMAGIC_METRICS_FILE": CONTAINER.in_system("metrics.jsonl"),
        "MLMAGIC_PARAMS_FILE": CONTAINER.in_system("params.json"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": CONTAINER.lib,
        "MLMAGIC_LOG_MAX_BYTES": str(ws.config.run_log_max_bytes),
    }
    for name, host_path in config.get("data", {}).items():
        target = f"{CONTAINER.data}/{name}"
        mounts.append(Mount(Path(host_path), target, read_only=True))
        environment[data_variable(name)] = target
    user = None
    if os.getuid() != 0:
        # Files the script writes stay the user's own on the host.
        user = f"{os.getuid()}:{os.getgid()}"
        environment["HOME"] = "/tmp"
    gpu = gpus if isinstance(gpus, GpuRequest) else None
    shm_size = config.get("shm_size") or (ws.config.default_shm_size if gpu else None)
    return ContainerSpec(
        image=image,
        command=["sh", "-c", _LAUNCH, "mlmagic-run", record["script"], *record["args"]],
        labels=labels(ws, "run", record["id"]),
        environment=environment,
        mounts=mounts,
        working_dir=CONTAINER.src,
        name=f"mlmagic-run-{record['id']}",
        gpus=gpu,
        shm_size=shm_size,
        memory=config.get("memory"),
        cpus=config.get("cpus"),
        user=user,
    )
