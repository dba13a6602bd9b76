"""MPI for mlmagic's distributed runs: ``mpirun`` on node 0, launch agents on the others.

Stdlib only (Python 3.8+); mounted next to ``mlmagic_gang.py``, which runs these roles:

- node 0 runs ``mpirun`` over a generated hostfile (``slots`` = processes per node), with
  our remote shell (:func:`rsh`) instead of ssh: users' images have no sshd. The remote
  shell's option is named by Open MPI's major version, asked of ``mpirun --version``
  (:func:`mpirun_command`): Open MPI 4 (ORTE) takes ``--mca plm_rsh_agent``, Open MPI 5
  (PRRTE) ``--prtemca plm_ssh_agent``.
- every rank runs under :func:`run_rank`, which labels its lines ``[rank K]`` in the run's
  log and records its exit, so the gang (not ``mpirun``, which waits on when a rank fails
  after ``MPI_Finalize``) decides when the job failed. Where the nodes share no log (a
  Ray compute: the plan's log is ``os.devnull``), the labelled lines go to the rank's
  stdout instead, which ``mpirun`` forwards to node 0, once;
- the other nodes run :func:`serve_agent`: a TCP server on the run's private network that
  runs what ``mpirun`` asks through :func:`rsh`, only for a client that sends the run's
  random token (``MLMAGIC_GANG_TOKEN``, in the nodes' environment, never written down and
  taken out of the ranks' environment). Every agent listens on one port
  (``MLMAGIC_GANG_PORT``), or, where each node picked its own (the plan's
  ``agent_ports``: on Ray), :func:`rsh` finds each host's in ``MLMAGIC_GANG_PORTS``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
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
from collections.abc import Callable, Sequence
from typing import Any

from mlmagic_gang import TOKEN, LineLog, exit_code, gang_failed, record

__all__ = [
    "mpirun_command",
    "open_mpi_major",
    "rsh",
    "run_mpirun",
    "run_rank",
    "serve_agent",
]

_PORT = "MLMAGIC_GANG_PORT"
#: Each agent's port by host (JSON), where the agents' ports differ (on Ray).
_PORTS = "MLMAGIC_GANG_PORTS"
_CHUNK = 65536
_FRAME = struct.Struct("!BI")  # stream (1 stdout, 2 stderr, 0 exit code), length
#: The node launcher, which mpirun starts each rank and the remote shell through.
_GANG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlmagic_gang.py")


def open_mpi_major(version_text: str) -> int | None:
    """Open MPI's major version from ``mpirun --version``'s words; ``None`` for another
    MPI (or none)."""
    found = re.search(r"\(Open MPI\)\s+(\d+)\.", version_text)
    return int(found.group(1)) if found else None


def _installed_major() -> int | None:
    try:
        done = subprocess.run(
            ["mpirun", "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None  # mpirun itself then says what is wrong when it is started
    return open_mpi_major(done.stdout + done.stderr)


def mpirun_command(
    major: int | None, *, hostfile: str, total: int, rsh: str, root: bool, program: list[str]
) -> tuple[list[str], dict[str, str]]:
    """``mpirun``'s words and the variables it needs, for Open MPI ``major``.

    Open MPI 4 (ORTE) names the remote shell ``plm_rsh_agent``; Open MPI 5 moved the
    launch to PRRTE, whose ``plm_ssh_agent`` is set with ``--prtemca`` (its generic
    ``--mca`` translation is deprecated). No tree spawn: only node 0 has our remote shell.
    Both take ``--hostfile`` with ``HOST slots=N`` lines, ``-np``, ``--map-by slot`` and
    ``--allow-run-as-root``. The shared-memory transport is named ``vader`` in 4 and
    ``sm`` in 5; its single-copy mechanism is off, as containers forbid ``ptrace``. A
    version that cannot be told (``None``) gets both versions' variables, which each
    version reads and the other ignores.
    """
    argv = ["mpirun", "--hostfile", hostfile, "-np", str(total), "--map-by", "slot"]
    env: dict[str, str] = {}
    if major is None:
        env.update(
            {
                "OMPI_MCA_plm_rsh_agent": rsh,
                "PRTE_MCA_plm_ssh_agent": rsh,
                "OMPI_MCA_plm_rsh_no_tree_spawn": "1",
                "PRTE_MCA_plm_ssh_no_tree_spawn": "1",
                "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
                "OMPI_MCA_btl_sm_single_copy_mechanism": "none",
            }
        )
        if root:
            for prefix in ("OMPI", "PRTE"):
                env[f"{prefix}_ALLOW_RUN_AS_ROOT"] = "1"
                env[f"{prefix}_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        return [*argv, *program], env
    if major >= 5:
        option, prefix, transport = "--prtemca", "plm_ssh", "sm"
    else:
        option, prefix, transport = "--mca", "plm_rsh", "vader"
    argv += [option, f"{prefix}_agent", rsh, option, f"{prefix}_no_tree_spawn", "1"]
    if root:
        argv.append("--allow-run-as-root")
    env[f"OMPI_MCA_btl_{transport}_single_copy_mechanism"] = "none"
    return [*argv, *program], env


def run_mpirun(plan: dict[str, Any], node: dict[str, Any]) -> int:
    """Node 0 of an MPI gang: ``mpirun`` over every node, through our remote shell."""
    # A folder of this node's own: on the local target several runs share /tmp.
    folder = tempfile.mkdtemp(prefix="mlmagic-mpi-")
    # mpirun hands its remote shell's name on to the daemons it starts (Open MPI 4's crash
    # when that path is missing on their node), so it must name the same thing on every
    # node: this Python and the mounted launcher, one command of words where it can.
    rsh = f"{sys.executable} {_GANG} rsh"
    if any(character.isspace() for character in sys.executable + _GANG):
        rsh = os.path.join(folder, "rsh")  # every node is this host (the local target)
        with open(rsh, "w") as file:
            file.write(f'#!/bin/sh\nexec "{sys.executable}" "{_GANG}" rsh "$@"\n')
        os.chmod(rsh, 0o755)
    hostfile = os.path.join(folder, "hostfile")
    slots: dict[str, int] = {}
    for other in plan["nodes"]:  # on the local target every node is this host
        slots[other["host"]] = slots.get(other["host"], 0) + plan["procs_per_node"]
    with open(hostfile, "w") as file:
        file.writelines(f"{host} slots={count}\n" for host, count in slots.items())
    rank = [sys.executable, _GANG, "rank", "--plan", plan["path"], "--", sys.executable]
    argv, env = mpirun_command(
        _installed_major(),
        hostfile=hostfile,
        total=sum(slots.values()),
        rsh=rsh,
        root=os.geteuid() == 0,
        program=[*rank, *plan["command"]],
    )
    if plan.get("agent_ports"):  # each node's agent listens on a port of its own
        hosts = [other["host"] for other in plan["nodes"]]
        ports = {host: str(plan["agent_ports"][k]) for k, host in enumerate(hosts)}
        env[_PORTS] = json.dumps(ports)
    plan = {**plan, "launcher": "mlmagic"}
    node = {**node, "procs": []}
    # What was run, in the log: the first thing to read when mpirun fails.
    said = "mlmagic runs: " + " ".join(argv[: argv.index(rank[0])])
    return _run_commands(plan, node, [(None, "mpirun", argv, {**os.environ, **env})], said)


def _run_commands(
    plan: dict[str, Any], node: dict[str, Any], starts: list[Any], said: str = ""
) -> int:
    """Run ``starts`` as the node's processes (mpirun's own lines are labelled), after
    writing ``said`` under the same label."""
    log = LineLog(plan["log"])
    _rank, label, argv, env = starts[0]
    if said:
        log.write(label, said.encode())
    try:
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
    except OSError as exc:
        log.write(label, f"cannot start {argv[0]!r}: {exc}".encode())
        record(plan["exits"], None, node["index"], label, 127, False)
        return 127
    signalled: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        signalled.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    code = _follow(child, plan, log, label, on_signal)
    record(plan["exits"], None, node["index"], label, code, bool(signalled) and code != 0)
    return 128 + signalled[0] if signalled and code else code


def _follow(
    child: subprocess.Popen[bytes],
    plan: dict[str, Any],
    log: LineLog,
    label: str,
    stop: Callable[[int, object], None],
) -> int:
    """Wait for ``child`` (mpirun, or one rank), its output going to the run's log as
    whole lines under ``label``; ``stop(signum, frame)`` ends it when another rank of the
    gang has failed. Returns its exit code."""

    def watch() -> None:
        # mpirun does not end the job when a rank fails after MPI_Finalize: we do.
        while child.poll() is None:
            if gang_failed(plan["exits"]):
                stop(signal.SIGTERM, None)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    out = child.stdout
    assert out is not None
    for chunk in iter(lambda: os.read(out.fileno(), _CHUNK), b""):
        log.feed(0, label, chunk)
    log.flush(0, label)
    return exit_code(child.wait())


def run_rank(plan_path: str, command: list[str]) -> int:
    """One MPI rank: its output labelled in the run's log, its exit recorded."""
    with open(plan_path) as file:
        plan = json.load(file)
    rank_text = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMIX_RANK") or "0"
    rank = int(rank_text)
    node = int(os.environ.get("MLMAGIC_NODE", "0"))
    label = f"rank {rank}"
    env = {k: v for k, v in os.environ.items() if k != TOKEN}
    env.update({"MLMAGIC_RANK": str(rank), "RANK": str(rank)})
    # Where the nodes share no log file (Ray: the log is os.devnull), the labelled lines
    # go to stdout, which mpirun forwards to node 0's launcher: the one way they travel.
    log = LineLog(plan["log"], echo=plan["log"] == os.devnull)
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def on_signal(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    code = _follow(child, plan, log, label, on_signal)
    record(plan["exits"], rank, node, label, code, False)
    return code


class _Agent(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Launch(socketserver.StreamRequestHandler):
    """One remote launch: a token line, a command line, then framed output and the code."""

    def handle(self) -> None:
        token = self.rfile.readline().strip().decode(errors="replace")
        expected = os.environ.get(TOKEN, "")
        if not expected or not hmac.compare_digest(token, expected):
            return
        command = json.loads(self.rfile.readline())
        env = {k: v for k, v in os.environ.items() if k != TOKEN}
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
            sock.sendall(_FRAME.pack(0, exit_code(child.wait()) & 0xFF))
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)


def serve_agent(port: int, exits: str | None = None) -> int:
    """Serve launches until stopped, or (with ``exits``) until node 0's ``mpirun`` ended
    or a rank failed: then the MPI job is over and nothing more will be launched here."""
    if not os.environ.get(TOKEN):
        sys.stderr.write(f"mlmagic_mpi agent: no {TOKEN} in the environment; not serving\n")
        return 2
    server = _Agent(("0.0.0.0", port), _Launch)

    def on_signal(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), on_signal)

    def watch() -> None:
        assert exits is not None
        while not (os.path.exists(os.path.join(exits, "node-0.json")) or gang_failed(exits)):
            time.sleep(0.5)
        server.shutdown()

    if exits is not None:
        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


def rsh(words: Sequence[str]) -> int:
    """What mpirun runs as ``ssh HOST COMMAND``: the command, run by HOST's agent."""
    rest = list(words)
    while rest and rest[0].startswith("-"):  # ssh options mpirun may pass (-x, -T)
        rest.pop(0)
    if len(rest) < 2:
        sys.stderr.write("mlmagic_gang rsh: give HOST COMMAND\n")
        return 255
    host, command = rest[0], " ".join(rest[1:])
    try:
        ports = json.loads(os.environ.get(_PORTS) or "{}")
    except ValueError:
        ports = {}
    port = int(ports.get(host) or os.environ.get(_PORT, "0"))
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
    sock.sendall(os.environ.get(TOKEN, "").encode() + b"\n" + json.dumps(command).encode() + b"\n")
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
