"""The local target: a run as a process in a virtual environment, not in a container.

The script runs under the same launcher as in a container (``mlmagic_run.py exec``),
started through a short-lived intermediate process so that it is not the kernel's child:
it lives in its own session and process group, survives a kernel restart, and is
reparented to init when it ends (no zombie). Its handle records the PID and the process's
start time, so a reused PID is never mistaken for the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.build.venv import venv_python
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.exceptions import RunError
from mlmagic.run.config import data_variable
from mlmagic.run.docker import HELPER
from mlmagic.run.executor import Executor
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["ProcessExecutor", "cuda_visible_devices", "process_alive", "spawn_detached"]

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
    """Start ``command`` in its own session, not as our child; return its handle."""
    out = subprocess.run(
        [sys.executable, "-c", _DETACH, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise RunError(f"The process could not start: {out.stderr.strip() or out.stdout}")
    pid = int(out.stdout.strip())
    return f"local:{pid}:{_start_time(pid)}"


def cuda_visible_devices(gpus: object) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a GPU request (``None``: leave it as it is)."""
    if gpus is None:
        return ""
    if isinstance(gpus, GpuRequest):
        if gpus.device_ids:
            return ",".join(gpus.device_ids)
        if gpus.count is not None and gpus.count >= 0:
            return ",".join(str(i) for i in range(gpus.count))
    return None


class ProcessExecutor(Executor):
    """Runs the script as a process in the environment's virtual environment."""

    def gpu_problem(self) -> str | None:
        if shutil.which("nvidia-smi") is None:
            return (
                "No NVIDIA GPU is visible on this machine (nvidia-smi is not on PATH): run "
                "without --gpus, or use --gpus auto to fall back to the CPU."
            )
        return None

    def start(self, ws: Workspace, record: dict[str, Any], env: Environment, gpus: object) -> str:
        if env.venv is None:
            raise RunError(f"The environment {env.ref} has no virtual environment here.")
        paths = RunPaths(ws.path("runs", record["id"]))
        # ./outputs and ./logs of the script are the run's folders, as in a container.
        for name, folder in (("outputs", paths.outputs), ("logs", paths.logs)):
            link = paths.snapshot / name
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.symlink_to(folder)
        lib = paths.lib
        lib.mkdir(exist_ok=True)
        shutil.copy2(HELPER, lib / "mlmagic_run.py")
        python = str(venv_python(Path(env.venv)))
        config = record["config"]
        environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
        environment.update(
            {
                "MLMAGIC_RUN_ID": record["id"],
                "MLMAGIC_OUTPUT_DIR": str(paths.outputs),
                "MLMAGIC_METRICS_FILE": str(paths.metrics),
                "MLMAGIC_PARAMS_FILE": str(paths.params),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(lib),
                "MLMAGIC_LOG_MAX_BYTES": str(ws.config.run_log_max_bytes),
                "VIRTUAL_ENV": str(env.venv),
                "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        for name, host_path in config.get("data", {}).items():
            environment[data_variable(name)] = host_path
        devices = cuda_visible_devices(gpus)
        if devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = devices
        command = [
            python,
            str(lib / "mlmagic_run.py"),
            "exec",
            "--log",
            str(paths.output_log),
            "--exit-file",
            str(paths.exit_file),
            "--",
            python,
            "-u",
            record["script"],
            *record["args"],
        ]
        return spawn_detached(command, cwd=paths.snapshot, env=environment)

    def state(self, handle: str) -> ContainerState | None:
        if process_alive(handle):
            return ContainerState(handle, "running", None, False, None, None)
        return None

    def stop(self, handle: str, timeout: float = 10) -> None:
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

    def remove(self, handle: str) -> None:
        """Nothing is left of a process once it ended."""
