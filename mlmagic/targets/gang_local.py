"""A distributed run on the local target: one node launcher process per node on this host.

Every node's processes run on 127.0.0.1 (rendezvous on a free port), with the same
variables, log and gang semantics as in containers. MPI needs no launch agents here: every
slot is on this host, so ``mpirun`` starts its ranks itself. The handle
``gang:<run id>/0=local:<pid>:<start>,1=...`` names each node's launcher process.
"""

from __future__ import annotations

import shutil
import socket
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from mlmagic.distributed.outcome import NodeState, failure_message, gang_state, node_rows
from mlmagic.distributed.plan import plan_nodes, write_plan
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.run.paths import RunPaths
from mlmagic.targets.gang import PREFIX, gang_files, parallel, plan_primaries
from mlmagic.targets.labels import GANG_HELPERS
from mlmagic.targets.process import process_alive, remove_tree, stop_process

if TYPE_CHECKING:
    from mlmagic.records import RunRecord
    from mlmagic.targets.local import LocalTarget

__all__ = ["LocalGang", "free_ports"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (held together while chosen)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _nodes_of(handle: str) -> tuple[str, dict[int, str]]:
    """The run id and each node's process handle, from a local gang's handle."""
    run_id, _, listed = handle.removeprefix(PREFIX).partition("/")
    nodes = {}
    for item in filter(None, listed.split(",")):
        index, _, process = item.partition("=")
        nodes[int(index)] = process
    return run_id, nodes


class LocalGang:
    """The gangs of one local target."""

    def __init__(self, target: LocalTarget) -> None:
        self.target = target
        self.root = target.context.root

    def start(
        self,
        record: RunRecord,
        paths: RunPaths,
        python: str,
        environment: dict[str, str],
        gpus: GpuRequest | None,
    ) -> str:
        """Start every node's launcher; return the gang's handle. When one cannot start,
        the ones started are stopped."""
        dist = record.config.distributed
        assert dist is not None
        lib = paths.lib
        for helper in GANG_HELPERS:
            shutil.copy2(helper, lib / helper.name)
        plan_file, exits = gang_files(paths)
        shutil.rmtree(exits, ignore_errors=True)
        exits.mkdir(parents=True)
        if dist.framework == "mpi":
            hosts, ports = ["localhost"] * dist.nodes, [0]
        elif dist.framework == "tensorflow":
            hosts, ports = ["127.0.0.1"] * dist.nodes, free_ports(dist.nodes)
        else:
            hosts, ports = ["127.0.0.1"] * dist.nodes, free_ports(1)
        nodes = plan_nodes(dist, record.id, hosts, ports, error_dir=str(exits))
        write_plan(
            plan_file,
            dist,
            nodes,
            command=["-u", *record.config.argv],
            log=str(paths.output_log),
            exits=str(exits),
            extra={"master_port": ports[0], "run_id": record.id},
        )

        def start_node(node: Any) -> str | BaseException:
            command = [python, str(lib / "mlmagic_gang.py"), "node"]
            command += ["--plan", str(plan_file), "--node", str(node.index)]
            node_env = {**environment, "MLMAGIC_NODE": str(node.index)}
            try:
                return f"{node.index}={self.target.spawn(command, paths, record, node_env)}"
            except Exception as exc:  # the others started are stopped below
                return exc

        # All at once, as the docker target starts its containers: each start is a process
        # of its own (a new cgroup), and a node started last would begin visibly later.
        # mpirun reaches this host's slots without an agent.
        results = parallel(start_node, [n for n in nodes if n.role != "agent"])
        started = [r for r in results if isinstance(r, str)]
        problems = [r for r in results if not isinstance(r, str)]
        if problems:
            parallel(lambda item: stop_process(item.partition("=")[2], 3), started)
            raise problems[0]
        return f"{PREFIX}{record.id}/{','.join(started)}"

    def state(self, handle: str) -> ContainerState | None:
        run_id, processes = _nodes_of(handle)
        plan_file, exits = gang_files(RunPaths(self.root / "runs" / run_id))
        nodes = []
        for index, primary, ranks in plan_primaries(plan_file):
            process = processes.get(index)
            alive = process is not None and process_alive(process)
            if process is not None and not alive:
                remove_tree(process)  # a node that ended leaves no cgroup behind
            state = ContainerState(process or "", "running", None, False, None, None)
            nodes.append(NodeState(index, primary, ranks, state if alive else None))
        return gang_state(handle, nodes, exits)

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        """One row per node with its state."""
        run_id, processes = _nodes_of(handle)
        plan_file, exits = gang_files(RunPaths(self.root / "runs" / run_id))
        running = ContainerState("", "running", None, False, None, None)
        states = {i: running if process_alive(p) else None for i, p in processes.items()}
        return node_rows(plan_file, exits, dict(states))

    def stop(self, handle: str, timeout: float = 10) -> None:
        """Stop every node at once (each launcher passes SIGTERM on to its ranks)."""
        _, processes = _nodes_of(handle)
        parallel(lambda process: stop_process(process, timeout), processes.values())

    def remove(self, handle: str) -> None:
        """Stop the nodes still running once the gang ended (which removes each node's
        process tree, cgroup included)."""
        self.stop(handle, timeout=3)

    def exit_message(self, handle: str) -> str | None:
        run_id, _ = _nodes_of(handle)
        paths = RunPaths(self.root / "runs" / run_id)
        return failure_message(gang_files(paths)[1], paths.output_log)
