"""A local port forwarded to a remote host's loopback over SSH (``ssh -N -L``).

A service on a remote engine is published on that host's 127.0.0.1 only, never on its
public interface; the service's address here is a port of this machine's 127.0.0.1 that
the user's own ``ssh`` forwards there (same agent, same ``~/.ssh/config`` as the engine's
connection). The ``ssh`` process is detached, so the service stays reachable after the
kernel that deployed it ends; its pid is kept in a file of the service's folder, and
:func:`close` ends that process only (checked by its command line, never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from mlmagic.exceptions import DeployError

__all__ = ["close", "open_tunnel"]

_READY_WAIT = 30.0


def _command(address: str, local_port: int, remote_port: int) -> list[str]:
    parts = urlsplit(address)
    command = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30"]
    command += ["-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"]
    if parts.port:
        command += ["-p", str(parts.port)]
    if parts.username:
        command += ["-l", parts.username]
    return [*command, "--", str(parts.hostname)]


def open_tunnel(address: str, local_port: int, remote_port: int, folder: Path) -> None:
    """Forward ``127.0.0.1:local_port`` here to ``127.0.0.1:remote_port`` on the host of
    ``address`` (``ssh://[user@]host[:port]``); return once the local port accepts.

    Any tunnel this folder recorded before is closed first.

    Raises
    ------
    DeployError
        ``ssh`` exited (its last words are in the message) or the port never opened.
    """
    close(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "tunnel.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _command(address, local_port, remote_port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # it outlives the kernel, as the service does
        )
    (folder / "tunnel.pid").write_text(f"{process.pid} {local_port}")
    deadline = time.monotonic() + _READY_WAIT
    while True:
        if process.poll() is not None:
            said = log_path.read_text(errors="replace").strip().splitlines()
            raise DeployError(
                f"The SSH forward of 127.0.0.1:{local_port} to port {remote_port} on "
                f"{address} failed ({said[-1] if said else f'exit {process.returncode}'}): "
                "check that `ssh` to that host works from here, then reload the service."
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", local_port), timeout=1),
        ):
            return
        if time.monotonic() > deadline:
            close(folder)
            raise DeployError(
                f"The SSH forward of 127.0.0.1:{local_port} never opened in {_READY_WAIT:g} s; "
                f"see {log_path}."
            )
        time.sleep(0.2)


def close(folder: Path) -> None:
    """End the ``ssh`` forward recorded in ``folder``, if it still runs; no error if none."""
    pid_file = folder / "tunnel.pid"
    try:
        pid_text, port = pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        command = []
    # Only the forward started here: a pid the system gave to another process is left.
    ours = any(f":{port}:".encode() in part for part in command)
    if command and os.path.basename(command[0]) == b"ssh" and ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
