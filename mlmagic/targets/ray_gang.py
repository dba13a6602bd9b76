"""A distributed run on a Ray compute: one Ray job whose driver runs the gang.

The kernel side of :mod:`mlmagic.targets.ray_driver`. When the run starts it writes the
gang's plan (:mod:`mlmagic.distributed.plan`, the docker gang's, with placeholders for
the addresses and ports only the cluster knows) into the job's ``mlmagic_run`` package,
next to the node launcher (``mlmagic_gang.py``, ``mlmagic_mpi.py``) and the driver; the
job's entrypoint is the driver. The plan is kept in the run's ``system/gang.json`` too,
and what the driver reports in :data:`~mlmagic.targets.ray_driver.MARKER` lines of the
job's log is filed beside it: the nodes' addresses into that plan, each rank's exit
record into ``system/gang/``. So a run's failure reads "rank K (node N) exited with code
C" and its node rows come from :mod:`mlmagic.distributed.outcome`, as on docker.

MPI runs as on docker (node 0's ``mpirun`` over the other nodes' launch agents), with
what the nodes of a Ray cluster do not share made per node: the driver writes the plan
and the launchers at the same path on every node, picks each agent's port free on its
node and makes the agents' token; each rank's lines travel through ``mpirun`` to node 0's
stream, and each node's exit records come back through its own actor.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlmagic.computes.cluster import WORKER_RESOURCE
from mlmagic.computes.record import Compute
from mlmagic.distributed.outcome import failure_message, node_rows
from mlmagic.distributed.plan import plan_nodes, write_plan
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.exceptions import RunError
from mlmagic.run.paths import RunPaths
from mlmagic.targets import ray_driver
from mlmagic.targets.gang import gang_files
from mlmagic.targets.labels import GANG_HELPERS

if TYPE_CHECKING:
    from mlmagic.computes.client import RayJobs
    from mlmagic.distributed.config import Distribution
    from mlmagic.records import RunRecord

__all__ = ["check_nodes", "entrypoint", "exit_message", "file_marker", "nodes"]

_DRIVER = Path(ray_driver.__file__)


def check_nodes(compute: Compute, jobs: RayJobs, dist: Distribution) -> None:
    """Refuse a gang of more nodes than the cluster has nodes for ranks, saying what it
    has (a placement group that cannot be placed would keep the run pending for ever).

    On a cluster mlmagic made, ranks run on its workers (the nodes that offer
    :data:`~mlmagic.computes.cluster.WORKER_RESOURCE`); on an attached one, on any node
    with CPUs.
    """
    alive = [n.get("resources_total") or {} for n in jobs.nodes() if n.get("state") == "ALIVE"]
    key = WORKER_RESOURCE if compute.made else "CPU"
    usable = sum(1 for total in alive if float(total.get(key, 0)) > 0)
    if dist.nodes > usable:
        kind = "worker" if compute.made else "node with CPUs"
        more = (
            f"start a compute with more workers (%compute up NAME --workers {dist.nodes})"
            if compute.made
            else "use a cluster with more nodes"
        )
        raise RunError(
            f"--nodes {dist.nodes}: the compute {compute.name!r} has {usable} {kind}"
            f"{'s' if usable != 1 else ''}, and each node of the run needs one of its own: "
            f"ask for --nodes {max(usable, 1)} or fewer, or {more}."
        )


def entrypoint(
    compute: Compute,
    record: RunRecord,
    paths: RunPaths,
    package: Path,
    *,
    outputs: str | None,
    gpus: GpuRequest | None,
    gpu_count: int,
) -> str:
    """Put the gang's plan, the node launcher and the driver into the job's ``package``
    (shipped as ``py_modules``); return the job's entrypoint, which runs the driver.

    ``outputs`` is the run's outputs folder in the compute's storage as the nodes see it
    (``None``: the compute has none); ``gpu_count`` the GPUs of each node.
    """
    dist = record.config.distributed
    assert dist is not None
    hosts = [ray_driver.host_placeholder(k) for k in range(dist.nodes)]
    # Placeholders stand for the ports until the driver picks them on the nodes.
    ports = cast(Sequence[int], [ray_driver.port_placeholder(k) for k in range(dist.nodes)])
    plan_file, exits = gang_files(paths)
    shutil.rmtree(exits, ignore_errors=True)
    exits.mkdir(parents=True)
    bundle: dict[str, float] = {WORKER_RESOURCE: 1} if compute.made else {"CPU": 1}
    if record.config.cpus:
        bundle["CPU"] = float(record.config.cpus)
    if gpus is not None:
        bundle["GPU"] = float(gpu_count)
    extra: dict[str, Any] = {"master_port": ports[0], "run_id": record.id}
    if dist.framework == "mpi":
        extra["agent_ports"] = list(ports)  # each agent's, picked free on its node
    settings = {
        "python": compute.python,
        "outputs": outputs or "",
        "bundle": bundle,
        "gpus": gpu_count if gpus is not None else 0,
    }
    write_plan(
        plan_file,
        dist,
        plan_nodes(dist, record.id, hosts, ports, error_dir=ray_driver.EXITS_PLACEHOLDER),
        command=["-u", *record.config.argv],
        log="",  # each node's driver actor sets it: lines come back through the job
        exits="",
        extra={**extra, "ray": settings},
    )
    shutil.copy2(plan_file, package / "gang.json")
    for helper in (*GANG_HELPERS, _DRIVER):
        shutil.copy2(helper, package / helper.name)
    program = f"import sys; from mlmagic_run.{_DRIVER.stem} import main; sys.exit(main())"
    return f"{shlex.quote(compute.python)} -c {shlex.quote(program)}"


def file_marker(paths: RunPaths, line: str) -> None:
    """File what the driver reported in one marker line: the nodes' addresses (into the
    run's plan) or one rank's exit record (into ``system/gang/``)."""
    try:
        said = json.loads(line[len(ray_driver.MARKER) :])
    except ValueError:
        return
    if not isinstance(said, dict):
        return
    plan_file, exits = gang_files(paths)
    if isinstance(said.get("hosts"), list) and isinstance(said.get("ports"), list):
        try:
            text = plan_file.read_text()
        except OSError:
            return
        hosts, ports = [str(h) for h in said["hosts"]], [int(p) for p in said["ports"]]
        plan_file.write_text(ray_driver.fill_plan(text, hosts, ports))
    record = said.get("exit")
    if isinstance(record, dict) and "exit_code" in record:
        rank, node = record.get("rank"), record.get("node")
        name = f"rank-{int(rank)}.json" if rank is not None else f"node-{int(node or 0)}.json"
        exits.mkdir(parents=True, exist_ok=True)
        (exits / name).write_text(json.dumps(record))


def exit_message(paths: RunPaths) -> str | None:
    """``rank K (node N) exited with code C`` and its last lines, when a rank failed."""
    return failure_message(gang_files(paths)[1], paths.output_log)


def nodes(paths: RunPaths, running: bool) -> list[dict[str, Any]]:
    """One row per node (``node``, ``host``, ``processes``, ``state``) of a gang whose
    job is ``running`` or not."""
    plan_file, exits = gang_files(paths)
    try:
        count = len(json.loads(plan_file.read_text()).get("nodes", []))
    except (OSError, ValueError):
        return []
    state = ContainerState("", "running", None, False, None, None) if running else None
    return node_rows(plan_file, exits, dict.fromkeys(range(count), state))
