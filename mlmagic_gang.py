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
host process is guaranteed to be there to merge: the run outlives the kernel. On a Ray
compute the nodes share no folder: the log is ``os.devnull`` and the lines travel on
stdout (each node's actor streams them to the job's driver, whose log is the run's).

Gang semantics on a node (as torchrun's agent): the first rank that exits non-zero gets an
exit record; its siblings are stopped (SIGTERM, then SIGKILL after a grace); the node exits
with that rank's code. The other nodes see the record in the shared run folder and stop
their ranks too (so a gang stops itself when no host process follows it); the host stops
and removes whatever is left when it sees the record.

MPI's roles (``mpirun``, ranks, launch agents, the remote shell) are in ``mlmagic_mpi.py``,
mounted next to this file. The agents' token (``MLMAGIC_GANG_TOKEN``) is taken out of
every rank's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time

# Every node's ranks start after this module is imported, so a node imports only what
# starting them needs: typing only for the type checker, argparse for the rarer
# subcommands, the MPI roles (sockets, hashing, threads) where a node has one.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["TOKEN", "LineLog", "exit_code", "gang_failed", "main", "record", "write_all"]

TOKEN = "MLMAGIC_GANG_TOKEN"
_PORT = "MLMAGIC_GANG_PORT"
_GRACE = 5.0
_LINE_MAX = 65536
_CHUNK = 65536
_FRAME = struct.Struct("!BI")  # stream (1 stdout, 2 stderr, 0 exit code), length


# -- the one log --------------------------------------------------------------------------


class LineLog:
    """Whole labelled lines to the run's log (``O_APPEND``) and to this node's stdout."""

    def __init__(self, path: str, echo: bool = True, max_bytes: int | None = None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.echo = echo
        self.pending: dict[Any, bytes] = {}
        # The run's log limit (MLMagic.run_log_max_bytes), shared by every node: the size
        # of the one file decides, so the log ends at most a line per node past it.
        if max_bytes is None:
            try:
                max_bytes = max(0, int(os.environ.get("MLMAGIC_LOG_MAX_BYTES", "0")))
            except ValueError:
                max_bytes = 0
        self.max_bytes = max_bytes
        self.full = False

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
        if label and label.startswith(("node ", "mpirun")) and line.startswith(b"[rank "):
            # torchrun's worker lines come labelled already, and so do MPI ranks' lines
            # that come through mpirun (where nodes share no log: on Ray)
            label = None
        text = (f"[{label}] ".encode() if label else b"") + line + b"\n"
        if self.max_bytes and not self.full:
            with contextlib.suppress(OSError):
                if os.fstat(self.fd).st_size + len(text) > self.max_bytes:
                    self.full = True
                    note = (
                        f"[mlmagic_gang] the log reached its limit of {self.max_bytes} bytes "
                        "(MLMagic.run_log_max_bytes): the ranks go on, the rest of the "
                        "output of this node is not kept.\n"
                    )
                    write_all(self.fd, note.encode())
        if not self.full:
            with contextlib.suppress(OSError):
                write_all(self.fd, text)  # one write: see the module's docstring
        if self.echo:
            with contextlib.suppress(OSError):
                write_all(1, text)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def record(exits: str, rank: int | None, node: int, label: str, code: int, stopped: bool) -> None:
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


def gang_failed(exits: str) -> bool:
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


def exit_code(returncode: int) -> int:
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
    base = {k: v for k, v in os.environ.items() if k != TOKEN}
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
            record(plan["exits"], rank, node["index"], label, 127, False)
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
            if gang_failed(plan["exits"]):  # a rank of another node failed
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
            code = exit_code(child.returncode)
            stopped = group.stopping and (failure is not None or bool(signalled))
            record(plan["exits"], rank, node["index"], label, code, stopped and code != 0)
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
    return max((exit_code(c.returncode) for c in group.procs), default=127)


# -- the command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher's command line; return the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["rsh"]:  # ssh's words, options first: not for argparse
        return _mpi().rsh(words[1:])
    node = _node_words(words)
    if node is not None:
        return _node(*node)
    import argparse

    parser = argparse.ArgumentParser(prog="mlmagic_gang.py", description="mlmagic's node launcher.")
    commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    commands.required = True
    node_command = commands.add_parser("node", help="run node K of a gang's plan")
    node_command.add_argument("--plan", required=True)
    node_command.add_argument("--node", type=int, required=True)
    rank = commands.add_parser("rank", help="run one MPI rank")
    rank.add_argument("--plan", required=True)
    rank.add_argument("command", nargs=argparse.REMAINDER)
    agent = commands.add_parser("agent", help="serve mpirun's remote launches")
    agent.add_argument("--port", type=int, required=True)
    rsh = commands.add_parser("rsh", help="mpirun's remote shell")
    rsh.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args(words)
    if args.subcommand == "node":
        return _node(args.plan, args.node)
    if args.subcommand == "agent":
        return _mpi().serve_agent(args.port)
    command = [w for w in args.command]
    if command and command[0] == "--":
        command = command[1:]
    return _mpi().run_rank(args.plan, command)


def _node_words(words: list[str]) -> tuple[str, int] | None:
    """``(plan, node)`` of the words mlmagic starts every node with (``node --plan P
    --node K``, in that order); ``None`` for anything else, which argparse reads."""
    if len(words) != 5 or words[:2] != ["node", "--plan"] or words[3] != "--node":
        return None
    return (words[2], int(words[4])) if words[4].isdigit() else None


def _node(plan_path: str, index: int) -> int:
    """Run node ``index`` of the plan: its ranks, ``mpirun`` or an MPI launch agent."""
    with open(plan_path) as file:
        plan = json.load(file)
    plan["path"] = plan_path
    this = plan["nodes"][index]
    if this["role"] == "agent":
        # One port for every agent (docker), or each node's own (Ray: picked free there).
        port = plan["agent_ports"][index] if plan.get("agent_ports") else plan["agent_port"]
        return _mpi().serve_agent(int(port), plan["exits"])
    if this["role"] == "mpirun":
        return _mpi().run_mpirun(plan, this)
    return _run_node(plan, this)


def _mpi() -> Any:
    """``mlmagic_mpi`` (next to this file), imported for MPI's roles only."""
    # It imports this module by name: run as a script, this module is __main__, and
    # would be executed a second time without this alias.
    sys.modules.setdefault("mlmagic_gang", sys.modules[__name__])
    import mlmagic_mpi

    return mlmagic_mpi


if __name__ == "__main__":
    sys.exit(main())
