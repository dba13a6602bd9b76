"""A run's life: Preparing → Starting → Running → Finalizing → Completed | Failed | Canceled.

:func:`drive` runs in a thread of the submitting process and takes a queued run to its
end. The container (or, on the local target, the detached process), not that thread, is
the truth of a live run: if the kernel dies, the script goes on, and any process that
later looks at the run (:func:`watch`) finalises it when the script ends.
:func:`finalize` is idempotent: whichever process sees the end first closes the record; a
second one changes nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from mlmagic.engine.base import ContainerState
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status, drain
from mlmagic.exceptions import BuildError, EngineError, MlmagicError, SpecError
from mlmagic.run import journal
from mlmagic.run.config import parse_gpus
from mlmagic.run.executor import Executor, executor_for
from mlmagic.run.paths import RunPaths
from mlmagic.run.untrusted import read_exit

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["cancel", "drive", "enter_stage", "finalize", "owner_alive", "owner_id", "watch"]

_POLL = 0.25
# Runs this process watches, so a run is watched once per process.
_watching: set[str] = set()
_watching_lock = threading.Lock()


class _Stop(Exception):
    """The run cannot go on; carries how it ends."""

    def __init__(self, status: Status, message: str, stage: Stage | None) -> None:
        super().__init__(message)
        self.status, self.message, self.stage = status, message, stage


def owner_id() -> str:
    """Who drives a run: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that drives a run still lives (unknown hosts count as alive)."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def enter_stage(ws: Workspace, run_id: str, stage: Stage) -> bool:
    """Record that ``stage`` starts; ``False`` when the run has already ended."""
    if not ws.store.start_stage(run_id, stage.value):
        return False
    paths = RunPaths(ws.path("runs", run_id))
    journal.append(paths.events, RunEvent(RunEventKind.STAGE, stage=stage))
    return True


def drive(ws: Workspace, run_id: str) -> None:
    """Take a queued run to its end (the submitting process's thread)."""
    with _watching_lock:
        _watching.add(run_id)
    stage = Stage.PREPARING
    try:
        record = ws.store.run(run_id)
        assert record is not None
        executor = executor_for(ws, record["target"])
        env, gpus = _prepare(ws, run_id, executor)
        stage = Stage.STARTING
        _check_canceled(ws, run_id, stage)
        if not enter_stage(ws, run_id, Stage.STARTING):
            return
        record = ws.store.run(run_id)
        assert record is not None
        try:
            handle = executor.start(ws, record, env, gpus)
        except MlmagicError as exc:
            raise _Stop(Status.FAILED, f"the script could not start: {exc}", stage) from exc
        ws.store.update_run(run_id, handle=handle, started=time.time())
        stage = Stage.RUNNING
        entered = enter_stage(ws, run_id, Stage.RUNNING)
        if not entered or (ws.store.run(run_id) or {}).get("cancel_requested"):
            # Canceled while it was starting: stop what was started.
            executor.stop(handle, timeout=5)
        _follow(ws, run_id, executor, handle)
    except _Stop as stop:
        finalize(ws, run_id, status=stop.status, message=stop.message, stage=stop.stage)
    except BaseException as exc:
        finalize(ws, run_id, status=Status.FAILED, message=f"mlmagic failed: {exc!r}", stage=stage)
    finally:
        with _watching_lock:
            _watching.discard(run_id)


def _prepare(ws: Workspace, run_id: str, executor: Executor) -> tuple[Environment, object]:
    """Materialise the environment (an image or a venv); check GPUs."""
    if not enter_stage(ws, run_id, Stage.PREPARING):
        raise _Stop(Status.CANCELED, "canceled before it started", Stage.QUEUED)
    record = ws.store.run(run_id)
    assert record is not None
    paths = RunPaths(ws.path("runs", run_id))
    env = ws.environments.get(record["env_name"], record["env_version"])
    events = ws.environments.build(env, target=record["target"])

    def record_event(event: BuildEvent) -> None:
        journal.append(paths.events, RunEvent(RunEventKind.BUILD, build=event))
        if event.kind is not BuildEventKind.LOG:
            _check_canceled(ws, run_id, Stage.PREPARING)

    try:
        built = drain(events, record_event)
    except (BuildError, SpecError) as exc:
        raise _Stop(
            Status.FAILED, f"the environment {env.ref} failed to build: {exc}", Stage.PREPARING
        ) from exc
    except EngineError as exc:
        raise _Stop(Status.FAILED, str(exc), Stage.PREPARING) from exc
    finally:
        events.close()
    ws.store.update_run(run_id, image=built.image if record["target"] == "docker" else built.venv)
    config = record["config"]
    gpus = parse_gpus(config["gpus"])
    if gpus == "auto":
        problem = executor.gpu_problem()
        gpus = None if problem else parse_gpus("all")
        if problem:
            _note(paths, "no GPU available, running on the CPU (--gpus auto)")
    elif gpus is not None:
        problem = executor.gpu_problem()
        if problem:
            raise _Stop(Status.FAILED, problem, Stage.PREPARING)
    if record["target"] == "local" and (config.get("memory") or config.get("cpus")):
        _note(paths, "--memory and --cpus are not enforced on the local target")
    return built, gpus


def _check_canceled(ws: Workspace, run_id: str, stage: Stage) -> None:
    record = ws.store.run(run_id)
    if record is None or record["cancel_requested"]:
        raise _Stop(Status.CANCELED, f"canceled while {stage.value.lower()}", stage)


def _follow(ws: Workspace, run_id: str, executor: Executor, handle: str) -> None:
    """Wait for the script to end (or time out) and finalise the run."""
    record = ws.store.run(run_id)
    assert record is not None
    timeout = record["config"].get("timeout")
    started = record["started"] or time.time()
    while True:
        state = executor.state(handle)
        if state is None or not state.running:
            finalize(ws, run_id, state=state)
            return
        if timeout and time.time() - started > timeout:
            executor.stop(handle, timeout=10)
            finalize(
                ws,
                run_id,
                state=executor.state(handle),
                status=Status.FAILED,
                message=f"timed out after {timeout:g} s (--timeout)",
            )
            return
        time.sleep(_POLL)


def watch(ws: Workspace, run_id: str) -> None:
    """Finalise a run nobody drives any more, now or when its container ends.

    Called when a process looks at a live run: if the process that submitted it is gone,
    this process watches the container (in a thread) and closes the record at its end.
    """
    record = ws.store.run(run_id)
    if record is None or Status(record["status"]).is_terminal or owner_alive(record["owner"]):
        return
    with _watching_lock:
        if run_id in _watching:
            return
        _watching.add(run_id)

    def _watch() -> None:
        try:
            handle = record["handle"]
            if handle is None:
                stage = Stage(record["status"]) if record["status"] != "Queued" else Stage.QUEUED
                finalize(
                    ws,
                    run_id,
                    status=Status.FAILED,
                    message="the process that submitted the run ended before its container "
                    "started; submit it again",
                    stage=stage,
                )
                return
            _follow(ws, run_id, executor_for(ws, record["target"]), handle)
        finally:
            with _watching_lock:
                _watching.discard(run_id)

    threading.Thread(target=_watch, name=f"mlmagic-watch-{run_id}", daemon=True).start()


def cancel(ws: Workspace, run_id: str) -> None:
    """Ask a run to stop: before it starts it never will; a running container is stopped."""
    record = ws.store.run(run_id)
    if record is None or Status(record["status"]).is_terminal:
        return
    ws.store.update_run(run_id, cancel_requested=1)
    if record["handle"]:
        executor = executor_for(ws, record["target"])
        executor.stop(record["handle"], timeout=10)
        finalize(ws, run_id, state=executor.state(record["handle"]))
    elif not owner_alive(record["owner"]):
        finalize(ws, run_id, status=Status.CANCELED, message="canceled before it started")


def finalize(
    ws: Workspace,
    run_id: str,
    *,
    state: ContainerState | None = None,
    status: Status | None = None,
    message: str = "",
    stage: Stage | None = None,
) -> bool:
    """Close the run's record once; ``False`` when another process already did.

    The outcome comes from ``status``/``message`` when given, else from the container's
    exit (its state, or the launcher's exit file when the container is gone).
    """
    record = ws.store.run(run_id)
    if record is None or Status(record["status"]).is_terminal:
        return False
    paths = RunPaths(ws.path("runs", run_id))
    if record["handle"]:
        enter_stage(ws, run_id, Stage.FINALIZING)
    exit_code = _exit_code(state, paths)
    if status is None:
        status, message, stage = _outcome(record, state, exit_code, paths)
    if record["cancel_requested"] and status is not Status.COMPLETED:
        status, message = Status.CANCELED, message or "canceled"
    ended = time.time()
    closed = ws.store.finish_run(
        run_id,
        status=status.value,
        exit_code=exit_code,
        ended=ended,
        error=message or None,
        failed_stage=stage.value if stage and status is Status.FAILED else None,
    )
    if closed:
        journal.append(
            paths.events,
            RunEvent(RunEventKind.END, status=status, exit_code=exit_code, message=message),
        )
        if record["handle"]:
            executor_for(ws, record["target"]).remove(record["handle"])
    return closed


def _exit_code(state: ContainerState | None, paths: RunPaths) -> int | None:
    if state is not None and state.exit_code is not None:
        return state.exit_code
    return read_exit(paths)[0]


def _outcome(
    record: dict[str, Any], state: ContainerState | None, exit_code: int | None, paths: RunPaths
) -> tuple[Status, str, Stage | None]:
    if exit_code == 0:
        return Status.COMPLETED, "", None
    if state is not None and state.oom_killed:
        limit = (record["config"] or {}).get("memory")
        return (
            Status.FAILED,
            f"killed for memory (exit {exit_code}, OOMKilled) with --memory {limit or 'unset'}: "
            "give it more with --memory, or use less",
            Stage.RUNNING,
        )
    if exit_code is None:
        return (
            Status.FAILED,
            "the container disappeared before its exit code was read",
            Stage.RUNNING,
        )
    error = read_exit(paths)[1]  # the last line of its traceback, as the launcher read it
    why = f": {error}" if error else ""
    return Status.FAILED, f"the script exited with code {exit_code}{why}", Stage.RUNNING


def _note(paths: RunPaths, text: str) -> None:
    """A line from mlmagic in the run's log stream."""
    journal.append(
        paths.events,
        RunEvent(RunEventKind.BUILD, build=BuildEvent(BuildEventKind.LOG, message=text)),
    )
