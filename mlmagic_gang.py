"""The node launcher of mlmagic's distributed runs (stdlib only, Python 3.8+).

mlmagic mounts it next to ``mlmagic_run.py`` in every node of a gang (the local target runs
it from the run's folder) and starts it as each node's command::

    python mlmagic_gang.py node --plan gang.json --node K   # a node of the gang
    python mlmagic_gang.py rank --plan gang.json -- CMD...  # one MPI rank (mpirun starts it)
    python mlmagic_gang.py rsh HOST COMMAND...              # mpirun's remote shell
    python mlmagic_gang.py agent --port P                   # what rsh talks to

``node`` does what the plan (written by :mod:`mlmagic.distributed.plan`) says for node K:
start its ranks with their variables, or run ``mpirun`` (node 0 of an MPI gang), or serve
``mpirun``'s remote launches (the other MPI nodes: no sshd in users' images).

Logs. Every node appends to the run's one log file, which all nodes share through the
bind mount: each line is written as ``[rank K] text\\n`` (``[worker I]``, ``[ps J]``) with
one ``write`` on an ``O_APPEND`` descriptor. Linux serialises writes to one regular file
(the inode lock is held for the whole write and the append offset is taken under it), so
lines of different nodes and ranks never mix within a line, whatever their length, and
readers (the widget, ``run.logs()``, ``mlmagic run logs --follow``) read the file as they
read a single-node run's. One file, not a file per node merged on the host, because no
host process is guaranteed to be there to merge: the run outlives the kernel.

Gang semantics on a node (as torchrun's agent): the first rank that exits non-zero gets an
exit record; its siblings are stopped (SIGTERM, then SIGKILL after a grace); the node exits
with that rank's code. The other nodes see the record in the shared run folder and stop
their ranks too (so a gang stops itself when no host process follows it); the host stops
and removes whatever is left when it sees the record.

The MPI agent authenticates each launch by a random per-run token from the environment
(``MLMAGIC_GANG_TOKEN``), which is never written anywhere and is taken out of the ranks'
environment.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_TOKEN = "MLMAGIC_GANG_TOKEN"
_PORT = "MLMAGIC_GANG_PORT"
_GRACE = 5.0
_LINE_MAX = 65536
_CHUNK = 65536
_FRAME = struct.Struct("!BI")  # stream (1 stdout, 2 stderr, 0 exit code), length


# -- the one log --------------------------------------------------------------------------


class LineLog:
    """Whole labelled lines to the run's log (``O_APPEND``) and to this node's stdout."""

    def __init__(self, path: str, echo: bool = True) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.echo = echo
        self.pending: dict[Any, bytes] = {}

    def feed(self, key: Any, label: str | None, chunk: bytes) -> None:
        """Add output of ``key``; complete lines go out labelled ``[label]``."""
        data = self.pending.pop(key, b"") + chunk
        *lines, rest = data.split(b"\n")
        while len(rest) > _LINE_MAX:  # a line that never ends goes out in pieces
            lines.append(rest[:_LINE_MAX])
            rest = rest[_LINE_MAX:]
        for line in lines:
            self.write(label, line)
        if rest:
            self.pending[key] = rest

    def flush(self, key: Any, label: str | None) -> None:
        rest = self.pending.pop(key, b"")
        if rest:
            self.write(label, rest)

    def write(self, label: str | None, line: bytes) -> None:
        if label and label.startswith("node ") and line.startswith(b"[rank "):
            label = None  # torchrun's worker lines come labelled already
        text = (f"[{label}] ".encode() if label else b"") + line + b"\n"
        with contextlib.suppress(OSError):
            _write_all(self.fd, text)  # one write: see the module's docstring
        if self.echo:
            with contextlib.suppress(OSError):
                _write_all(1, text)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _record(exits: str, rank: int | None, node: int, label: str, code: int, stopped: bool) -> None:
    """The exit record of one rank, written whole (temporary file, then rename)."""
    os.makedirs(exits, exist_ok=True)
    name = f"rank-{rank}.json" if rank is not None else f"node-{node}.json"
    record = {
        "rank": rank,
        "node": node,
        "label": label,
        "exit_code": code,
        "stopped": stopped,
        "ended": time.time(),
    }
    temporary = os.path.join(exits, f".{name}.{os.getpid()}")
    with open(temporary, "w") as file:
        json.dump(record, file)
    os.replace(temporary, os.path.join(exits, name))


def _gang_failed(exits: str) -> bool:
    """Whether a rank of the gang, on any node, exited non-zero on its own.

    Every node sees every exit record through the shared run folder, so a gang stops
    itself when a rank fails even while no host process follows the run (the kernel died
    and nobody looked at the run since); the host stops what is left when it looks.
    """
    try:
        names = [n for n in os.listdir(exits) if n.endswith(".json")]
    except OSError:
        return False
    for name in names:
        try:
            with open(os.path.join(exits, name)) as file:
                record = json.load(file)
        except (OSError, ValueError):
            continue
        if record.get("exit_code") not in (0, None) and not record.get("stopped"):
            return True
    return False


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


# -- a node that starts ranks -------------------------------------------------------------


class _Group:
    """The processes of one node, stopped together (SIGTERM, SIGKILL after a grace)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.stopping = False
        self.kill_at: float | None = None

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.kill_at = time.monotonic() + _GRACE
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)

    def tick(self) -> None:
        if self.kill_at is not None and time.monotonic() > self.kill_at:
            for proc in self.procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)


def _run_node(plan: dict[str, Any], node: dict[str, Any]) -> int:
    log = LineLog(plan["log"])
    group = _Group()
    signalled: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        signalled.append(signum)
        group.stop()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    command = [sys.executable, *plan["command"]]
    base = {k: v for k, v in os.environ.items() if k != _TOKEN}
    base["MLMAGIC_NODE"] = str(node["index"])
    starts: list[Any] = []
    if plan["launcher"] == "torchrun":
        torchrun = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={plan['nodes_count']}",
            f"--nproc-per-node={plan['procs_per_node']}",
            f"--node-rank={node['index']}",
            f"--master-addr={plan['nodes'][0]['host']}",
            f"--master-port={plan['master_port']}",
            f"--rdzv-id={plan.get('run_id', 'mlmagic')}",
            "--max-restarts=0",
            "--tee=3",
            *plan["command"][1:],  # without -u: torchrun runs the script itself
        ]
        # torchrun labels its workers' lines itself (tee'd, with this prefix); the node
        # launcher leaves lines that start with it as they are.
        env = {**base, "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "[rank ${rank}] "}
        starts.append((None, f"node {node['index']}", torchrun, env))
    for proc in node["procs"]:
        starts.append((proc["rank"], proc["label"], command, {**base, **proc["env"]}))

    pipes: dict[int, Any] = {}
    for rank, label, argv, env in starts:
        try:
            child = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.write(label, f"cannot start {argv[0]!r}: {exc}".encode())
            _record(plan["exits"], rank, node["index"], label, 127, False)
            group.stop()
            continue
        group.procs.append(child)
        assert child.stdout is not None
        pipes[child.stdout.fileno()] = (child, rank, label)

    failure: int | None = None
    recorded: set = set()
    labels = {id(c): (r, lab) for c, r, lab in pipes.values()}
    checked = 0.0
    while True:
        if signalled or failure is not None or group.stopping:
            group.tick()
        if not group.stopping and time.monotonic() - checked > 0.5:
            checked = time.monotonic()
            if _gang_failed(plan["exits"]):  # a rank of another node failed
                signalled.append(signal.SIGTERM)
                group.stop()
        open_fds = [fd for fd in pipes]
        ready = select.select(open_fds, [], [], 0.2)[0] if open_fds else []
        for fd in ready:
            child, rank, label = pipes[fd]
            chunk = os.read(fd, _CHUNK)
            if chunk:
                log.feed(fd, label, chunk)
            else:
                log.flush(fd, label)
                del pipes[fd]
        for child in group.procs:
            if child.poll() is None or id(child) in recorded:
                continue
            recorded.add(id(child))
            rank, label = labels.get(id(child), (None, ""))
            code = _code(child.returncode)
            stopped = group.stopping and (failure is not None or bool(signalled))
            _record(plan["exits"], rank, node["index"], label, code, stopped and code != 0)
            if code != 0 and not stopped and failure is None:
                failure = code
                group.stop()
        if not group.procs or all(id(c) in recorded for c in group.procs):
            # Drain what the pipes still hold, briefly: a grandchild may keep one open.
            deadline = time.monotonic() + 0.5
            while pipes and time.monotonic() < deadline:
                for fd in select.select(list(pipes), [], [], 0.1)[0]:
                    chunk = os.read(fd, _CHUNK)
                    _, rank, label = pipes[fd]
                    if chunk:
                        log.feed(fd, label, chunk)
                    else:
                        log.flush(fd, label)
                        del pipes[fd]
            break
    if failure is not None:
        return failure
    if signalled:
        return 128 + signalled[0]
    return max((_code(c.returncode) for c in group.procs), default=127)


# -- MPI: node 0 runs mpirun, ranks run under `rank`, the others serve launches ------------


def _run_mpirun(plan: dict[str, Any], node: dict[str, Any]) -> int:
    """Node 0 of an MPI gang: ``mpirun`` over every node, through our remote shell."""
    # A folder of this node's own: on the local target several runs share /tmp.
    folder = tempfile.mkdtemp(prefix="mlmagic-mpi-")
    rsh = os.path.join(folder, "rsh")
    with open(rsh, "w") as file:
        file.write(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(__file__)}" rsh "$@"\n')
    os.chmod(rsh, 0o755)
    hostfile = os.path.join(folder, "hostfile")
    slots: dict[str, int] = {}
    for other in plan["nodes"]:  # on the local target every node is this host
        slots[other["host"]] = slots.get(other["host"], 0) + plan["procs_per_node"]
    with open(hostfile, "w") as file:
        file.writelines(f"{host} slots={count}\n" for host, count in slots.items())
    total = sum(slots.values())
    env = dict(os.environ)
    # Open MPI 4 reads OMPI_MCA_plm_rsh_*, Open MPI 5 (PRRTE) PRTE_MCA_plm_ssh_*; each
    # ignores the other's. No tree spawn: only node 0 has our remote shell script.
    env.update(
        {
            "OMPI_MCA_plm_rsh_agent": rsh,
            "PRTE_MCA_plm_ssh_agent": rsh,
            "OMPI_MCA_plm_rsh_no_tree_spawn": "1",
            "PRTE_MCA_plm_ssh_no_tree_spawn": "1",
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PRTE_ALLOW_RUN_AS_ROOT": "1",
            "PRTE_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
            "OMPI_MCA_btl_sm_single_copy_mechanism": "none",
        }
    )
    argv = [
        "mpirun",
        "--hostfile",
        hostfile,
        "-np",
        str(total),
        "--map-by",
        "slot",
        sys.executable,
        os.path.abspath(__file__),
        "rank",
        "--plan",
        plan["path"],
        "--",
        sys.executable,
        *plan["command"],
    ]
    plan = {**plan, "launcher": "mlmagic"}
    node = {**node, "procs": []}
    return _run_commands(plan, node, [(None, "mpirun", argv, env)])


def _run_commands(plan: dict[str, Any], node: dict[str, Any], starts: list[Any]) -> int:
    """Run ``starts`` as the node's processes (mpirun's own lines are labelled)."""
    log = LineLog(plan["log"])
    _rank, label, argv, env = starts[0]
    try:
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
    except OSError as exc:
        log.write(label, f"cannot start {argv[0]!r}: {exc}".encode())
        _record(plan["exits"], None, node["index"], label, 127, False)
        return 127
    signalled: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        signalled.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    def watch() -> None:
        # mpirun does not end the job when a rank fails after MPI_Finalize: we do.
        while child.poll() is None:
            if _gang_failed(plan["exits"]):
                on_signal(signal.SIGTERM, None)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    out = child.stdout
    assert out is not None
    for chunk in iter(lambda: os.read(out.fileno(), _CHUNK), b""):
        log.feed(0, label, chunk)
    log.flush(0, label)
    code = _code(child.wait())
    _record(plan["exits"], None, node["index"], label, code, bool(signalled) and code != 0)
    return 128 + signalled[0] if signalled and code else code


def _run_rank(plan_path: str, command: list[str]) -> int:
    """One MPI rank: its output labelled in the run's log, its exit recorded."""
    with open(plan_path) as file:
        plan = json.load(file)
    rank_text = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMIX_RANK") or "0"
    rank = int(rank_text)
    node = int(os.environ.get("MLMAGIC_NODE", "0"))
    label = f"rank {rank}"
    env = {k: v for k, v in os.environ.items() if k != _TOKEN}
    env.update({"MLMAGIC_RANK": str(rank), "RANK": str(rank)})
    log = LineLog(plan["log"], echo=False)
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def on_signal(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    def watch() -> None:
        # mpirun does not end the job when a rank fails after MPI_Finalize: we do.
        while child.poll() is None:
            if _gang_failed(plan["exits"]):
                on_signal(signal.SIGTERM, None)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    out = child.stdout
    assert out is not None
    for chunk in iter(lambda: os.read(out.fileno(), _CHUNK), b""):
        log.feed(0, label, chunk)
    log.flush(0, label)
    code = _code(child.wait())
    _record(plan["exits"], rank, node, label, code, False)
    return code


class _Agent(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Launch(socketserver.StreamRequestHandler):
    """One remote launch: a token line, a command line, then framed output and the code."""

    def handle(self) -> None:
        token = self.rfile.readline().strip().decode(errors="replace")
        if not hmac.compare_digest(token, os.environ.get(_TOKEN, "")):
            return
        command = json.loads(self.rfile.readline())
        env = {k: v for k, v in os.environ.items() if k != _TOKEN}
        child = subprocess.Popen(
            ["/bin/sh", "-c", command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        streams = {child.stdout.fileno(): 1, child.stderr.fileno(): 2}  # type: ignore[union-attr]
        sock = self.request
        try:
            while streams:
                ready = select.select([*streams, sock], [], [])[0]
                if sock in ready and not sock.recv(1, socket.MSG_PEEK):
                    raise ConnectionError("mpirun went away")
                for fd in [f for f in ready if f in streams]:
                    data = os.read(fd, _CHUNK)
                    if data:
                        sock.sendall(_FRAME.pack(streams[fd], len(data)) + data)
                    else:
                        del streams[fd]
            sock.sendall(_FRAME.pack(0, _code(child.wait()) & 0xFF))
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)


def _serve_agent(port: int, exits: str | None = None) -> int:
    """Serve launches until stopped, or (with ``exits``) until node 0's ``mpirun`` ended
    or a rank failed: then the MPI job is over and nothing more will be launched here."""
    server = _Agent(("0.0.0.0", port), _Launch)

    def on_signal(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    def watch() -> None:
        assert exits is not None
        while not (os.path.exists(os.path.join(exits, "node-0.json")) or _gang_failed(exits)):
            time.sleep(0.5)
        server.shutdown()

    if exits is not None:
        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


def _rsh(words: Sequence[str]) -> int:
    """What mpirun runs as ``ssh HOST COMMAND``: the command, run by HOST's agent."""
    rest = list(words)
    while rest and rest[0].startswith("-"):  # ssh options mpirun may pass (-x, -T)
        rest.pop(0)
    if len(rest) < 2:
        sys.stderr.write("mlmagic_gang rsh: give HOST COMMAND\n")
        return 255
    host, command = rest[0], " ".join(rest[1:])
    port = int(os.environ.get(_PORT, "0"))
    for attempt in range(50):  # the agent may still be starting
        try:
            sock = socket.create_connection((host, port), timeout=30)
            break
        except OSError:
            if attempt == 49:
                sys.stderr.write(f"mlmagic_gang rsh: no launch agent answers on {host}:{port}\n")
                return 255
            time.sleep(0.2)
    sock.settimeout(None)
    sock.sendall(os.environ.get(_TOKEN, "").encode() + b"\n" + json.dumps(command).encode() + b"\n")
    file = sock.makefile("rb")
    while True:
        head = file.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return 255
        stream, size = _FRAME.unpack(head)
        if stream == 0:
            return size
        data = file.read(size)
        target = sys.stdout.buffer if stream == 1 else sys.stderr.buffer
        target.write(data)
        target.flush()


# -- the command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher's command line; return the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["rsh"]:  # ssh's words, options first: not for argparse
        return _rsh(words[1:])
    parser = argparse.ArgumentParser(prog="mlmagic_gang.py", description="mlmagic's node launcher.")
    commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    commands.required = True
    node = commands.add_parser("node", help="run node K of a gang's plan")
    node.add_argument("--plan", required=True)
    node.add_argument("--node", type=int, required=True)
    rank = commands.add_parser("rank", help="run one MPI rank")
    rank.add_argument("--plan", required=True)
    rank.add_argument("command", nargs=argparse.REMAINDER)
    agent = commands.add_parser("agent", help="serve mpirun's remote launches")
    agent.add_argument("--port", type=int, required=True)
    rsh = commands.add_parser("rsh", help="mpirun's remote shell")
    rsh.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args(words)
    if args.subcommand == "agent":
        return _serve_agent(args.port)
    if args.subcommand == "rank":
        command = [w for w in args.command]
        if command and command[0] == "--":
            command = command[1:]
        return _run_rank(args.plan, command)
    with open(args.plan) as file:
        plan = json.load(file)
    plan["path"] = args.plan
    this = plan["nodes"][args.node]
    if this["role"] == "agent":
        return _serve_agent(int(plan["agent_port"]), plan["exits"])
    if this["role"] == "mpirun":
        return _run_mpirun(plan, this)
    return _run_node(plan, this)


if __name__ == "__main__":
    sys.exit(main())
