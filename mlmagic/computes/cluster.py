"""A Ray cluster of containers on this engine (``%compute up`` / ``%compute down``).

The head and each worker are containers of the environment's image with ``ray[default]``
added at this client's Ray version, on top of the notebook layer (a derived image, built
once per environment version and Ray version), so a job runs in exactly the environment,
Dockerfile and apt steps included, and a notebook runs there as on the docker target.
The containers are safe by default:

- they share a network of their own; only the head's dashboard / Jobs API is published,
  on 127.0.0.1 at a free port;
- Ray's token authentication is on: the token is made here, kept in a 0600 file of the
  workspace and mounted read-only (never in an image, a label or an environment variable);
- the head offers no CPUs and each worker offers the :data:`WORKER_RESOURCE`, so a job's
  driver asks for it and lands on a worker;
- shared memory is sized for Ray's object store;
- the workspace folder ``computes/<name>/storage`` is mounted at :data:`CLUSTER_STORAGE`
  in every node: runs' outputs come back through it.

:func:`up` returns once every node has joined, or raises with the head's last lines.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Generator
from pathlib import Path, PurePosixPath

from mlmagic.build.context import write_build_secrets
from mlmagic.build.dockerfile import BUILD_SETTINGS_SECRET, CA_SECRET, UV_FILE
from mlmagic.build.image import logged_build
from mlmagic.build.notebook import build_notebook_image
from mlmagic.computes.client import RayJobs, client_version
from mlmagic.computes.record import Compute
from mlmagic.engine.base import BuildRequest, ContainerEngine, ContainerSpec, Mount, PortBinding
from mlmagic.events import BuildEvent
from mlmagic.exceptions import MlmagicError
from mlmagic.targets.labels import labels, workspace_id

__all__ = ["CLUSTER_STORAGE", "WORKER_RESOURCE", "down", "ray_image", "up"]

#: Where every node of a made cluster sees the compute's storage folder.
CLUSTER_STORAGE = "/mlmagic/storage"
#: The custom resource each worker offers; a run's driver asks for one unit of it.
WORKER_RESOURCE = "mlmagic_worker"
_WORKER_UNITS = 1000
_TOKEN = "/mlmagic/ray-token"
_DASHBOARD = 8265
_GCS = 6379
_HEAD_HOST = "ray-head"
# Ray's object store lives in /dev/shm: the store is kept below the shared memory given.
_SHM = "1g"
_OBJECT_STORE_BYTES = 400 * 1024 * 1024
_JOIN_TIMEOUT = 180.0
_LOG_TAIL = 15


def ray_image(
    engine: ContainerEngine, env_image: str, *, log_path: Path
) -> Generator[BuildEvent, None, str]:
    """Build the environment's image with the notebook layer and ``ray[default]`` added,
    yielding build events.

    The notebook layer is the docker target's own
    (:func:`~mlmagic.build.notebook.build_notebook_image`: nbclient and ipykernel in a
    folder of their own, so the environment's pins win): notebooks run on the cluster too.
    The generator returns the derived image's tag, named by the environment's image, the
    notebook layer and the Ray version; nothing is built when it exists.
    """
    version = client_version()
    base = yield from build_notebook_image(engine, env_image, log_path=log_path)
    tag = f"{env_image.replace(':', '-ray:', 1) if ':' in env_image else env_image + '-ray:latest'}"
    tag = f"{tag}-{version}-nb{base.rpartition(':')[2][:8]}"
    if engine.image_info(tag) is not None:
        return tag
    with tempfile.TemporaryDirectory(prefix="mlmagic-ray-image-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        from uv import find_uv_bin

        shutil.copy2(find_uv_bin(), context / UV_FILE)
        mounts = (
            f"--mount=type=secret,id={CA_SECRET},target=/run/secrets/{CA_SECRET} "
            f"--mount=type=secret,id={BUILD_SETTINGS_SECRET},"
            f"target=/run/secrets/{BUILD_SETTINGS_SECRET}"
        )
        # The environment's own interpreter gets Ray, so `ray start` and the jobs both run
        # in it; --break-system-packages lets an image's system Python take it too.
        (context / "Dockerfile").write_text(
            f"FROM {base}\n"
            "USER root\n"
            f"COPY {UV_FILE} /tmp/mlmagic-uv\n"
            f"RUN {mounts} . /run/secrets/{BUILD_SETTINGS_SECRET} && "
            'PY="$(command -v python || command -v python3)" && '
            '/tmp/mlmagic-uv pip install --no-cache --python "$PY" --break-system-packages '
            f"'ray[default]=={version}' && rm /tmp/mlmagic-uv\n"
        )
        request = BuildRequest(
            context_dir=context, tag=tag, secrets=write_build_secrets(Path(tmp) / "secrets")
        )
        yield from logged_build(engine, request, log_path, f"{tag} (Ray {version} added)")
    return tag


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _names(root: Path, name: str) -> tuple[str, str]:
    """The prefix of the containers of compute ``name``, and its network's name."""
    prefix = f"mlmagic-ray-{name}-{workspace_id(root)}"
    return prefix, f"{prefix}-net"


def up(
    engine: ContainerEngine,
    root: Path,
    name: str,
    *,
    image: str,
    environment: str,
    env_image: str,
    workers: int,
    folder: Path,
) -> Compute:
    """Start the head and ``workers`` workers of ``image``; return the compute once every
    node has joined.

    Parameters
    ----------
    folder
        The compute's folder in the workspace (token file and storage go there).

    Raises
    ------
    MlmagicError
        A node did not start or join in time; the message holds the head's last lines.
        What was started is removed again.
    """
    python = engine.run_once(image, ["sh", "-c", "command -v python || command -v python3"])
    python = python.strip().splitlines()[-1] if python.strip() else "python"
    ray = str(PurePosixPath(python).parent / "ray")
    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "storage"
    storage.mkdir(exist_ok=True)
    token_file = folder / "token"
    token_file.touch(mode=0o600)
    os.chmod(token_file, 0o600)
    token_file.write_text(secrets.token_hex(32))
    prefix, network = _names(root, name)
    tags = labels(root, "compute", name)
    port = _free_port()
    compute = Compute(
        name=name,
        kind="ray",
        address=f"http://127.0.0.1:{port}",
        token_file=str(token_file),
        storage=str(storage),
        cluster_storage=CLUSTER_STORAGE,
        python=python,
        environment=environment,
        env_image=env_image,
        image=image,
        network=network,
        workers=workers,
        notebooks=True,
        created=time.time(),
    )
    mounts = [Mount(token_file, _TOKEN, read_only=True), Mount(storage, CLUSTER_STORAGE)]
    settings = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": _TOKEN}
    common = f"--disable-usage-stats --object-store-memory={_OBJECT_STORE_BYTES} --block"
    engine.create_network(network, tags)
    try:
        engine.start(
            ContainerSpec(
                image=image,
                command=[
                    "sh",
                    "-c",
                    f"exec {shlex.quote(ray)} start --head --port={_GCS} "
                    f"--dashboard-host=0.0.0.0 --dashboard-port={_DASHBOARD} --num-cpus=0 "
                    f"{common}",
                ],
                labels={**tags, "mlmagic.role": "head"},
                environment=settings,
                mounts=mounts,
                name=f"{prefix}-head",
                hostname=_HEAD_HOST,
                network=network,
                shm_size=_SHM,
                ports=[PortBinding(_DASHBOARD, port)],
            )
        )
        # Workers start once the head answers: one that starts first may give up on it.
        _wait_joined(engine, root, compute, 1)
        resources = shlex.quote(f'{{"{WORKER_RESOURCE}": {_WORKER_UNITS}}}')
        for index in range(workers):
            engine.start(
                ContainerSpec(
                    image=image,
                    command=[
                        "sh",
                        "-c",
                        f"exec {shlex.quote(ray)} start --address={_HEAD_HOST}:{_GCS} "
                        f"--resources={resources} {common}",
                    ],
                    labels={**tags, "mlmagic.role": "worker"},
                    environment=settings,
                    mounts=mounts,
                    name=f"{prefix}-worker-{index + 1}",
                    hostname=f"ray-worker-{index + 1}",
                    network=network,
                    shm_size=_SHM,
                )
            )
        _wait_joined(engine, root, compute, workers + 1)
    except BaseException:
        down(engine, root, name)
        raise
    return compute


def _wait_joined(engine: ContainerEngine, root: Path, compute: Compute, wanted: int) -> None:
    """Return once ``wanted`` nodes are alive in the cluster; raise with the last lines of
    a node that exited, or of the head when they are too slow."""
    jobs = RayJobs(compute)
    deadline = time.monotonic() + _JOIN_TIMEOUT
    alive, last_error = 0, ""
    while time.monotonic() < deadline:
        for state in engine.find(labels(root, "compute", compute.name)):
            if not state.running:
                role = state.labels.get("mlmagic.role", "node")
                raise MlmagicError(
                    f"The {role} of the Ray cluster {compute.name!r} exited (code "
                    f"{state.exit_code}) while it started; its last lines:\n"
                    + _tail(engine, state.id)
                )
        try:
            alive = sum(1 for node in jobs.nodes() if node.get("state") == "ALIVE")
        except MlmagicError as exc:
            last_error = str(exc)  # the dashboard comes up a few seconds after the head
        else:
            if alive >= wanted:
                return
        time.sleep(1)
    said = f" (last answer: {last_error})" if alive == 0 and last_error else ""
    heads = engine.find({**labels(root, "compute", compute.name), "mlmagic.role": "head"})
    raise MlmagicError(
        f"The Ray cluster {compute.name!r} has {alive} of {wanted} nodes after "
        f"{_JOIN_TIMEOUT:g} s{said}; the head's last lines:\n"
        + (_tail(engine, heads[0].id) if heads else "(the head container is gone)")
    )


def _tail(engine: ContainerEngine, container: str) -> str:
    return "\n".join(list(engine.logs(container))[-_LOG_TAIL:])


def down(engine: ContainerEngine, root: Path, name: str) -> int:
    """Remove every container and the network of compute ``name``; the number removed
    (no error when nothing is left)."""
    found = engine.find(labels(root, "compute", name))
    for state in found:
        engine.stop(state.id, timeout=5)
        engine.remove(state.id)
    engine.remove_network(_names(root, name)[1])
    return len(found)
