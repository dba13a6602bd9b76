"""Detached processes: how the local target runs scripts and servers.

A process is started through a short-lived intermediate process so that it is not the
kernel's child: it lives in its own session and process group, survives a kernel restart,
and is reparented to init when it ends (no zombie). Its handle records the PID and the
process's start time, so a reused PID is never mistaken for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlmagic.engine.base import GpuRequest
from mlmagic.exceptions import MlmagicError

__all__ = ["cuda_visible_devices", "process_alive", "spawn_detached", "stop_process"]

# Starts argv[1:] in a new session and prints its PID; exits at once, so the started
# process is reparented to init instead of staying a child of the kernel.
_DETACH = (
    "import subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], start_new_session=True, stdin=subprocess.DEVNULL,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)\n"
    "print(p.pid)\n"
)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(handle: str) -> bool:
    """Whether the process a ``local:<pid>:<start>`` handle names still runs."""
    _, pid_text, start = ([*handle.split(":"), ""])[:3]
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return not start or _start_time(pid) == start


def spawn_detached(command: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    """Start ``command`` in its own session, not as our child; return its handle.

    Raises
    ------
    MlmagicError
        The process could not be started.
    """
    out = subprocess.run(
        [sys.executable, "-c", _DETACH, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise MlmagicError(f"The process could not start: {out.stderr.strip() or out.stdout}")
    pid = int(out.stdout.strip())
    return f"local:{pid}:{_start_time(pid)}"


def stop_process(handle: str, timeout: float = 10) -> None:
    """SIGTERM the handle's process group, then SIGKILL it after ``timeout`` seconds."""
    pid = int(handle.split(":")[1])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not process_alive(handle):
            return
        try:
            os.killpg(pid, sig)  # the whole process group: the script and its children
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process_alive(handle):
            time.sleep(0.1)


def cuda_visible_devices(gpus: GpuRequest | None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a GPU request (``None``: leave it as it is)."""
    if gpus is None:
        return ""
    if gpus.device_ids:
        return ",".join(gpus.device_ids)
    if gpus.count is not None and gpus.count >= 0:
        return ",".join(str(i) for i in range(gpus.count))
    return None
