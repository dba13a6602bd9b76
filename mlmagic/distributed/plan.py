"""The plan of a gang: which node runs which ranks with which variables.

The plan is made on the host when the run starts, written to ``system/gang.json`` and
read by the node launcher (``mlmagic_gang.py``) on every node, so the launcher stays a
small stdlib program that does what the plan says. The same plan serves the docker target
(hosts are container names) and the local target (every host is 127.0.0.1).

The PyTorch variables are exactly those ``torchrun`` gives each worker (its local elastic
agent's worker environment), with a static rendezvous: ``TORCHELASTIC_USE_AGENT_STORE`` is
``False`` because no agent hosts a store, so rank 0 creates the ``TCPStore`` on
``MASTER_ADDR:MASTER_PORT`` and the others connect to it, as ``init_process_group``'s
``env://`` does. ``NODE_RANK`` (Azure ML's name for ``GROUP_RANK``) is added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlmagic.distributed.config import Distribution

__all__ = ["MASTER_PORT", "TF_PORT", "GangNode", "GangProcess", "plan_nodes", "write_plan"]

#: The rendezvous port of node 0 in a container (torchrun's default).
MASTER_PORT = 29500
#: The port of each TensorFlow task in a container (TensorFlow's examples use 2222).
TF_PORT = 2222


@dataclass(frozen=True)
class GangProcess:
    """One process of a node: its global rank, the label its log lines carry, its
    variables."""

    rank: int
    label: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GangNode:
    """One node: ``role`` is ``run`` (start ``procs``), ``mpirun`` (node 0 of an MPI
    gang) or ``agent`` (the other MPI nodes: serve ``mpirun``'s remote launches).
    ``primary`` nodes decide the end: the run is over when they all ended (TensorFlow's
    parameter servers and MPI's agents never end on their own)."""

    index: int
    host: str
    role: str
    primary: bool
    procs: tuple[GangProcess, ...] = ()


def plan_nodes(
    dist: Distribution,
    run_id: str,
    hosts: Sequence[str],
    ports: Sequence[int],
    *,
    error_dir: str,
) -> list[GangNode]:
    """The nodes of ``dist``.

    Parameters
    ----------
    dist
        The layout.
    run_id
        ``TORCHELASTIC_RUN_ID``.
    hosts
        Each node's host name, as the others reach it.
    ports
        PyTorch: ``[MASTER_PORT]``; TensorFlow: one port per task; MPI: the agents' port.
    error_dir
        Where ``TORCHELASTIC_ERROR_FILE`` of each rank goes (seen from the node).
    """
    if dist.framework == "tensorflow":
        return _tensorflow(dist, hosts, ports)
    if dist.framework == "mpi":
        return [
            GangNode(index, host, "mpirun" if index == 0 else "agent", primary=index == 0)
            for index, host in enumerate(hosts)
        ]
    local = dist.procs_per_node
    base = {
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(ports[0]),
        "WORLD_SIZE": str(dist.world_size),
        "LOCAL_WORLD_SIZE": str(local),
        "GROUP_WORLD_SIZE": str(dist.nodes),
        "ROLE_WORLD_SIZE": str(dist.world_size),
        "ROLE_NAME": "default",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_RUN_ID": run_id,
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    }
    if dist.backend:
        base["MLMAGIC_DIST_BACKEND"] = dist.backend
    if local > 1:
        # torchrun's default, so that the processes of a node do not oversubscribe it.
        base["OMP_NUM_THREADS"] = "1"
    nodes = []
    for index, host in enumerate(hosts):
        procs = []
        if dist.launcher == "mlmagic":
            for local_rank in range(local):
                rank = index * local + local_rank
                env = {
                    **base,
                    "RANK": str(rank),
                    "MLMAGIC_RANK": str(rank),
                    "LOCAL_RANK": str(local_rank),
                    "GROUP_RANK": str(index),
                    "NODE_RANK": str(index),
                    "ROLE_RANK": str(rank),
                    "TORCHELASTIC_ERROR_FILE": f"{error_dir}/error-{rank}.json",
                }
                procs.append(GangProcess(rank, f"rank {rank}", env))
        nodes.append(GangNode(index, host, "run", primary=True, procs=tuple(procs)))
    return nodes


def _tensorflow(dist: Distribution, hosts: Sequence[str], ports: Sequence[int]) -> list[GangNode]:
    # With a chief, task 0 is the chief and the other workers count from 0 after it.
    first = [("chief", 0)] if dist.chief else []
    tasks = first + [("worker", i) for i in range(dist.workers - len(first))]
    tasks += [("ps", j) for j in range(dist.parameter_servers)]
    cluster: dict[str, list[str]] = {}
    for (kind, _), host, port in zip(tasks, hosts, ports, strict=True):
        cluster.setdefault(kind, []).append(f"{host}:{port}")
    nodes = []
    for index, ((kind, number), host) in enumerate(zip(tasks, hosts, strict=True)):
        config = {"cluster": cluster, "task": {"type": kind, "index": number}}
        env = {"TF_CONFIG": json.dumps(config), "MLMAGIC_RANK": str(index)}
        process = GangProcess(index, f"{kind} {number}", env)
        nodes.append(GangNode(index, host, "run", primary=kind != "ps", procs=(process,)))
    return nodes


def write_plan(
    path: Path,
    dist: Distribution,
    nodes: Sequence[GangNode],
    *,
    command: Sequence[str],
    log: str,
    exits: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the plan the node launchers read.

    Parameters
    ----------
    command
        What each process runs after the launcher's own Python: ``-u script args``.
    log
        The run's one log file, seen from the nodes.
    exits
        The folder for each rank's exit record, seen from the nodes.
    extra
        More settings for the launcher (MPI's agent port).
    """
    plan = {
        "framework": dist.framework,
        "launcher": dist.launcher,
        "nodes_count": dist.nodes,
        "procs_per_node": dist.procs_per_node,
        "command": list(command),
        "log": log,
        "exits": exits,
        "nodes": [asdict(node) for node in nodes],
        **(extra or {}),
    }
    path.write_text(json.dumps(plan, indent=1))
