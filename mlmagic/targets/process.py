"""Detached process trees: how the local target runs scripts and servers.

A process is started by a short-lived intermediate (:mod:`mlmagic.targets.detach`) so
that it is not the kernel's child: it lives in its own session, survives a kernel restart,
and is reparented to init when it ends (no zombie).

What is answered for is the whole *tree* the process starts, not its first PID: a script
may outlive a killed launcher, and its children may call ``setsid`` or fork twice. The
tree is a cgroup (v2) of its own where the machine lets this process make one; else every
process whose environment carries the tree's token (``MLMAGIC_PROCESS_TREE``), which every
descendant inherits unless it clears its environment. The handle records the launcher's
PID and start time (so a reused PID is never mistaken for it), the token and the cgroup::

    local:<pid>:<start>:<token>:<cgroup folder or empty>

Handles of older runs (``local:<pid>:<start>``) name the launcher's process group alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlmagic.engine.base import GpuRequest
from mlmagic.exceptions import MlmagicError
from mlmagic.targets.cgroup import cgroup_members, kill_cgroup, new_cgroup, remove_cgroup

__all__ = [
    "TOKEN_VARIABLE",
    "ProcessTree",
    "ReadOnlyViewError",
    "cuda_visible_devices",
    "process_alive",
    "remove_tree",
    "spawn_detached",
    "stop_process",
]

#: The environment variable that marks every process of a tree.
TOKEN_VARIABLE = "MLMAGIC_PROCESS_TREE"
_DETACH = Path(__file__).with_name("detach.py")


class ReadOnlyViewError(MlmagicError):
    """Folders were to be read-only for the process, and this machine cannot do that."""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name; ``None`` once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _running(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    fields = _stat_fields(pid)
    return fields[19] if fields else ""


@dataclass(frozen=True)
class ProcessTree:
    """The processes a detached command started, found from its handle."""

    pid: int
    start: str = ""
    token: str = ""
    cgroup: str = ""

    @classmethod
    def parse(cls, handle: str) -> ProcessTree:
        """The tree a ``local:...`` handle names."""
        _, pid, start, token, cgroup = [*handle.split(":", 4), "", "", "", ""][:5]
        return cls(int(pid), start, token, cgroup)

    @property
    def handle(self) -> str:
        return f"local:{self.pid}:{self.start}:{self.token}:{self.cgroup}"

    def _launcher_alive(self) -> bool:
        return _running(self.pid) and (not self.start or _start_time(self.pid) == self.start)

    def members(self) -> list[int]:
        """The PIDs of the tree's live processes (the launcher's, if it lives, first)."""
        if self.cgroup:
            found = cgroup_members(self.cgroup)
        elif self.token:
            found = _marked(f"{TOKEN_VARIABLE}={self.token}".encode())
        else:
            found = [self.pid] if self._launcher_alive() else []
        return sorted((pid for pid in found if _running(pid)), key=lambda p: p != self.pid)

    def alive(self) -> bool:
        """Whether any process of the tree still runs."""
        return bool(self.members())

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the tree."""
        if sig == signal.SIGKILL and self.cgroup and kill_cgroup(self.cgroup):
            return
        if not self.token:
            # An older handle: the launcher's process group is all that is known.
            if self._launcher_alive():
                _send(self.pid, sig, group=True)
            return
        for pid in self.members():
            _send(pid, sig)


def _send(pid: int, sig: int, *, group: bool = False) -> None:
    # It may have ended meanwhile.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, sig)


def _marked(marker: bytes) -> list[int]:
    """PIDs whose environment holds ``marker`` (a ``NAME=value`` entry)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def process_alive(handle: str) -> bool:
    """Whether any process of the tree a ``local:...`` handle names still runs."""
    return ProcessTree.parse(handle).alive()


def spawn_detached(
    command: list[str], *, cwd: Path, env: dict[str, str], read_only: Sequence[str] = ()
) -> str:
    """Start ``command`` in its own session and process tree, not as our child; return
    its handle.

    Parameters
    ----------
    read_only
        Folders the tree sees read-only (a private mount namespace; every other process
        sees them as they are).

    Raises
    ------
    ReadOnlyViewError
        ``read_only`` was given and this machine gives no private mount namespace.
    MlmagicError
        The process could not be started.
    """
    token = secrets.token_hex(8)
    cgroup = new_cgroup(f"mlmagic-{token}")
    settings = json.dumps({"cgroup": cgroup or "", "read_only": list(read_only)})
    out = subprocess.run(
        [sys.executable, "-I", str(_DETACH), settings, *command],
        cwd=cwd,
        env={**env, TOKEN_VARIABLE: token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        answer = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        answer = {"error": out.stderr.strip() or out.stdout.strip() or f"exit {out.returncode}"}
    if "pid" not in answer:
        if cgroup:
            remove_cgroup(cgroup)
        if answer.get("read_only"):
            raise ReadOnlyViewError(answer["error"])
        raise MlmagicError(f"The process could not start: {answer['error']}")
    if cgroup and not answer["cgroup"]:
        # It could make the cgroup but not enter it: the token finds the tree instead.
        remove_cgroup(cgroup)
        cgroup = None
    pid = int(answer["pid"])
    return ProcessTree(pid, _start_time(pid), token, cgroup or "").handle


def stop_process(handle: str, timeout: float = 10) -> None:
    """SIGTERM every process of the tree, then SIGKILL what is left after ``timeout``
    seconds, again until nothing is left (a dying tree may still fork)."""
    tree = ProcessTree.parse(handle)
    tree.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while tree.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while tree.alive() and time.monotonic() < deadline:
        tree.signal(signal.SIGKILL)
        time.sleep(0.1)
    remove_tree(handle)


def remove_tree(handle: str) -> None:
    """Remove what is left of an ended tree (its cgroup); no error when nothing is, or
    when the tree still runs (the cgroup stays)."""
    tree = ProcessTree.parse(handle)
    if tree.cgroup:
        remove_cgroup(tree.cgroup)


def cuda_visible_devices(gpus: GpuRequest | None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a GPU request (``None``: leave it as it is)."""
    if gpus is None:
        return ""
    if gpus.device_ids:
        return ",".join(gpus.device_ids)
    if gpus.count is not None and gpus.count >= 0:
        return ",".join(str(i) for i in range(gpus.count))
    return None
