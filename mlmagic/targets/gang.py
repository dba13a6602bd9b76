"""A distributed run on the docker target: one container per node, on a network of its own.

Every node is a container of the run's image with the same mounts as a single-node run,
on a user-defined bridge network made for the run. A container's host name is its name,
so the nodes find each other by name; nothing is published on the host. Containers and
network carry the run's labels (``mlmagic.workspace``, ``mlmagic.kind``, ``mlmagic.id``;
containers also ``mlmagic.node``), so the handle ``gang:<run id>`` lets any process find
the whole gang again, follow it, stop it and remove it.

The network takes the engine longer to make than a node's container, and nothing of it
depends on the run's environment: it is begun as the run's Preparing begins
(:meth:`DockerGang.begin`), so it is there when the containers are; a run that ends
before it starts has it removed (:meth:`DockerGang.abandon`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.distributed.outcome import NodeState, failure_message, gang_state, node_rows
from mlmagic.distributed.plan import MASTER_PORT, TF_PORT, plan_nodes, write_plan
from mlmagic.distributed.resources import host_gpu_count, split_gpus
from mlmagic.engine.base import ContainerSpec, ContainerState, GpuRequest, Mount
from mlmagic.exceptions import MlmagicError
from mlmagic.run.paths import CONTAINER, RunPaths
from mlmagic.targets.labels import GANG_HELPERS, labels

if TYPE_CHECKING:
    from mlmagic.records import RunRecord
    from mlmagic.targets.docker import DockerTarget

__all__ = ["PREFIX", "DockerGang", "gang_files", "is_gang", "parallel", "plan_primaries"]

#: How a gang's handle starts.
PREFIX = "gang:"
#: The port MPI's launch agents listen on inside their containers.
AGENT_PORT = 29400
_GANG_HELPER_IN = f"{CONTAINER.lib}/mlmagic_gang.py"
# The launcher is stdlib only: without site (-S) it starts sooner, before every rank.
_NODE = (
    "PY=$(command -v python || command -v python3) || "
    '{ echo "mlmagic: no python in the image" >&2; exit 127; }; '
    f'exec "$PY" -S {_GANG_HELPER_IN} node --plan {CONTAINER.in_system("gang.json")} --node "$1"'
)


def is_gang(handle: str) -> bool:
    """Whether a run's handle names a gang."""
    return handle.startswith(PREFIX)


def gang_files(paths: RunPaths) -> tuple[Path, Path]:
    """The plan file and the exit records' folder of a run."""
    return paths.system / "gang.json", paths.system / "gang"


def plan_primaries(plan_file: Path) -> list[tuple[int, bool, tuple[int, ...]]]:
    """``(node, primary, ranks)`` of each node in a written plan (empty when unreadable)."""
    import json

    try:
        plan = json.loads(plan_file.read_text())
        return [
            (n["index"], n["primary"], tuple(p["rank"] for p in n["procs"])) for n in plan["nodes"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def parallel(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(function, items))


class DockerGang:
    """The gangs of one docker target (its engine, its workspace's labels)."""

    def __init__(self, target: DockerTarget) -> None:
        self.target = target
        self.engine = target.engine
        self.root = target.context.root
        # The networks begun for runs still preparing in this process, by run id.
        self._networks: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def _labels(self, run_id: str) -> dict[str, str]:
        return labels(self.root, "run", run_id)

    def _paths(self, run_id: str) -> RunPaths:
        return RunPaths(self.root / "runs" / run_id)

    @staticmethod
    def network_name(run_id: str) -> str:
        """The run's network."""
        return f"mlmagic-run-{run_id}"

    @staticmethod
    def node_name(run_id: str, node: int) -> str:
        """Node ``node``'s container name, also its host name: at most 63 letters, digits
        and hyphens. A run id's ``_`` and ``.`` become ``-``: Open MPI 4 refuses a node name
        with ``_`` (and hangs), and takes what follows a ``.`` for a domain."""
        name = f"mlmagic-run-{re.sub('[^A-Za-z0-9-]', '-', run_id)}-n{node}"
        if len(name) > 63:
            name = f"mlmagic-run-{hashlib.sha256(run_id.encode()).hexdigest()[:16]}-n{node}"
        return name

    def begin(self, record: RunRecord) -> None:
        """Begin making the network of a run of several nodes, in the background.

        :meth:`start` takes it; a run that ends before starting must be given to
        :meth:`abandon`. A network that cannot be made is said by :meth:`start`.
        """
        dist = record.config.distributed
        if dist is None or dist.nodes < 2:
            return
        name, run_labels = self.network_name(record.id), self._labels(record.id)
        made: Future[None] = Future()

        def make() -> None:
            try:
                made.set_result(self.engine.create_network(name, run_labels))
            except BaseException as exc:  # given to whoever takes the network
                made.set_exception(exc)

        with self._lock:
            self._networks[record.id] = made
        threading.Thread(target=make, name=f"mlmagic-network-{record.id}", daemon=True).start()

    def abandon(self, record: RunRecord) -> None:
        """Remove the network of a run that ended before it started (any process may:
        one begun here is waited for first, so none is made after its removal)."""
        dist = record.config.distributed
        if dist is None or dist.nodes < 2:
            return
        with self._lock:
            made = self._networks.pop(record.id, None)
        if made is not None:
            made.exception()  # its outcome does not matter, only that it is known
        self.engine.remove_network(self.network_name(record.id))

    def _take_network(self, run_id: str) -> Future[None] | None:
        with self._lock:
            return self._networks.pop(run_id, None)

    def start(
        self,
        record: RunRecord,
        paths: RunPaths,
        image: str,
        gpus: GpuRequest | None,
        owner: tuple[int, int] | None = None,
    ) -> str:
        """Start every node; return ``gang:<run id>``. Nothing is left when one cannot start.

        ``owner`` (uid, gid): the image's own non-root user, who must write the exit
        records (the run's other folders were given to it already).
        """
        dist = record.config.distributed
        assert dist is not None
        hosts = [self.node_name(record.id, k) for k in range(dist.nodes)]
        ports = [TF_PORT] * dist.nodes if dist.framework == "tensorflow" else [MASTER_PORT]
        plan_file, exits = gang_files(paths)
        shutil.rmtree(exits, ignore_errors=True)
        exits.mkdir(parents=True)
        nodes = plan_nodes(dist, record.id, hosts, ports, error_dir=CONTAINER.in_system("gang"))
        write_plan(
            plan_file,
            dist,
            nodes,
            command=["-u", *record.config.argv],
            log=CONTAINER.in_system("output.log"),
            exits=CONTAINER.in_system("gang"),
            extra={"agent_port": AGENT_PORT, "master_port": MASTER_PORT, "run_id": record.id},
        )
        if owner is not None:
            os.chown(exits, *owner)
        per_node = split_gpus(gpus, dist.nodes, host_gpu_count() if gpus else None)
        token = secrets.token_hex(24)  # in the containers' environment only
        base = self.target.run_container(record, paths, image, None)
        # One node needs no network: the default bridge puts its own host name in its
        # /etc/hosts, which is all a single node resolves.
        network = self.network_name(record.id) if dist.nodes > 1 else None
        shm = record.config.shm_size or self.target.context.config.default_shm_size
        helpers = [
            Mount(path, f"{CONTAINER.lib}/{path.name}", read_only=True) for path in GANG_HELPERS
        ]
        specs = []
        for node, host in zip(nodes, hosts, strict=True):
            environment = {**base.environment, "MLMAGIC_NODE": str(node.index)}
            if dist.framework == "mpi":
                environment.update(
                    {"MLMAGIC_GANG_TOKEN": token, "MLMAGIC_GANG_PORT": str(AGENT_PORT)}
                )
            specs.append(
                replace(
                    base,
                    command=["sh", "-c", _NODE, "mlmagic-node", str(node.index)],
                    labels={**base.labels, "mlmagic.node": str(node.index)},
                    environment=environment,
                    mounts=[*base.mounts, *helpers],
                    name=host,
                    hostname=host,
                    network=network,
                    gpus=per_node[node.index],
                    shm_size=shm,
                )
            )
        begun = self._take_network(record.id)
        try:
            self._create_and_start(record.id, network, specs, begun)
        except MlmagicError:
            self.remove(PREFIX + record.id)
            raise
        return PREFIX + record.id

    def _create_and_start(
        self,
        run_id: str,
        network: str | None,
        specs: list[ContainerSpec],
        begun: Future[None] | None = None,
    ) -> None:
        """Create the network (unless ``begun`` is making it) and every container at
        once, then start them all.

        Every container exists before any starts, so a node that cannot be made leaves
        nothing running. Engines that resolve a container's network when it starts
        (Docker 20.10 does) take the containers while their network is still being made;
        one that refuses gets each container again once the network exists.
        """
        with ThreadPoolExecutor(max_workers=min(16, len(specs) + 1)) as pool:
            made = begun
            if network and made is None:
                made = pool.submit(self.engine.create_network, network, self._labels(run_id))

            def create(spec: ContainerSpec) -> str:
                try:
                    return self.engine.create(spec)
                except MlmagicError:
                    if made is None or made.exception() is not None:
                        raise
                    return self.engine.create(spec)  # the network exists now

            created = [pool.submit(create, spec) for spec in specs]
            if made is not None:
                made.result()
            ids = [future.result() for future in created]
            for future in [pool.submit(self.engine.start_created, cid) for cid in ids]:
                future.result()

    def _containers(self, handle: str) -> list[ContainerState]:
        return self.engine.find(self._labels(handle.removeprefix(PREFIX)))

    def state(self, handle: str) -> ContainerState | None:
        """One state for the gang (see :func:`~mlmagic.distributed.outcome.gang_state`)."""
        run_id = handle.removeprefix(PREFIX)
        plan_file, exits = gang_files(self._paths(run_id))
        by_node = {c.labels.get("mlmagic.node"): c for c in self._containers(handle)}
        nodes = [
            NodeState(index, primary, ranks, by_node.get(str(index)))
            for index, primary, ranks in plan_primaries(plan_file)
        ]
        return gang_state(handle, nodes, exits)

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        """One row per node with its state (see :func:`~mlmagic.distributed.outcome.node_rows`)."""
        plan_file, exits = gang_files(self._paths(handle.removeprefix(PREFIX)))
        states = {int(c.labels.get("mlmagic.node", -1)): c for c in self._containers(handle)}
        return node_rows(plan_file, exits, dict(states))

    def stop(self, handle: str, timeout: float = 10) -> None:
        """Stop every node at once (each launcher passes SIGTERM on to its ranks)."""
        running = [c.id for c in self._containers(handle) if c.running]
        parallel(lambda cid: self.engine.stop(cid, timeout=timeout), running)

    def remove(self, handle: str) -> None:
        """Stop what still runs (the gang ended: a rank failed, or it completed), then
        remove every container and the network."""
        containers = self._containers(handle)
        parallel(lambda c: self.engine.stop(c.id, timeout=3) if c.running else None, containers)
        parallel(lambda c: self.engine.remove(c.id), containers)
        self.engine.remove_network(self.network_name(handle.removeprefix(PREFIX)))

    def console(self, handle: str, lines: int) -> list[str]:
        """The last ``lines`` lines the nodes' containers printed outside the run's log
        (a node whose launcher could not start), each labelled with its node."""
        said = []
        for container in sorted(
            self._containers(handle), key=lambda c: int(c.labels.get("mlmagic.node", -1))
        ):
            node = container.labels.get("mlmagic.node", "?")
            said += [f"[node {node}] {line}" for line in self.engine.logs(container.id)]
        return said[-lines:]

    def exit_message(self, handle: str) -> str | None:
        """``rank K (node N) exited with code C`` and its last lines, when a rank failed."""
        paths = self._paths(handle.removeprefix(PREFIX))
        return failure_message(gang_files(paths)[1], paths.output_log)
