"""The driver of a distributed run on a Ray compute: it runs on the cluster, as the job.

This file is shipped to the cluster inside the job's ``mlmagic_run`` package (see
:mod:`mlmagic.targets.ray_gang`) and imports only the standard library and ``ray``, which
every node of a Ray cluster has; mlmagic itself is not installed there. It reads the plan
the kernel side wrote next to it (``gang.json``: the gang's plan of
:mod:`mlmagic.distributed.plan`, whose hosts and ports are placeholders) and:

1. reserves one bundle per node in a placement group (``STRICT_SPREAD``: every node of the
   gang on its own Ray node; on a cluster mlmagic made the bundles ask for the workers'
   resource, so no rank runs on the head);
2. starts one :class:`Node` actor per bundle and asks each for its address and free ports;
   node 0's address is ``MASTER_ADDR``, and each TensorFlow task gets a port of its own;
3. fills the plan in and has every actor run ``mlmagic_gang.py node`` on its node, which
   starts that node's ranks with their variables, exactly as in a container of the
   docker gang; each actor streams its launcher's labelled lines (``[rank K] ...``) back,
   and the driver prints them whole: the job's log is the run's log;
4. keeps the gang semantics: when a node ends with a failure, the others are stopped; a
   SIGTERM (``ray job stop``: the run was canceled) stops every node; TensorFlow's
   parameter servers are stopped when every worker ended.

An MPI gang runs as on docker, node 0's ``mpirun`` over launch agents on the others:
every node's plan and launchers are at one path named by the run (mpirun's command lines
for the other nodes name them by node 0's paths), each agent listens on a port picked free
on its node, and the agents' token is made here, for the launchers' environment only.

The exit records of every rank (as the node launchers write them) are printed last as
:data:`MARKER` lines, which the kernel side takes out of the log and files as the
docker gang's records, so its failure message ("rank K (node N) exited with code C") is
the same. The driver exits with the first failing rank's code.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

__all__ = [
    "EXITS_PLACEHOLDER",
    "MARKER",
    "Node",
    "fill_plan",
    "host_placeholder",
    "main",
    "port_placeholder",
]

#: Lines of the job's log that carry the gang's records to the kernel side.
MARKER = "@mlmagic:gang "
#: What stands in the plan for the folder of a node's exit records (made on the node).
EXITS_PLACEHOLDER = "%MLMAGIC_EXITS%"
#: How long a node's launcher has to stop its ranks before it is killed.
_STOP_GRACE = 8.0
_BATCH_LINES = 2000
# A rank's metric and params lines, labelled by the node launcher: the label goes, the
# metric itself carries the rank (MLMAGIC_RANK).
_LABELLED_MARKER = re.compile(r"^\[[^\]\n]*\] (@mlmagic:)")
# The node launcher is started through this: SIGTERM reaches it when its actor dies (Ray
# kills the actors of a job whose driver was killed), so its ranks never outlive the job.
# Set in the launcher itself, not in a preexec_fn, which is unsafe in a threaded actor.
_BOOTSTRAP = (
    "import ctypes, os, runpy, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, os.path.dirname(sys.argv[0]))\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def host_placeholder(index: int) -> str:
    """What stands in the plan for node ``index``'s address until the driver knows it."""
    return f"%MLMAGIC_HOST_{index}%"


def port_placeholder(index: int) -> str:
    """What stands in the plan for node ``index``'s port until the driver picks it."""
    return f"%MLMAGIC_PORT_{index}%"


def fill_plan(text: str, hosts: list[str], ports: list[int]) -> str:
    """The plan's text with every placeholder replaced by its node's address and port.

    Addresses and ports hold no character JSON escapes, so the text stays valid JSON
    (``TF_CONFIG`` is JSON inside a JSON string).
    """
    for index, host in enumerate(hosts):
        text = text.replace(host_placeholder(index), host)
    for index, port in enumerate(ports):
        # Always inside a string: a rank's variables must stay strings (the torchrun
        # launcher's master port is only formatted into its command line).
        text = text.replace(port_placeholder(index), str(port))
    return text


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on every address of this node now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _read_lines(process: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
    lines.put(None)


class Node:
    """One node of the gang: an actor on its own Ray node that runs the node launcher.

    Made a Ray actor class by :func:`main` (``ray.remote``), so this module imports
    without ``ray``; ``max_concurrency=2`` lets :meth:`stop` reach a node whose
    :meth:`run` is still streaming. The driver imports it as ``mlmagic_run.ray_driver``,
    so Ray sends the class by name and each node imports it from the job's package.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen | None = None
        self.stopped = False
        self.folder = ""

    def address(self, ports: int) -> tuple[str, list[int]]:
        """This node's address as the other nodes reach it, and ``ports`` free ports."""
        import ray

        return ray.util.get_node_ip_address(), _free_ports(ports)

    def run(self, plan_text: str, python: str, outputs: str, secret: dict[str, str]) -> Any:
        """Run the node launcher; yield lists of its lines, then ``{"exits": records}``.

        ``outputs``: the run's outputs folder in the compute's storage, which ``./outputs``
        of every rank is linked to ("": none, ``./outputs`` stays on the node);
        ``secret``: variables for the launcher's environment only (MPI's agent token).
        """
        self.folder = _node_folder(json.loads(plan_text), self.index)
        plan_file = os.path.join(self.folder, "gang.json")
        exits = os.path.join(self.folder, "exits")
        plan = json.loads(plan_text.replace(EXITS_PLACEHOLDER, exits))
        plan["exits"] = exits
        plan["log"] = os.devnull  # the lines come back through this actor's stream
        _write_whole(plan_file, json.dumps(plan))
        here = os.path.dirname(os.path.abspath(__file__))
        # The launchers run from the node's folder: mpirun's command lines for the other
        # nodes name them (and the plan) by the same paths there.
        for name in ("mlmagic_gang.py", "mlmagic_mpi.py"):
            with open(os.path.join(here, name)) as file:
                _write_whole(os.path.join(self.folder, name), file.read())
        env = {**os.environ, **secret, "MLMAGIC_NODE": str(self.index)}
        if outputs:
            _link_outputs(outputs)
            env["MLMAGIC_OUTPUT_DIR"] = outputs
        launcher = os.path.join(self.folder, "mlmagic_gang.py")
        argv = ["node", "--plan", plan_file, "--node", str(self.index)]
        command = [python, "-S", "-c", _BOOTSTRAP, launcher, *argv]
        if not self.stopped:
            self.process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_read_lines, args=(self.process, lines), daemon=True).start()
            # Each batch is what came meanwhile: a line is sent as soon as it is whole.
            done = False
            while not done:
                batch = []
                item = lines.get()
                while item is not None:
                    batch.append(_LABELLED_MARKER.sub(r"\1", item))
                    if len(batch) >= _BATCH_LINES:
                        break
                    try:
                        item = lines.get_nowait()
                    except queue.Empty:
                        break
                done = item is None
                if batch:
                    yield batch
            self.process.wait()
        code = self.process.returncode if self.process is not None else 143
        records = _read_exits(exits)
        shutil.rmtree(self.folder, ignore_errors=True)  # the plan and records: sent back
        yield {"exits": records, "code": code}

    def stop(self) -> None:
        """SIGTERM the node launcher, which stops its ranks (SIGKILL after its grace)."""
        self.stopped = True
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()


def _node_folder(plan: dict[str, Any], index: int) -> str:
    """A new folder of this node for the plan, the launchers and the exit records.

    An MPI gang's is at the same path on every node (named by the run), as mpirun runs
    the ranks of the other nodes by the paths it has on node 0; the other frameworks'
    is a temporary folder of the node's own.
    """
    if plan["framework"] != "mpi":
        return tempfile.mkdtemp(prefix=f"mlmagic-gang-{index}-")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(plan["run_id"]))
    folder = os.path.join(tempfile.gettempdir(), f"mlmagic-gang-{name}")
    shutil.rmtree(folder, ignore_errors=True)  # a run's id is new: a leftover of its own
    os.makedirs(folder, mode=0o700)
    return folder


def _write_whole(path: str, text: str) -> None:
    temporary = f"{path}.{os.getpid()}"
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _link_outputs(outputs: str) -> None:
    """``./outputs`` (the working directory is the job's snapshot on this node) → the
    run's outputs in the compute's storage, replaced atomically."""
    os.makedirs(outputs, exist_ok=True)
    if os.path.islink("outputs") and os.readlink("outputs") == outputs:
        return
    temporary = f".outputs-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.symlink(outputs, temporary)
    if os.path.isdir("outputs") and not os.path.islink("outputs"):
        shutil.rmtree("outputs")
    os.replace(temporary, "outputs")


def _read_exits(folder: str) -> list[dict[str, Any]]:
    records = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json") and not name.startswith("."):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError, ValueError), open(path) as file:
                    records.append(json.load(file))
    return records


class _Gang:
    """The driver's view of the nodes: their streams, their ends, stopping them."""

    def __init__(self, actors: list[Any], primaries: list[bool]) -> None:
        self.actors = actors
        self.primaries = primaries
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)
        self.records: list[dict[str, Any]] = []
        self.codes: dict[int, int] = {}
        self.failed: int | None = None
        self.canceled = False
        self.stopping = False

    def say(self, lines: list[str]) -> None:
        with self.lock:  # whole lines, never mixed within a line
            sys.stdout.write("".join(f"{line}\n" for line in lines))
            sys.stdout.flush()

    def follow(self, index: int, stream: Any) -> None:
        """Print node ``index``'s lines as they come; note how it ended."""
        import ray

        result: dict[str, Any] = {"exits": [], "code": 1}
        try:
            for ref in stream:
                item = ray.get(ref)
                if isinstance(item, dict):
                    result = item
                else:
                    self.say(item)
        except Exception as exc:  # the actor or its Ray node died
            said = " ".join(str(exc).split())[:500]
            # Ray restarts no actor of ours: a lost node fails the gang, and says so.
            self.say(
                [
                    f"[mlmagic] node {index} was lost (its Ray node died or its actor was "
                    f"killed); the run fails, Ray does not restart it: {said}"
                ]
            )
            result = {"exits": [_lost_record(index)], "code": 1}
        with self.ended:
            self.records += result["exits"]
            self.codes[index] = code = int(result["code"])
            if code != 0 and not self.stopping and self.failed is None:
                self.failed = index
            self.ended.notify_all()

    def cancel(self) -> None:
        """Stop every node: the job was asked to stop. Called in a signal handler, so it
        takes no lock (the main thread may hold it): :meth:`wait` sees it within 0.5 s."""
        self.canceled = True

    def wait(self) -> int:
        """Wait until every node ended, stopping the rest once one failed, the job was
        canceled, or every primary node ended; return the job's exit code."""
        with self.ended:
            while len(self.codes) < len(self.actors):
                done = all(i in self.codes for i, p in enumerate(self.primaries) if p)
                if not self.stopping and (self.failed is not None or self.canceled or done):
                    self.stopping = True
                    for actor in self.actors:
                        actor.stop.remote()  # returns at once; the actors stop in parallel
                self.ended.wait(0.5)
        if self.failed is not None:
            return self.codes[self.failed] or 1
        if self.canceled:
            return 143
        return max((c for i, c in self.codes.items() if self.primaries[i]), default=1)


def _lost_record(index: int) -> dict[str, Any]:
    """The exit record of a node whose actor died (its Ray node went away)."""
    return {
        "rank": None,
        "node": index,
        "label": f"node {index}",
        "exit_code": 1,
        "stopped": False,
        "ended": time.time(),
    }


def main() -> int:
    """Run the gang of the plan next to this file; return the job's exit code."""
    import logging

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "gang.json")) as file:
        plan_text = file.read()
    plan = json.loads(plan_text)
    settings = plan["ray"]
    count = int(plan["nodes_count"])
    # The job's log is the run's: only the ranks' lines go there, not what Ray's worker
    # processes say (an actor's exit is reported to the driver as an error anyway).
    ray.init(logging_level=logging.WARNING, configure_logging=True, log_to_driver=False)
    bundle = {k: float(v) for k, v in settings["bundle"].items()}
    group = placement_group([dict(bundle) for _ in range(count)], strategy="STRICT_SPREAD")
    ready = group.ready()
    if not ray.wait([ready], timeout=10)[0]:
        print(f"[mlmagic] waiting for {count} Ray nodes with {bundle} each", flush=True)
        ray.get(ready)
    actor_class = ray.remote(Node)
    actors: list[Any] = [
        actor_class.options(
            max_concurrency=2,
            num_cpus=0,
            num_gpus=float(settings.get("gpus", 0)),
            resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU")},
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, index),
        ).remote(index)
        for index in range(count)
    ]
    # Node 0's port is MASTER_PORT; every TensorFlow task listens on a port of its own,
    # and so does every MPI launch agent.
    each = plan["framework"] in ("tensorflow", "mpi")
    answers = ray.get([a.address.remote(1 if each or i == 0 else 0) for i, a in enumerate(actors)])
    hosts = [host for host, _ in answers]
    ports = [found[0] for _, found in answers] if each else answers[0][1]
    print(MARKER + json.dumps({"hosts": hosts, "ports": ports}), flush=True)
    filled = fill_plan(plan_text, hosts, ports)
    gang = _Gang(actors, [bool(node["primary"]) for node in plan["nodes"]])
    signal.signal(signal.SIGTERM, lambda signum, frame: gang.cancel())
    signal.signal(signal.SIGINT, lambda signum, frame: gang.cancel())
    outputs = settings.get("outputs") or ""
    # MPI's launch agents run what a client with this token asks: made here, it is in
    # the launchers' environment only, never in the plan or the job's log.
    secret = {"MLMAGIC_GANG_TOKEN": secrets.token_hex(24)} if plan["framework"] == "mpi" else {}
    for index, actor in enumerate(actors):
        stream = actor.run.remote(filled, settings["python"], outputs, secret)
        threading.Thread(target=gang.follow, args=(index, stream), daemon=True).start()
    code = gang.wait()
    for record in sorted(gang.records, key=lambda r: float(r.get("ended", 0))):
        print(MARKER + json.dumps({"exit": record}), flush=True)
    with contextlib.suppress(Exception):
        remove_placement_group(group)
    return code


if __name__ == "__main__":
    sys.exit(main())
